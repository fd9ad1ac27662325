//! One campaign against one event: the gates in order (trigger, schedule, audience,
//! assignment, render), each with its verdict, and what is to be sent.

use herald_conditions::Condition;
use herald_core::time::ms_of_proto;
use herald_proto::common::v1::{Channel, MessageContent};
use prost_types::Struct;
use prost_types::value::Kind;
use sha2::{Digest, Sha256};

use crate::CompiledCampaign;
use crate::assign::{Assignment, assign};
use crate::render::{self, Globals};

/// An event that may fire a campaign, with what is known of its user.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence<'a> {
    pub user_id: &'a str,
    /// The event's message_id: what makes a firing unique.
    pub message_id: &'a str,
    pub name: &'a str,
    pub properties: Option<&'a Struct>,
    pub timestamp: Option<&'a prost_types::Timestamp>,
    /// The user's traits when the event was processed.
    pub traits: Option<&'a Struct>,
    /// The segments the user is in after the event, as segmentation computed them
    /// (`UserEvent.segment_ids`); the audience's segment lists are checked against them.
    pub segment_ids: &'a [String],
}

/// A gate of the decision, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The trigger: the event's name and property filters.
    Trigger,
    /// The campaign's schedule window.
    Schedule,
    /// The audience: segments and trait filters.
    Audience,
    /// The variant or control assignment.
    Assignment,
    /// Rendering the templates of one content, by channel.
    Render(Channel),
}

/// What one gate found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub gate: Gate,
    pub passed: bool,
    /// Why, in words, e.g. `property filter 0 (plan) does not match`.
    pub reason: String,
}

/// One message to send: a rendered content for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    /// `campaign:message_id:channel`: the same firing always yields the same key.
    pub idempotency_key: String,
    pub channel: Channel,
    pub variant_id: String,
    pub content: MessageContent,
    /// The address trait for push (`push_token`), email (`email`) and SMS (`phone`).
    pub address: String,
    /// When the message expires, in milliseconds; `None` for never.
    pub expire_ms: Option<i64>,
}

/// Where the decision ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A gate failed: nothing is sent (the failing verdict says which and why).
    Suppressed,
    /// The user is in the control holdout: nothing is sent, the assignment counts.
    Control,
    /// These messages go out (fewer than the variant's contents when some failed to
    /// render).
    Send(Vec<Send>),
}

/// The decision for one campaign and one occurrence, with every verdict up to the
/// first failing gate (and every content's render verdict).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub campaign_id: String,
    pub verdicts: Vec<Verdict>,
    pub outcome: Outcome,
}

impl Decision {
    /// The messages to send; empty unless the campaign fired.
    pub fn sends(&self) -> &[Send] {
        match &self.outcome {
            Outcome::Send(sends) => sends,
            _ => &[],
        }
    }

    /// The first gate that failed, if one did.
    pub fn failed(&self) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| !v.passed)
    }
}

fn failing(conditions: &[Condition], root: Option<&Struct>) -> Option<usize> {
    conditions.iter().position(|c| !c.matches(root))
}

/// Decides whether `campaign` fires for `occurrence` at `now_ms`, and what it sends.
pub fn decide(campaign: &CompiledCampaign, occurrence: &Occurrence, now_ms: i64) -> Decision {
    let mut verdicts = Vec::new();
    let outcome = gates(campaign, occurrence, now_ms, &mut |gate, passed, reason| {
        verdicts.push(Verdict {
            gate,
            passed,
            reason,
        });
        passed
    });
    Decision {
        campaign_id: campaign.id().to_owned(),
        verdicts,
        outcome,
    }
}

