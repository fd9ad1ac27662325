//! Matching events against active campaigns: trigger, audience and schedule checks, the
//! variant assignment, rendering, and the deliveries handed to the outbox, committed in
//! one transaction with the ids of the handled events.

use std::collections::{BTreeSet, HashMap, HashSet};

use herald_outbox::{NewItem, Outbox};
use herald_proto::common::v1::{Channel, Event};
use herald_proto::delivery::v1::{DeliverRequest, Delivery};
use herald_proto::trigger::v1::{Campaign, UserEvent, trigger::Kind as TriggerKind};
use prost::Message;
use prost_types::value::Kind;
use sea_orm::{DatabaseConnection, TransactionTrait};
use sha2::{Digest, Sha256};

use crate::assign::{Assignment, assign};
use crate::downstream::DELIVERY;
use crate::error::Error;
use crate::render::{self, Globals, TemplateCache};
use crate::store::{self, Stored};

/// What HandleEvents did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub handled: u32,
    pub duplicates: u32,
}

/// Handles `events` of `workspace`: events seen before change nothing; every other
/// event is matched, and the resulting deliveries are committed to the outbox together
/// with the events' ids, then published.
pub async fn handle_events(
    db: &DatabaseConnection,
    outbox: &Outbox,
    templates: &TemplateCache,
    workspace: &str,
    events: &[UserEvent],
) -> Result<Outcome, Error> {
    // Two concurrent requests with the same new message_id race on the primary key; the
    // loser retries and then sees the winner's row as a duplicate.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_handle(db, outbox, templates, workspace, events).await {
            Err(Error::Database(e)) if attempt < 3 && is_unique_violation(&e) => continue,
            other => return other,
        }
    }
}

fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

async fn try_handle(
    db: &DatabaseConnection,
    outbox: &Outbox,
    templates: &TemplateCache,
    workspace: &str,
    events: &[UserEvent],
) -> Result<Outcome, Error> {
    let txn = db.begin().await?;
    let ids: Vec<String> = events
        .iter()
        .filter_map(|e| e.event.as_ref())
        .map(|e| e.message_id.clone())
        .collect();
    let mut seen: HashSet<String> = store::handled(&txn, workspace, ids)
        .await?
        .into_iter()
        .collect();
    let mut outcome = Outcome::default();
    let mut fresh = Vec::new();
    for user_event in events {
        let Some(event) = &user_event.event else {
            continue;
        };
        if seen.insert(event.message_id.clone()) {
            fresh.push((event, user_event));
        } else {
            outcome.duplicates += 1;
        }
    }
    outcome.handled = fresh.len() as u32;
    if fresh.is_empty() {
        txn.rollback().await?;
        return Ok(outcome);
    }
    let names: BTreeSet<String> = fresh.iter().map(|(e, _)| e.name.clone()).collect();
    let campaigns = store::active_for_events(&txn, workspace, names.into_iter().collect()).await?;
    let mut by_event: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for stored in &campaigns {
        if let Some(TriggerKind::Event(trigger)) = stored
            .campaign
            .trigger
            .as_ref()
            .and_then(|t| t.kind.as_ref())
        {
            by_event
                .entry(trigger.event_name.as_str())
                .or_default()
                .push(stored);
        }
    }
    // Higher priority first; ties go to the older campaign.
    for list in by_event.values_mut() {
        list.sort_by_key(|s| {
            (
                std::cmp::Reverse(s.campaign.priority),
                s.campaign.create_time.as_ref().map(store::millis),
            )
        });
    }

    let now_ms = herald_storage::now_ms();
    let traceparent = herald_runtime::telemetry::current_traceparent();
    let mut items = Vec::new();
    for (event, user_event) in &fresh {
        for stored in by_event.get(event.name.as_str()).into_iter().flatten() {
            for delivery in decide(templates, workspace, stored, event, user_event, now_ms) {
                items.push(NewItem {
                    destination: DELIVERY,
                    key: delivery.user_id.clone(),
                    payload: DeliverRequest {
                        workspace_id: workspace.to_owned(),
                        deliveries: vec![delivery],
                    }
                    .encode_to_vec(),
                    traceparent: traceparent.clone(),
                });
            }
        }
    }
    let handled_ids: Vec<String> = fresh.iter().map(|(e, _)| e.message_id.clone()).collect();
    store::mark_handled(&txn, workspace, &handled_ids, now_ms).await?;
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(outcome)
}

