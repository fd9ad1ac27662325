//! What decisions leave behind, written in the transaction that took them: the recorded
//! decisions, the deliveries and exposure records staged in the outbox, and the timers
//! scheduled or cancelled. Published (outbox, timers) only after the commit.

use herald_campaigns::decision::{Decision, Outcome, TimerOp, exposure_record_id};
use herald_campaigns::{CompiledCampaign, MatchIndex};
use herald_core::time::proto_from_ms;
use herald_outbox::{NewItem, Outbox, Staged};
use herald_proto::analytics::v1::{
    ArmWeight, Experiment, Interaction, InteractionKind, RecordInteractionsRequest,
};
use herald_proto::common::v1::Event;
use herald_proto::delivery::v1::{DeliverRequest, Delivery};
use herald_proto::trigger::v1 as proto;
use herald_runtime::{Clock, Error};
use herald_timers::Timers;
use prost::Message;
use sea_orm::DatabaseTransaction;

use crate::decisions;
use crate::downstream::{ANALYTICS, DELIVERY};

/// The effects of the decisions of one transaction.
pub struct Effects {
    workspace: String,
    traceparent: Option<String>,
    decisions: Vec<proto::Decision>,
    items: Vec<NewItem>,
    schedule: Vec<(String, i64, Vec<u8>)>,
    cancel: Vec<String>,
}

impl Effects {
    pub fn new(workspace: &str) -> Effects {
        Effects {
            workspace: workspace.to_owned(),
            traceparent: herald_runtime::telemetry::current_traceparent(),
            decisions: Vec::new(),
            items: Vec::new(),
            schedule: Vec::new(),
            cancel: Vec::new(),
        }
    }

    /// Adds what `decision` (for `user_id`, taken at `now_ms`) leaves behind; `index`
    /// gives its campaign's goal and settings, `event` is the decision's cause's event
    /// (stored with the timers that keep it).
    pub fn add(
        &mut self,
        index: &MatchIndex,
        clock: &Clock,
        user_id: &str,
        decision: &Decision,
        event: Option<&Event>,
        now_ms: i64,
    ) {
        let campaign = index.campaign(decision.campaign_id()).map(|c| c.as_ref());
        let id = herald_core::ids::new_id("dec", clock);
        self.decisions.push(decision.to_proto(&id, user_id, now_ms));
        let (goal, window) = goal(campaign);
        for send in decision.sends() {
            let c = campaign.map(CompiledCampaign::campaign);
            let delivery = Delivery {
                idempotency_key: send.idempotency_key.clone(),
                user_id: user_id.to_owned(),
                campaign_id: decision.campaign_id().to_owned(),
                variant_id: send.variant_id.clone(),
                channel: send.channel as i32,
                content: Some(send.content.clone()),
                priority: c.map_or(0, |c| c.priority),
                expire_time: send.expire_ms.map(proto_from_ms),
                category: c.map(|c| c.category.clone()).unwrap_or_default(),
                address: send.address.clone(),
                goal_event_name: goal.clone(),
                attribution_window: window,
                critical: c.is_some_and(|c| c.critical),
            };
            self.items.push(NewItem {
                destination: DELIVERY,
                // Per-user order across the hop.
                key: user_id.to_owned(),
                payload: DeliverRequest {
                    workspace_id: self.workspace.clone(),
                    deliveries: vec![delivery],
                }
                .encode_to_vec(),
                traceparent: self.traceparent.clone(),
            });
        }
        // The exposure of either arm, at the same point of the decision: a variant's
        // decision to send, control's held-out decision.
        let kind = match decision.outcome {
            Outcome::Sent => Some(InteractionKind::Exposed),
            Outcome::Control => Some(InteractionKind::AssignedControl),
            _ => None,
        };
        if let Some(kind) = kind {
            let interaction = Interaction {
                id: exposure_record_id(decision.campaign_id(), decision.cause_id),
                campaign_id: decision.campaign_id().to_owned(),
                variant_id: decision.variant_id().unwrap_or_default().to_owned(),
                user_id: user_id.to_owned(),
                kind: kind as i32,
                time: Some(proto_from_ms(now_ms)),
                goal_event_name: goal,
                attribution_window: window,
                experiment: campaign.map(|c| experiment(c.campaign())),
                ..Default::default()
            };
            self.items.push(NewItem {
                destination: ANALYTICS,
                key: user_id.to_owned(),
                payload: RecordInteractionsRequest {
                    workspace_id: self.workspace.clone(),
                    interactions: vec![interaction],
                }
                .encode_to_vec(),
                traceparent: self.traceparent.clone(),
            });
        }
        for op in &decision.timers {
            match op {
                TimerOp::Schedule {
                    key,
                    due_ms,
                    payload,
                    with_event,
                } => {
                    self.cancel.retain(|k| k != key);
                    self.schedule.retain(|(k, _, _)| k != key);
                    let bytes =
                        herald_campaigns::timer::encode(payload, event.filter(|_| *with_event));
                    self.schedule.push((key.clone(), *due_ms, bytes));
                }
                TimerOp::Cancel { key } => {
                    self.schedule.retain(|(k, _, _)| k != key);
                    self.cancel.push(key.clone());
                }
            }
        }
    }

    /// Writes the effects within `txn`; returns what to publish after the commit.
    pub async fn write(
        self,
        txn: &DatabaseTransaction,
        outbox: &Outbox,
        timers: &Timers,
    ) -> Result<Published, Error> {
        decisions::insert(txn, &self.workspace, &self.decisions).await?;
        for key in &self.cancel {
            timers.cancel(txn, key).await?;
        }
        let scheduled: Vec<(&str, i64, Vec<u8>)> = self
            .schedule
            .iter()
            .map(|(k, due, p)| (k.as_str(), *due, p.clone()))
            .collect();
        if !scheduled.is_empty() {
            timers.schedule_many(txn, &scheduled).await?;
        }
        let staged = if self.items.is_empty() {
            None
        } else {
            Some(outbox.add(txn, self.items).await?)
        };
        Ok(Published {
            staged,
            timers: !scheduled.is_empty(),
        })
    }
}

/// What to hand on once the transaction committed.
pub struct Published {
    staged: Option<Staged>,
    timers: bool,
}

impl Published {
    /// Hands the staged items to the relay and wakes the timer runner.
    pub async fn publish(self, outbox: &Outbox, timers: &Timers) {
        if let Some(staged) = self.staged {
            outbox.publish(staged).await;
        }
        if self.timers {
            timers.notify();
        }
    }
}

/// The campaign's conversion goal, for delivery and analytics.
fn goal(campaign: Option<&CompiledCampaign>) -> (String, Option<prost_types::Duration>) {
    match campaign.and_then(|c| c.campaign().conversion_goal.as_ref()) {
        Some(goal) => (goal.event_name.clone(), goal.attribution_window),
        None => (String::new(), None),
    }
}

/// The campaign's experiment as analytics analyses it: the allocation and the sequential
/// test's tuning.
fn experiment(campaign: &proto::Campaign) -> Experiment {
    Experiment {
        variants: campaign
            .variants
            .iter()
            .map(|v| ArmWeight {
                variant_id: v.id.clone(),
                weight: v.weight,
            })
            .collect(),
        control_weight: campaign.control_weight,
        sequential_tuning: campaign.sequential_tuning,
    }
}