/// Runs the gates in order, reporting each verdict through `verdict` (which returns
/// whether it passed), and says where the decision ended.
fn gates(
    campaign: &CompiledCampaign,
    occurrence: &Occurrence,
    now_ms: i64,
    verdict: &mut dyn FnMut(Gate, bool, String) -> bool,
) -> Outcome {
    let trigger_ok = match &campaign.trigger {
        None => verdict(
            Gate::Trigger,
            false,
            "the campaign has no event trigger".into(),
        ),
        Some(t) if t.name != occurrence.name => verdict(
            Gate::Trigger,
            false,
            format!(
                "the trigger is event {:?}, not {:?}",
                t.name, occurrence.name
            ),
        ),
        Some(t) => match failing(&t.conditions, occurrence.properties) {
            Some(i) => verdict(
                Gate::Trigger,
                false,
                format!(
                    "property filter {i} ({}) does not match",
                    t.conditions[i].path
                ),
            ),
            None => verdict(Gate::Trigger, true, format!("event {:?} matched", t.name)),
        },
    };
    if !trigger_ok
        || !schedule(campaign, now_ms, verdict)
        || !audience(campaign, occurrence, verdict)
    {
        return Outcome::Suppressed;
    }
    let c = campaign.campaign();
    let weights: Vec<u32> = c.variants.iter().map(|v| v.weight).collect();
    let variant = match assign(&c.id, occurrence.user_id, &weights, c.control_weight) {
        Some(Assignment::Variant(index)) => {
            let variant = &c.variants[index];
            verdict(Gate::Assignment, true, format!("variant {:?}", variant.id));
            variant
        }
        Some(Assignment::Control) => {
            verdict(
                Gate::Assignment,
                true,
                "control holdout: nothing is sent".into(),
            );
            return Outcome::Control;
        }
        None => {
            verdict(Gate::Assignment, false, "every weight is 0".into());
            return Outcome::Suppressed;
        }
    };
    let globals = Globals::new(
        occurrence.user_id,
        occurrence.traits,
        occurrence.name,
        occurrence.properties,
        occurrence.timestamp,
    );
    let expire_ms = campaign.ttl_ms().map(|ttl| now_ms.saturating_add(ttl));
    let mut sends = Vec::new();
    for content in &variant.contents {
        let channel = render::channel(content);
        match campaign.templates.render(content, &globals) {
            Ok(rendered) => {
                verdict(Gate::Render(channel), true, "rendered".into());
                sends.push(Send {
                    idempotency_key: idempotency_key(&c.id, occurrence.message_id, channel),
                    channel,
                    variant_id: variant.id.clone(),
                    content: rendered,
                    address: address(channel, occurrence.traits),
                    expire_ms,
                });
            }
            // As the contract says, a failing template suppresses that content only; the
            // variant's other channels still go out.
            Err(e) => {
                verdict(
                    Gate::Render(channel),
                    false,
                    format!("{}: {}", e.field, e.error),
                );
            }
        }
    }
    if sends.is_empty() {
        Outcome::Suppressed
    } else {
        Outcome::Send(sends)
    }
}

fn schedule(
    campaign: &CompiledCampaign,
    now_ms: i64,
    verdict: &mut dyn FnMut(Gate, bool, String) -> bool,
) -> bool {
    let Some(schedule) = &campaign.campaign().schedule else {
        return verdict(Gate::Schedule, true, "no schedule".into());
    };
    if let Some(start) = schedule.start_time.as_ref().map(ms_of_proto)
        && now_ms < start
    {
        return verdict(
            Gate::Schedule,
            false,
            format!("the campaign starts at {start} ms"),
        );
    }
    if let Some(end) = schedule.end_time.as_ref().map(ms_of_proto)
        && now_ms >= end
    {
        return verdict(
            Gate::Schedule,
            false,
            format!("the campaign ended at {end} ms"),
        );
    }
    verdict(Gate::Schedule, true, "inside the schedule".into())
}