/// Whether `event` makes `campaign` fire, by trigger, audience and schedule.
pub fn matches(campaign: &Campaign, event: &Event, user_event: &UserEvent, now_ms: i64) -> bool {
    let Some(TriggerKind::Event(trigger)) = campaign.trigger.as_ref().and_then(|t| t.kind.as_ref())
    else {
        return false;
    };
    if trigger.event_name != event.name
        || !crate::filter::all_match(&trigger.property_filters, event.properties.as_ref())
    {
        return false;
    }
    if let Some(audience) = &campaign.audience {
        let member = |id: &String| user_event.segment_ids.contains(id);
        if !audience.include_segment_ids.is_empty()
            && !audience.include_segment_ids.iter().any(member)
        {
            return false;
        }
        if audience.exclude_segment_ids.iter().any(member) {
            return false;
        }
        if !crate::filter::all_match(&audience.trait_filters, user_event.traits.as_ref()) {
            return false;
        }
    }
    if let Some(schedule) = &campaign.schedule {
        if schedule
            .start_time
            .as_ref()
            .is_some_and(|t| now_ms < store::millis(t))
        {
            return false;
        }
        if schedule
            .end_time
            .as_ref()
            .is_some_and(|t| now_ms >= store::millis(t))
        {
            return false;
        }
    }
    true
}

/// The deliveries of one campaign for one event: none when it does not match, when
/// the user is in control, or when a template fails to render.
fn decide(
    templates: &TemplateCache,
    workspace: &str,
    stored: &Stored,
    event: &Event,
    user_event: &UserEvent,
    now_ms: i64,
) -> Vec<Delivery> {
    let campaign = &stored.campaign;
    if !matches(campaign, event, user_event, now_ms) {
        return Vec::new();
    }
    let weights: Vec<u32> = campaign.variants.iter().map(|v| v.weight).collect();
    let variant = match assign(
        &campaign.id,
        &event.user_id,
        &weights,
        campaign.control_weight,
    ) {
        Some(Assignment::Variant(index)) => &campaign.variants[index],
        Some(Assignment::Control) => {
            tracing::debug!(campaign_id = %campaign.id, user_id = %event.user_id, "user assigned to control");
            return Vec::new();
        }
        None => return Vec::new(),
    };
    let compiled = match templates.get(workspace, campaign, stored.update_time_ms) {
        Ok(compiled) => compiled,
        Err(e) => {
            tracing::warn!(campaign_id = %campaign.id, field = %e.field, error = %e.error, "campaign templates do not parse");
            return Vec::new();
        }
    };
    let globals = Globals::new(
        &event.user_id,
        user_event.traits.as_ref(),
        &event.name,
        event.properties.as_ref(),
        event.timestamp.as_ref(),
    );
    let expire_time = campaign.message_ttl.as_ref().map(|ttl| {
        let ttl_ms = ttl
            .seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(ttl.nanos) / 1_000_000);
        store::timestamp(now_ms.saturating_add(ttl_ms))
    });
    let mut deliveries = Vec::new();
    for content in &variant.contents {
        let rendered = match compiled.render(content, &globals) {
            Ok(rendered) => rendered,
            Err(e) => {
                // As the contract says, a failing template suppresses that delivery
                // only; the variant's other channels still go out.
                tracing::warn!(
                    campaign_id = %campaign.id,
                    variant_id = %variant.id,
                    field = %e.field,
                    error = %e.error,
                    "template failed to render, delivery suppressed"
                );
                continue;
            }
        };
        let channel = render::channel(content);
        deliveries.push(Delivery {
            idempotency_key: idempotency_key(&campaign.id, &event.message_id, channel),
            user_id: event.user_id.clone(),
            campaign_id: campaign.id.clone(),
            variant_id: variant.id.clone(),
            channel: channel as i32,
            content: Some(rendered),
            priority: campaign.priority,
            expire_time,
            category: campaign.category.clone(),
            address: address(channel, user_event.traits.as_ref()),
        });
    }
    deliveries
}

