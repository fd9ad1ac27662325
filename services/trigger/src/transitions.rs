//! Handling segment transitions: each transition id is recorded in a ledger once, so a
//! redelivery by segmentation's relay changes nothing; an ENTERED transition fires the
//! segment-entry campaigns of its segment and schedules the new member's next occurrence
//! of the local schedules for it (decided like events: the users' ledgers locked,
//! decisions, deliveries and timers written in the same transaction).

use std::collections::{BTreeSet, HashSet};

use herald_campaigns::decision::{self, Subject, TransitionView};
use herald_core::time::ms_of_proto;
use herald_proto::trigger::v1::{SegmentTransition, TransitionKind};
use herald_runtime::Error;
use sea_orm::TransactionTrait;

use crate::effects::Effects;
use crate::engine::{Engine, Outcome};
use crate::{ledgers, store};

/// Handles `transitions` of `workspace` (checked by the caller).
pub async fn handle_transitions(
    engine: &Engine,
    workspace: &str,
    transitions: &[SegmentTransition],
) -> Result<Outcome, Error> {
    let mut unique = HashSet::new();
    let distinct: Vec<&SegmentTransition> = transitions
        .iter()
        .filter(|t| unique.insert(t.id.as_str()))
        .collect();
    if distinct.is_empty() {
        return Ok(Outcome::default());
    }
    let now_ms = engine.clock.now_ms();
    let targets = engine.cache.active(&engine.db, workspace).await?;
    let index = &targets.index;
    let txn = engine.db.begin().await?;
    let ids: Vec<&str> = distinct.iter().map(|t| t.id.as_str()).collect();
    let fresh = store::mark_transitions_handled(&txn, workspace, &ids, now_ms).await?;
    let outcome = Outcome {
        handled: fresh.len() as u32,
        duplicates: (transitions.len() - fresh.len()) as u32,
    };
    let todo: Vec<&SegmentTransition> = distinct
        .into_iter()
        .filter(|t| {
            fresh.contains(&t.id)
                && t.kind == TransitionKind::Entered as i32
                && (!index.for_segment(&t.segment_id).is_empty()
                    || !index.schedules_for_segment(&t.segment_id).is_empty())
        })
        .collect();
    if todo.is_empty() {
        txn.commit().await?;
        return Ok(outcome);
    }
    let users: BTreeSet<&str> = todo.iter().map(|t| t.user_id.as_str()).collect();
    let mut locked = ledgers::lock(&txn, workspace, &users, now_ms).await?;
    let mut effects = Effects::new(workspace);
    for t in todo {
        let subject = Subject {
            user_id: &t.user_id,
            traits: t.traits.as_ref(),
            segment_ids: &t.segment_ids,
            time_zone: &t.time_zone,
            locale: "",
            event: None,
        };
        let view = TransitionView {
            id: &t.id,
            segment_id: &t.segment_id,
            kind: TransitionKind::Entered,
            at_ms: t
                .transition_time
                .as_ref()
                .map(ms_of_proto)
                .unwrap_or(now_ms),
        };
        let ledger = locked.of(&t.user_id)?;
        for d in decision::on_transition(index, &targets.workspace, &view, &subject, ledger, now_ms)
        {
            effects.add(index, &engine.clock, &t.user_id, &d, None, now_ms);
        }
    }
    locked.save(&txn, now_ms).await?;
    let published = effects.write(&txn, &engine.outbox, &engine.timers).await?;
    txn.commit().await?;
    published.publish(&engine.outbox, &engine.timers).await;
    Ok(outcome)
}