fn audience(
    campaign: &CompiledCampaign,
    occurrence: &Occurrence,
    verdict: &mut dyn FnMut(Gate, bool, String) -> bool,
) -> bool {
    let Some(audience) = &campaign.campaign().audience else {
        return verdict(Gate::Audience, true, "every user".into());
    };
    // The user's segments after the event, as segmentation computed them.
    let member = |id: &&String| occurrence.segment_ids.contains(*id);
    let included = if audience.include_segment_ids.is_empty() {
        None
    } else {
        match audience.include_segment_ids.iter().find(member) {
            Some(id) => Some(id),
            None => {
                return verdict(
                    Gate::Audience,
                    false,
                    format!(
                        "the user is in none of the included segments {:?}",
                        audience.include_segment_ids
                    ),
                );
            }
        }
    };
    if let Some(id) = audience.exclude_segment_ids.iter().find(member) {
        return verdict(
            Gate::Audience,
            false,
            format!("the user is in excluded segment {id:?}"),
        );
    }
    if let Some(i) = failing(&campaign.trait_conditions, occurrence.traits) {
        return verdict(
            Gate::Audience,
            false,
            format!(
                "trait filter {i} ({}) does not match",
                campaign.trait_conditions[i].path
            ),
        );
    }
    let reason = match included {
        Some(id) => format!("in the audience, through included segment {id:?}"),
        None => "in the audience".into(),
    };
    verdict(Gate::Audience, true, reason)
}

