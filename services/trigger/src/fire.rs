//! Handling events: each event is matched against the workspace's ACTIVE campaigns
//! (compiled in memory, `cache.rs`) through the match index and decided by the pure
//! decision code before any transaction opens; then one transaction records the events'
//! ids in the ledger and stages the deliveries of those not seen before in the outbox.

use std::collections::HashSet;

use herald_campaigns::{Occurrence, decide};
use herald_core::time::proto_from_ms;
use herald_outbox::{NewItem, Outbox};
use herald_proto::delivery::v1::{DeliverRequest, Delivery};
use herald_proto::trigger::v1::UserEvent;
use herald_runtime::{Clock, Error};
use prost::Message;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::cache::CampaignCache;
use crate::downstream::DELIVERY;
use crate::store;

/// What HandleEvents did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub handled: u32,
    pub duplicates: u32,
}

/// Handles `events` of `workspace` (each with an event, checked by the caller): events
/// seen before change nothing; every other event is matched, and the resulting
/// deliveries are committed to the outbox together with the events' ids, then published.
pub async fn handle_events(
    db: &DatabaseConnection,
    outbox: &Outbox,
    cache: &CampaignCache,
    clock: &Clock,
    workspace: &str,
    events: &[UserEvent],
) -> Result<Outcome, Error> {
    let now_ms = clock.now_ms();
    let mut unique = HashSet::new();
    let candidates: Vec<(&herald_proto::common::v1::Event, &UserEvent)> = events
        .iter()
        .filter_map(|e| e.event.as_ref().map(|event| (event, e)))
        .filter(|(event, _)| unique.insert(event.message_id.as_str()))
        .collect();
    let index = cache.active(db, workspace).await?;

    let traceparent = herald_runtime::telemetry::current_traceparent();
    // Every candidate is decided and rendered before the transaction, so none of that
    // CPU work holds it open; what a duplicate would have sent is dropped below.
    let mut items: Vec<(&str, NewItem)> = Vec::new();
    for (event, user_event) in &candidates {
        let occurrence = Occurrence {
            user_id: &event.user_id,
            message_id: &event.message_id,
            name: &event.name,
            properties: event.properties.as_ref(),
            timestamp: event.timestamp.as_ref(),
            traits: user_event.traits.as_ref(),
            segment_ids: &user_event.segment_ids,
        };
        for campaign in index.for_event(&event.name) {
            let decision = decide(campaign, &occurrence, now_ms);
            if let Some(failed) = decision.failed() {
                tracing::debug!(campaign_id = %decision.campaign_id, user_id = %event.user_id, gate = ?failed.gate, reason = %failed.reason, "gate not passed");
            }
            let c = campaign.campaign();
            for send in decision.sends() {
                let delivery = Delivery {
                    idempotency_key: send.idempotency_key.clone(),
                    user_id: event.user_id.clone(),
                    campaign_id: c.id.clone(),
                    variant_id: send.variant_id.clone(),
                    channel: send.channel as i32,
                    content: Some(send.content.clone()),
                    priority: c.priority,
                    expire_time: send.expire_ms.map(proto_from_ms),
                    category: c.category.clone(),
                    address: send.address.clone(),
                };
                items.push((
                    event.message_id.as_str(),
                    NewItem {
                        destination: DELIVERY,
                        key: delivery.user_id.clone(),
                        payload: DeliverRequest {
                            workspace_id: workspace.to_owned(),
                            deliveries: vec![delivery],
                        }
                        .encode_to_vec(),
                        traceparent: traceparent.clone(),
                    },
                ));
            }
        }
    }
    let txn = db.begin().await?;
    let ids: Vec<&str> = candidates
        .iter()
        .map(|(e, _)| e.message_id.as_str())
        .collect();
    let fresh = store::mark_handled(&txn, workspace, &ids, now_ms).await?;
    let outcome = Outcome {
        handled: fresh.len() as u32,
        duplicates: (events.len() - fresh.len()) as u32,
    };
    if fresh.is_empty() {
        txn.rollback().await?;
        return Ok(outcome);
    }
    let items = items
        .into_iter()
        .filter(|(id, _)| fresh.contains(*id))
        .map(|(_, item)| item)
        .collect();
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(outcome)
}
