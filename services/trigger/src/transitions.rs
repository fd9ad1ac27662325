//! Handling segment transitions: each transition id is recorded in a ledger once, so a
//! redelivery by segmentation's relay changes nothing. No campaign acts on a transition
//! yet: segment-entry triggers come in a later version (an ACTIVE campaign cannot have
//! one), and audiences read the user's segments from `UserEvent.segment_ids`, not from
//! transitions. When segment-entry triggers arrive, their decisions are taken here
//! before the transaction and staged in the outbox inside it, as `fire.rs` does for
//! events.

use std::collections::HashSet;

use herald_proto::trigger::v1::SegmentTransition;
use herald_runtime::{Clock, Error};
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::fire::Outcome;
use crate::store;

/// Handles `transitions` of `workspace` (checked by the caller): records the ids not seen
/// before and says how many were new and how many were duplicates (repeats within the
/// batch included).
pub async fn handle_transitions(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    transitions: &[SegmentTransition],
) -> Result<Outcome, Error> {
    let mut unique = HashSet::new();
    let ids: Vec<&str> = transitions
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| unique.insert(*id))
        .collect();
    if ids.is_empty() {
        return Ok(Outcome::default());
    }
    let txn = db.begin().await?;
    let fresh = store::mark_transitions_handled(&txn, workspace, &ids, clock.now_ms()).await?;
    txn.commit().await?;
    tracing::debug!(
        workspace_id = workspace,
        handled = fresh.len(),
        "segment transitions acknowledged"
    );
    Ok(Outcome {
        handled: fresh.len() as u32,
        duplicates: (transitions.len() - fresh.len()) as u32,
    })
}