/// `campaign:message:channel`, one per firing and channel, at most 128 characters (long
/// message ids are replaced by their hash).
pub fn idempotency_key(campaign_id: &str, message_id: &str, channel: Channel) -> String {
    let channel = render::channel_name(channel);
    let key = format!("{campaign_id}:{message_id}:{channel}");
    if key.len() <= 128 {
        return key;
    }
    let digest: String = Sha256::digest(message_id.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{campaign_id}:{digest}:{channel}")
}

/// The address trait of `channel`: `email`, `phone` or `push_token`.
fn address(channel: Channel, traits: Option<&Struct>) -> String {
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
    use herald_core::time::proto_from_ms;
    use herald_proto::common::v1::{
        ComparisonOperator, InAppContent, SmsContent, message_content::Body,
    };
    use herald_proto::trigger::v1::{
        Audience, Campaign, EventTrigger, PropertyFilter, Schedule, Trigger, Variant,
        trigger::Kind as TriggerKind,
    };

    fn text(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    fn campaign() -> Campaign {
        Campaign {
            id: "cmp_1".into(),
            trigger: Some(Trigger {
                kind: Some(TriggerKind::Event(EventTrigger {
                    event_name: "upgraded".into(),
                    property_filters: vec![PropertyFilter {
                        property: "plan".into(),
                        operator: ComparisonOperator::Eq as i32,
                        value: Some(text("pro")),
                    }],
                })),
            }),
            variants: vec![Variant {
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
            }],
            ..Default::default()
        }
    }

    fn compile(c: Campaign) -> CompiledCampaign {
        CompiledCampaign::compile(&render::parser(), c, 1).expect("compiles")
    }

    fn properties(plan: &str) -> Struct {
        Struct {
            fields: [("plan".to_owned(), text(plan))].into_iter().collect(),
        }
    }

    fn occurrence<'a>(properties: &'a Struct, segments: &'a [String]) -> Occurrence<'a> {
        Occurrence {
            user_id: "u1",
            message_id: "m1",
            name: "upgraded",
            properties: Some(properties),
            timestamp: None,
            traits: None,
            segment_ids: segments,
        }
    }

    fn gates(d: &Decision) -> Vec<(Gate, bool)> {
        d.verdicts.iter().map(|v| (v.gate, v.passed)).collect()
    }

    #[test]
    fn every_gate_is_recorded_and_a_failing_template_suppresses_only_its_content() {
        let pro = properties("pro");
        let d = decide(&compile(campaign()), &occurrence(&pro, &[]), 0);
        assert_eq!(
            gates(&d),
            [
                (Gate::Trigger, true),
                (Gate::Schedule, true),
                (Gate::Audience, true),
                (Gate::Assignment, true),
                (Gate::Render(Channel::InApp), true),
                (Gate::Render(Channel::Sms), false),
            ]
        );
        assert_eq!(d.sends().len(), 1);
        let send = &d.sends()[0];
        assert_eq!(send.idempotency_key, "cmp_1:m1:in_app");
        let Some(Body::InApp(content)) = &send.content.body else {
            panic!("in-app content expected")
        };
        assert_eq!(content.title, "Hi u1");
    }

    #[test]
    fn a_filter_that_does_not_match_stops_at_the_trigger() {
        let free = properties("free");
        let d = decide(&compile(campaign()), &occurrence(&free, &[]), 0);
        assert_eq!(gates(&d), [(Gate::Trigger, false)]);
        assert_eq!(d.outcome, Outcome::Suppressed);
        assert!(
            d.failed().unwrap().reason.contains("plan"),
            "{:?}",
            d.failed()
        );
    }

    #[test]
    fn the_schedule_window_is_half_open() {
        let mut c = campaign();
        c.schedule = Some(Schedule {
            start_time: Some(proto_from_ms(1_000)),
            end_time: Some(proto_from_ms(2_000)),
        });
        let c = compile(c);
        let pro = properties("pro");
        let fired = |now| !decide(&c, &occurrence(&pro, &[]), now).sends().is_empty();
        assert!(!fired(999));
        assert!(fired(1_000));
        assert!(fired(1_999));
        assert!(!fired(2_000));
    }

    #[test]
    fn audience_segments_are_checked() {
        let pro = properties("pro");
        let segments = vec!["seg_a".to_owned()];
        let mut c = campaign();
        c.audience = Some(Audience {
            include_segment_ids: vec!["seg_b".into()],
            ..Default::default()
        });
        let d = decide(&compile(c.clone()), &occurrence(&pro, &segments), 0);
        let failed = d.failed().expect("the audience fails");
        assert_eq!(failed.gate, Gate::Audience);
        assert!(failed.reason.contains("\"seg_b\""), "{}", failed.reason);
        assert_eq!(d.outcome, Outcome::Suppressed);

        c.audience = Some(Audience {
            include_segment_ids: vec!["seg_b".into(), "seg_a".into()],
            exclude_segment_ids: vec!["seg_c".into()],
            ..Default::default()
        });
        let d = decide(&compile(c.clone()), &occurrence(&pro, &segments), 0);
        assert!(!d.sends().is_empty());
        let audience = d.verdicts.iter().find(|v| v.gate == Gate::Audience);
        assert!(
            audience.is_some_and(|v| v.passed && v.reason.contains("\"seg_a\"")),
            "{audience:?}"
        );

        // An excluded segment wins over an included one, and is named.
        let both = vec!["seg_a".to_owned(), "seg_c".to_owned()];
        let d = decide(&compile(c.clone()), &occurrence(&pro, &both), 0);
        let failed = d.failed().expect("excluded");
        assert_eq!(failed.gate, Gate::Audience);
        assert_eq!(failed.reason, "the user is in excluded segment \"seg_c\"");
        assert!(d.sends().is_empty());

        // Without an include list, only the exclusions count.
        c.audience = Some(Audience {
            exclude_segment_ids: vec!["seg_a".into()],
            ..Default::default()
        });
        assert!(
            decide(&compile(c.clone()), &occurrence(&pro, &segments), 0)
                .sends()
                .is_empty()
        );
        assert!(
            !decide(&compile(c), &occurrence(&pro, &[]), 0)
                .sends()
                .is_empty()
        );
    }

    #[test]
    fn control_sends_nothing_but_says_so() {
        let mut c = campaign();
        c.variants[0].weight = 0;
        c.control_weight = 1;
        let pro = properties("pro");
        let d = decide(&compile(c), &occurrence(&pro, &[]), 0);
        assert_eq!(d.outcome, Outcome::Control);
        assert_eq!(
            d.verdicts.last().map(|v| (v.gate, v.passed)),
            Some((Gate::Assignment, true))
        );
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