/// `campaign:message:channel`, one per firing and channel, at most 128 characters (long
/// message ids are replaced by their hash).
pub fn idempotency_key(campaign_id: &str, message_id: &str, channel: Channel) -> String {
    let channel = channel
        .as_str_name()
        .trim_start_matches("CHANNEL_")
        .to_ascii_lowercase();
    let key = format!("{campaign_id}:{message_id}:{channel}");
    if key.len() <= 128 {
        return key;
    }
    let digest = hex_prefix(&Sha256::digest(message_id.as_bytes()));
    format!("{campaign_id}:{digest}:{channel}")
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The address trait of `channel`: `email`, `phone` or `push_token`.
fn address(channel: Channel, traits: Option<&prost_types::Struct>) -> String {
    let name = match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        Channel::Push => "push_token",
        _ => return String::new(),
    };
    match traits
        .and_then(|t| t.fields.get(name))
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::common::v1::ComparisonOperator;
    use herald_proto::trigger::v1::{Audience, EventTrigger, PropertyFilter, Schedule, Trigger};

    fn campaign() -> Campaign {
        Campaign {
            id: "cmp_1".into(),
            trigger: Some(Trigger {
                kind: Some(TriggerKind::Event(EventTrigger {
                    event_name: "upgraded".into(),
                    property_filters: vec![PropertyFilter {
                        property: "plan".into(),
                        operator: ComparisonOperator::Eq as i32,
                        value: Some(prost_types::Value {
                            kind: Some(Kind::StringValue("pro".into())),
                        }),
                    }],
                })),
            }),
            ..Default::default()
        }
    }

    fn event(plan: &str) -> (Event, UserEvent) {
        let mut properties = prost_types::Struct::default();
        properties.fields.insert(
            "plan".into(),
            prost_types::Value {
                kind: Some(Kind::StringValue(plan.into())),
            },
        );
        let event = Event {
            message_id: "m1".into(),
            user_id: "u1".into(),
            name: "upgraded".into(),
            properties: Some(properties),
            ..Default::default()
        };
        let user_event = UserEvent {
            event: Some(event.clone()),
            segment_ids: vec!["seg_a".into()],
            ..Default::default()
        };
        (event, user_event)
    }

    #[test]
    fn trigger_name_and_filters_must_match() {
        let (e, ue) = event("pro");
        assert!(matches(&campaign(), &e, &ue, 0));
        let (e, ue) = event("free");
        assert!(!matches(&campaign(), &e, &ue, 0));
        let (mut e, ue) = event("pro");
        e.name = "other".into();
        assert!(!matches(&campaign(), &e, &ue, 0));
    }

    #[test]
    fn audience_segments_are_checked() {
        let (e, ue) = event("pro");
        let mut c = campaign();
        c.audience = Some(Audience {
            include_segment_ids: vec!["seg_b".into()],
            ..Default::default()
        });
        assert!(!matches(&c, &e, &ue, 0));
        c.audience = Some(Audience {
            include_segment_ids: vec!["seg_b".into(), "seg_a".into()],
            ..Default::default()
        });
        assert!(matches(&c, &e, &ue, 0));
        c.audience = Some(Audience {
            exclude_segment_ids: vec!["seg_a".into()],
            ..Default::default()
        });
        assert!(!matches(&c, &e, &ue, 0));
    }

    #[test]
    fn schedule_window_is_half_open() {
        let (e, ue) = event("pro");
        let mut c = campaign();
        c.schedule = Some(Schedule {
            start_time: Some(store::timestamp(1_000)),
            end_time: Some(store::timestamp(2_000)),
        });
        assert!(!matches(&c, &e, &ue, 999));
        assert!(matches(&c, &e, &ue, 1_000));
        assert!(matches(&c, &e, &ue, 1_999));
        assert!(!matches(&c, &e, &ue, 2_000));
    }

    #[test]
    fn a_failing_template_suppresses_only_its_delivery() {
        use herald_proto::common::v1::{
            InAppContent, MessageContent, SmsContent, message_content::Body,
        };
        let mut c = campaign();
        c.variants = vec![herald_proto::trigger::v1::Variant {
            id: "v1".into(),
            weight: 1,
            contents: vec![
                MessageContent {
                    body: Some(Body::InApp(InAppContent {
                        title: "Hi {{ user.id }}".into(),
                        ..Default::default()
                    })),
                },
                MessageContent {
                    body: Some(Body::Sms(SmsContent {
                        body: "{{ 1 | divided_by: 0 }}".into(),
                    })),
                },
            ],
            ..Default::default()
        }];
        let stored = Stored {
            campaign: c,
            update_time_ms: 1,
        };
        let (e, ue) = event("pro");
        let deliveries = decide(&TemplateCache::new(), "acme", &stored, &e, &ue, 0);
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].channel, Channel::InApp as i32);
        let Some(Body::InApp(content)) =
            deliveries[0].content.as_ref().and_then(|c| c.body.clone())
        else {
            panic!("in-app content expected")
        };
        assert_eq!(content.title, "Hi u1");
        assert_eq!(deliveries[0].idempotency_key, "cmp_1:m1:in_app");
    }

    #[test]
    fn idempotency_keys_are_per_channel_and_bounded() {
        assert_eq!(
            idempotency_key("cmp_1", "m1", Channel::InApp),
            "cmp_1:m1:in_app"
        );
        let long = "x".repeat(128);
        let key = idempotency_key("cmp_1", &long, Channel::Email);
        assert!(key.len() <= 128);
        assert!(key.starts_with("cmp_1:") && key.ends_with(":email"));
        assert_eq!(key, idempotency_key("cmp_1", &long, Channel::Email));
    }
}
