//! Checks campaigns against the contract, naming every field that is wrong, and fills in
//! what the server assigns (variant ids).

use std::collections::HashSet;

use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{ActionKind, ComparisonOperator, InAppFormat};
use herald_proto::trigger::v1::{
    Campaign, PropertyFilter, Trigger, local_schedule, time_trigger, trigger::Kind as TriggerKind,
};
use herald_runtime::FieldViolation;
use prost_types::Duration;

use crate::render;

/// Most variants of a campaign.
pub const MAX_VARIANTS: usize = 10;
/// Most contents of a variant.
pub const MAX_CONTENTS: usize = 5;
const DAY_SECS: i64 = 86_400;

fn check_len(out: &mut Vec<FieldViolation>, field: &str, value: &str, min: usize, max: usize) {
    let len = value.chars().count();
    if min > 0 && len == 0 {
        out.push(FieldViolation::new(field, "is required"));
    } else if len < min || len > max {
        out.push(FieldViolation::new(
            field,
            format!("must be {min}..={max} characters, got {len}"),
        ));
    }
}

fn secs(d: &Duration) -> f64 {
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

fn check_duration(
    out: &mut Vec<FieldViolation>,
    field: &str,
    d: Option<&Duration>,
    min_secs: i64,
    max_secs: i64,
) {
    match d {
        None => out.push(FieldViolation::new(field, "is required")),
        Some(d) if secs(d) < min_secs as f64 || secs(d) > max_secs as f64 => {
            out.push(FieldViolation::new(
                field,
                format!("must be between {min_secs}s and {max_secs}s"),
            ))
        }
        Some(_) => {}
    }
}

fn check_filters(out: &mut Vec<FieldViolation>, field: &str, filters: &[PropertyFilter]) {
    use prost_types::value::Kind;
    for (i, f) in filters.iter().enumerate() {
        let field = format!("{field}[{i}]");
        check_len(out, &format!("{field}.property"), &f.property, 1, 256);
        match ComparisonOperator::try_from(f.operator) {
            Err(_) | Ok(ComparisonOperator::Unspecified) => out.push(FieldViolation::new(
                format!("{field}.operator"),
                "must be a known comparison operator",
            )),
            Ok(ComparisonOperator::Exists | ComparisonOperator::NotExists) => {}
            Ok(ComparisonOperator::In | ComparisonOperator::NotIn) => {
                if !matches!(
                    f.value.as_ref().and_then(|v| v.kind.as_ref()),
                    Some(Kind::ListValue(_))
                ) {
                    out.push(FieldViolation::new(
                        format!("{field}.value"),
                        "must be a list for IN and NOT_IN",
                    ));
                }
            }
            Ok(_) => {
                if f.value.as_ref().and_then(|v| v.kind.as_ref()).is_none() {
                    out.push(FieldViolation::new(
                        format!("{field}.value"),
                        "is required for this operator",
                    ));
                }
            }
        }
    }
}

fn check_time_zone(out: &mut Vec<FieldViolation>, field: &str, tz: &str) {
    if !tz.is_empty() && jiff::tz::TimeZone::get(tz).is_err() {
        out.push(FieldViolation::new(
            field,
            format!("unknown IANA time zone {tz:?}"),
        ));
    }
}

fn check_local_time(out: &mut Vec<FieldViolation>, field: &str, value: &str) {
    let ok = value.len() == 5
        && value.as_bytes()[2] == b':'
        && value[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && value[3..].parse::<u8>().is_ok_and(|m| m < 60);
    if !ok {
        out.push(FieldViolation::new(field, "must be a local time \"HH:MM\""));
    }
}

fn check_trigger(out: &mut Vec<FieldViolation>, trigger: Option<&Trigger>) {
    let Some(kind) = trigger.and_then(|t| t.kind.as_ref()) else {
        out.push(FieldViolation::new(
            "campaign.trigger",
            "is required: set exactly one kind of trigger",
        ));
        return;
    };
    match kind {
        TriggerKind::Event(e) => {
            check_len(
                out,
                "campaign.trigger.event.event_name",
                &e.event_name,
                1,
                128,
            );
            check_filters(
                out,
                "campaign.trigger.event.property_filters",
                &e.property_filters,
            );
        }
        TriggerKind::SegmentEntry(s) => check_len(
            out,
            "campaign.trigger.segment_entry.segment_id",
            &s.segment_id,
            1,
            128,
        ),
        TriggerKind::Goal(g) => {
            check_len(
                out,
                "campaign.trigger.goal.event_name",
                &g.event_name,
                1,
                128,
            );
            check_filters(
                out,
                "campaign.trigger.goal.property_filters",
                &g.property_filters,
            );
        }
        TriggerKind::Time(t) => match &t.kind {
            None => out.push(FieldViolation::new(
                "campaign.trigger.time",
                "must set exactly one kind of time trigger",
            )),
            Some(time_trigger::Kind::DelayAfterEvent(d)) => {
                let f = "campaign.trigger.time.delay_after_event";
                check_len(out, &format!("{f}.event_name"), &d.event_name, 1, 128);
                check_filters(out, &format!("{f}.property_filters"), &d.property_filters);
                check_duration(
                    out,
                    &format!("{f}.delay"),
                    d.delay.as_ref(),
                    1,
                    90 * DAY_SECS,
                );
                check_len(
                    out,
                    &format!("{f}.cancel_event_name"),
                    &d.cancel_event_name,
                    0,
                    128,
                );
            }
            Some(time_trigger::Kind::Inactivity(i)) => {
                let f = "campaign.trigger.time.inactivity";
                check_len(out, &format!("{f}.event_name"), &i.event_name, 1, 128);
                check_len(
                    out,
                    &format!("{f}.expected_event_name"),
                    &i.expected_event_name,
                    0,
                    128,
                );
                check_duration(
                    out,
                    &format!("{f}.within"),
                    i.within.as_ref(),
                    60,
                    90 * DAY_SECS,
                );
            }
            Some(time_trigger::Kind::Schedule(s)) => {
                let f = "campaign.trigger.time.schedule";
                match &s.when {
                    None => out.push(FieldViolation::new(
                        format!("{f}.when"),
                        "must set cron or local_time",
                    )),
                    Some(local_schedule::When::Cron(c)) if c.split_whitespace().count() != 5 => out
                        .push(FieldViolation::new(
                            format!("{f}.cron"),
                            "must be a five-field cron expression",
                        )),
                    Some(local_schedule::When::LocalTime(t))
                        if t.parse::<jiff::civil::DateTime>().is_err() || t.len() != 16 =>
                    {
                        out.push(FieldViolation::new(
                            format!("{f}.local_time"),
                            "must be \"YYYY-MM-DDTHH:MM\"",
                        ))
                    }
                    Some(_) => {}
                }
                check_time_zone(out, &format!("{f}.default_time_zone"), &s.default_time_zone);
            }
        },
    }
}

fn valid_variant_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Gives every variant without an id the first free `v1`, `v2`, … id.
pub fn assign_variant_ids(campaign: &mut Campaign) {
    let mut taken: HashSet<String> = campaign.variants.iter().map(|v| v.id.clone()).collect();
    let mut next = 1;
    for variant in campaign.variants.iter_mut().filter(|v| v.id.is_empty()) {
        while taken.contains(&format!("v{next}")) {
            next += 1;
        }
        variant.id = format!("v{next}");
        taken.insert(variant.id.clone());
    }
}

/// Every violation of the contract by `campaign`, whatever its status.
pub fn campaign(parser: &liquid::Parser, campaign: &Campaign) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_len(&mut out, "campaign.name", &campaign.name, 1, 128);
    check_len(
        &mut out,
        "campaign.description",
        &campaign.description,
        0,
        1024,
    );
    check_len(&mut out, "campaign.category", &campaign.category, 0, 64);
    check_trigger(&mut out, campaign.trigger.as_ref());
    if let Some(audience) = &campaign.audience {
        for (i, id) in audience.include_segment_ids.iter().enumerate() {
            check_len(
                &mut out,
                &format!("campaign.audience.include_segment_ids[{i}]"),
                id,
                1,
                128,
            );
        }
        for (i, id) in audience.exclude_segment_ids.iter().enumerate() {
            check_len(
                &mut out,
                &format!("campaign.audience.exclude_segment_ids[{i}]"),
                id,
                1,
                128,
            );
        }
        check_filters(
            &mut out,
            "campaign.audience.trait_filters",
            &audience.trait_filters,
        );
    }
    if campaign.variants.len() > MAX_VARIANTS {
        out.push(FieldViolation::new(
            "campaign.variants",
            format!("must hold at most {MAX_VARIANTS} variants"),
        ));
    }
    let mut ids = HashSet::new();
    for (v, variant) in campaign.variants.iter().enumerate() {
        let field = format!("campaign.variants[{v}]");
        if !valid_variant_id(&variant.id) {
            out.push(FieldViolation::new(
                format!("{field}.id"),
                "must be 1..=64 characters of [A-Za-z0-9_-]",
            ));
        } else if !ids.insert(variant.id.as_str()) {
            out.push(FieldViolation::new(
                format!("{field}.id"),
                format!("duplicates variant id {:?}", variant.id),
            ));
        }
        check_len(&mut out, &format!("{field}.name"), &variant.name, 0, 128);
        if variant.contents.len() > MAX_CONTENTS {
            out.push(FieldViolation::new(
                format!("{field}.contents"),
                format!("must hold at most {MAX_CONTENTS} contents"),
            ));
        }
        let mut channels = HashSet::new();
        for (c, content) in variant.contents.iter().enumerate() {
            let field = format!("{field}.contents[{c}]");
            let Some(body) = &content.body else {
                out.push(FieldViolation::new(
                    field,
                    "must set exactly one channel's content",
                ));
                continue;
            };
            if !channels.insert(render::channel(content)) {
                out.push(FieldViolation::new(
                    &field,
                    "repeats a channel: at most one content per channel",
                ));
            }
            if let Body::InApp(in_app) = body {
                check_in_app(&mut out, &field, in_app);
            }
            out.extend(render::check_templates(parser, &field, content));
        }
    }
    if let Some(cap) = &campaign.frequency_cap {
        if cap.max_deliveries == 0 {
            out.push(FieldViolation::new(
                "campaign.frequency_cap.max_deliveries",
                "must be at least 1",
            ));
        }
        if let Some(window) = &cap.window
            && secs(window) < 60.0
        {
            out.push(FieldViolation::new(
                "campaign.frequency_cap.window",
                "must be at least 1 minute",
            ));
        }
    }
    if let Some(q) = &campaign.quiet_hours {
        check_local_time(
            &mut out,
            "campaign.quiet_hours.start_local_time",
            &q.start_local_time,
        );
        check_local_time(
            &mut out,
            "campaign.quiet_hours.end_local_time",
            &q.end_local_time,
        );
        check_time_zone(
            &mut out,
            "campaign.quiet_hours.default_time_zone",
            &q.default_time_zone,
        );
    }
    if let Some(s) = &campaign.schedule
        && let (Some(start), Some(end)) = (&s.start_time, &s.end_time)
        && (end.seconds, end.nanos) <= (start.seconds, start.nanos)
    {
        out.push(FieldViolation::new(
            "campaign.schedule.end_time",
            "must be after start_time",
        ));
    }
    if let Some(goal) = &campaign.conversion_goal {
        check_len(
            &mut out,
            "campaign.conversion_goal.event_name",
            &goal.event_name,
            1,
            128,
        );
        if let Some(w) = &goal.attribution_window {
            check_duration(
                &mut out,
                "campaign.conversion_goal.attribution_window",
                Some(w),
                1,
                90 * DAY_SECS,
            );
        }
    }
    if let Some(ttl) = &campaign.message_ttl
        && secs(ttl) <= 0.0
    {
        out.push(FieldViolation::new(
            "campaign.message_ttl",
            "must be positive",
        ));
    }
    out
}

fn check_in_app(
    out: &mut Vec<FieldViolation>,
    field: &str,
    c: &herald_proto::common::v1::InAppContent,
) {
    let format = InAppFormat::try_from(c.format).unwrap_or(InAppFormat::Unspecified);
    if format == InAppFormat::Unspecified {
        out.push(FieldViolation::new(
            format!("{field}.in_app.format"),
            "is required",
        ));
    }
    if format == InAppFormat::Tooltip
        && c.tooltip_target
            .as_ref()
            .is_none_or(|t| t.selector.is_empty())
    {
        out.push(FieldViolation::new(
            format!("{field}.in_app.tooltip_target.selector"),
            "is required for tooltips",
        ));
    }
    if c.actions.len() > 4 {
        out.push(FieldViolation::new(
            format!("{field}.in_app.actions"),
            "must hold at most 4 actions",
        ));
    }
    let mut ids = HashSet::new();
    for (a, action) in c.actions.iter().enumerate() {
        let field = format!("{field}.in_app.actions[{a}]");
        check_len(out, &format!("{field}.id"), &action.id, 1, 64);
        if !action.id.is_empty() && !ids.insert(action.id.as_str()) {
            out.push(FieldViolation::new(
                format!("{field}.id"),
                "must be unique within the message",
            ));
        }
        if matches!(
            ActionKind::try_from(action.kind),
            Err(_) | Ok(ActionKind::Unspecified)
        ) {
            out.push(FieldViolation::new(format!("{field}.kind"), "is required"));
        }
    }
}

/// What an ACTIVE campaign needs beyond validity: variants with contents, and weights
/// that give someone a bucket.
pub fn completeness(campaign: &Campaign) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if campaign.variants.is_empty() {
        out.push(FieldViolation::new(
            "campaign.variants",
            "an active campaign needs at least one variant",
        ));
    }
    for (v, variant) in campaign.variants.iter().enumerate() {
        if variant.contents.is_empty() {
            out.push(FieldViolation::new(
                format!("campaign.variants[{v}].contents"),
                "needs at least one content",
            ));
        }
    }
    let total: u64 = campaign
        .variants
        .iter()
        .map(|v| u64::from(v.weight))
        .sum::<u64>()
        + u64::from(campaign.control_weight);
    if !campaign.variants.is_empty() && total == 0 {
        out.push(FieldViolation::new(
            "campaign.variants[0].weight",
            "the variants' weights plus control_weight must be greater than 0",
        ));
    }
    out.extend(not_enforced_yet(campaign));
    out
}

