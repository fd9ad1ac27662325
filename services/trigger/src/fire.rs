//! Handling events: the ACTIVE campaigns each event concerns (by the match index) are
//! decided by the pure decision code, in one transaction per batch that records the
//! events' ids (so a redelivered event changes nothing), locks the ledgers of the users
//! concerned, and writes the decisions, the outgoing deliveries and control records, and
//! the timers started or cancelled.

use std::collections::{BTreeSet, HashSet};

use herald_campaigns::decision::{self, EventView, Subject};
use herald_proto::trigger::v1::UserEvent;
use herald_runtime::Error;
use sea_orm::TransactionTrait;

use crate::effects::Effects;
use crate::engine::{Engine, Outcome};
use crate::{ledgers, store};

/// Handles `events` of `workspace` (each with an event, checked by the caller).
pub async fn handle_events(
    engine: &Engine,
    workspace: &str,
    events: &[UserEvent],
) -> Result<Outcome, Error> {
    let now_ms = engine.clock.now_ms();
    let mut unique = HashSet::new();
    let candidates: Vec<&UserEvent> = events
        .iter()
        .filter(|e| {
            e.event
                .as_ref()
                .is_some_and(|event| unique.insert(event.message_id.as_str()))
        })
        .collect();
    let targets = engine.cache.active(&engine.db, workspace).await?;
    let index = &targets.index;
    // Only users whose events concern a campaign need their ledger.
    let concerned = |e: &UserEvent| {
        e.event.as_ref().is_some_and(|event| {
            !index.for_event(&event.name).is_empty()
                || index.cancelled_by(&event.name).next().is_some()
        })
    };

    let txn = engine.db.begin().await?;
    let ids: Vec<&str> = candidates
        .iter()
        .filter_map(|e| e.event.as_ref().map(|event| event.message_id.as_str()))
        .collect();
    let fresh = store::mark_handled(&txn, workspace, &ids, now_ms).await?;
    let outcome = Outcome {
        handled: fresh.len() as u32,
        duplicates: (events.len() - fresh.len()) as u32,
    };
    let todo: Vec<&UserEvent> = candidates
        .into_iter()
        .filter(|e| {
            e.event
                .as_ref()
                .is_some_and(|event| fresh.contains(&event.message_id))
                && concerned(e)
        })
        .collect();
    if todo.is_empty() {
        txn.commit().await?;
        return Ok(outcome);
    }
    let users: BTreeSet<&str> = todo
        .iter()
        .filter_map(|e| e.event.as_ref().map(|event| event.user_id.as_str()))
        .collect();
    let mut locked = ledgers::lock(&txn, workspace, &users, now_ms).await?;
    let mut effects = Effects::new(workspace);
    for user_event in todo {
        let Some(event) = &user_event.event else {
            continue;
        };
        let context = event.context.as_ref();
        let subject = Subject {
            user_id: &event.user_id,
            traits: user_event.traits.as_ref(),
            segment_ids: &user_event.segment_ids,
            time_zone: context.map_or("", |c| c.time_zone.as_str()),
            locale: context.map_or("", |c| c.locale.as_str()),
            event: Some(EventView {
                message_id: &event.message_id,
                name: &event.name,
                properties: event.properties.as_ref(),
                timestamp: event.timestamp.as_ref(),
            }),
        };
        let ledger = locked.of(&event.user_id)?;
        for d in decision::on_event(index, &targets.workspace, &subject, ledger, now_ms) {
            if let Some(failed) = d.failed() {
                tracing::debug!(campaign_id = d.campaign_id(), user_id = %event.user_id, code = ?failed.code, reason = d.reason(failed), "gate not passed");
            }
            effects.add(
                index,
                &engine.clock,
                &event.user_id,
                &d,
                Some(event),
                now_ms,
            );
        }
    }
    locked.save(&txn, now_ms).await?;
    let published = effects.write(&txn, &engine.outbox, &engine.timers).await?;
    txn.commit().await?;
    published.publish(&engine.outbox, &engine.timers).await;
    Ok(outcome)
}