/// Settings this version stores but does not apply when a campaign fires. An active
/// campaign must not rely on them: a cap or an exclusion silently ignored would message
/// people it promised not to. They can be saved on drafts.
fn not_enforced_yet(campaign: &Campaign) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let why = "is not enforced by this Herald version yet, so an active campaign cannot use it";
    if let Some(trigger) = &campaign.trigger
        && !matches!(
            trigger.kind,
            Some(herald_proto::trigger::v1::trigger::Kind::Event(_)) | None
        )
    {
        out.push(FieldViolation::new(
            "campaign.trigger",
            format!("only event triggers fire; this kind {why}"),
        ));
    }
    if campaign.frequency_cap.is_some() {
        out.push(FieldViolation::new("campaign.frequency_cap", why));
    }
    if campaign.quiet_hours.is_some() {
        out.push(FieldViolation::new("campaign.quiet_hours", why));
    }
    if let Some(audience) = &campaign.audience {
        if !audience.include_segment_ids.is_empty() {
            out.push(FieldViolation::new(
                "campaign.audience.include_segment_ids",
                why,
            ));
        }
        if !audience.exclude_segment_ids.is_empty() {
            out.push(FieldViolation::new(
                "campaign.audience.exclude_segment_ids",
                why,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::common::v1::{InAppContent, MessageContent, SmsContent};
    use herald_proto::trigger::v1::{EventTrigger, Variant};

    fn valid() -> Campaign {
        Campaign {
            name: "Welcome".into(),
            trigger: Some(Trigger {
                kind: Some(TriggerKind::Event(EventTrigger {
                    event_name: "signed_up".into(),
                    property_filters: vec![],
                })),
            }),
            variants: vec![Variant {
                id: "a".into(),
                weight: 1,
                contents: vec![MessageContent {
                    body: Some(Body::InApp(InAppContent {
                        format: InAppFormat::Modal as i32,
                        title: "Hi {{ user.first_name }}".into(),
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn fields(c: &Campaign) -> Vec<String> {
        campaign(&render::parser(), c)
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_valid_campaign_passes() {
        assert!(fields(&valid()).is_empty());
        assert!(completeness(&valid()).is_empty());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut c = valid();
        c.name = String::new();
        c.trigger = Some(Trigger {
            kind: Some(TriggerKind::Event(EventTrigger::default())),
        });
        c.variants.push(Variant {
            id: "a".into(),
            contents: vec![MessageContent {
                body: Some(Body::Sms(SmsContent {
                    body: "{% if %}".into(),
                })),
            }],
            ..Default::default()
        });
        c.variants.push(Variant {
            id: "bad id!".into(),
            contents: vec![MessageContent::default()],
            ..Default::default()
        });
        assert_eq!(
            fields(&c),
            [
                "campaign.name",
                "campaign.trigger.event.event_name",
                "campaign.variants[1].id",
                "campaign.variants[1].contents[0].sms.body",
                "campaign.variants[2].id",
                "campaign.variants[2].contents[0]",
            ]
        );
    }

    #[test]
    fn a_trigger_is_required() {
        let mut c = valid();
        c.trigger = None;
        assert_eq!(fields(&c), ["campaign.trigger"]);
    }

    #[test]
    fn filters_are_checked() {
        let mut c = valid();
        c.trigger = Some(Trigger {
            kind: Some(TriggerKind::Event(EventTrigger {
                event_name: "x".into(),
                property_filters: vec![
                    PropertyFilter {
                        property: "plan".into(),
                        operator: 0,
                        value: None,
                    },
                    PropertyFilter {
                        property: "plan".into(),
                        operator: ComparisonOperator::In as i32,
                        value: Some(prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("a".into())),
                        }),
                    },
                ],
            })),
        });
        assert_eq!(
            fields(&c),
            [
                "campaign.trigger.event.property_filters[0].operator",
                "campaign.trigger.event.property_filters[1].value"
            ]
        );
    }

    #[test]
    fn settings_not_enforced_yet_keep_a_campaign_from_going_active() {
        let mut c = valid();
        c.frequency_cap = Some(Default::default());
        c.audience = Some(herald_proto::trigger::v1::Audience {
            exclude_segment_ids: vec!["paying".into()],
            ..Default::default()
        });
        let fields: Vec<String> = completeness(&c).into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "campaign.frequency_cap",
                "campaign.audience.exclude_segment_ids"
            ]
        );
    }

    #[test]
    fn zero_weights_make_an_incomplete_campaign() {
        let mut c = valid();
        c.variants[0].weight = 0;
        let violations = completeness(&c);
        assert_eq!(violations[0].field, "campaign.variants[0].weight");
        c.control_weight = 1;
        assert!(completeness(&c).is_empty());
        c.variants.clear();
        assert_eq!(completeness(&c)[0].field, "campaign.variants");
    }

    #[test]
    fn variant_ids_are_assigned_without_clashes() {
        let mut c = valid();
        c.variants = vec![
            Variant {
                id: String::new(),
                ..Default::default()
            },
            Variant {
                id: "v1".into(),
                ..Default::default()
            },
            Variant {
                id: String::new(),
                ..Default::default()
            },
        ];
        assign_variant_ids(&mut c);
        let ids: Vec<&str> = c.variants.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["v2", "v1", "v3"]);
    }
}
