//! Checks campaigns against the contract, naming every field that is wrong, and fills in
//! what the server assigns (variant ids). [`campaign`] holds for any campaign;
//! [`completeness`] adds what an ACTIVE campaign needs, including the refusal of settings
//! this version stores but does not enforce; [`references_segment`] says whether a
//! campaign names a segment.

use std::collections::HashSet;

use herald_conditions::Condition;
use herald_core::time::duration_secs;
use herald_core::{FieldViolation, Len, Violations, limits};
use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{ActionKind, InAppFormat};
use herald_proto::trigger::v1::{
    Campaign, PropertyFilter, Trigger, local_schedule, time_trigger, trigger::Kind as TriggerKind,
};
use prost_types::Duration;

use crate::render;

/// The largest sequential tuning N* a campaign may ask for.
const MAX_SEQUENTIAL_TUNING: u32 = 1_000_000_000;
/// Most variants of a campaign.
pub const MAX_VARIANTS: usize = 10;
/// Most contents of a variant.
pub const MAX_CONTENTS: usize = 5;
/// Longest segment id a campaign may name, in characters.
pub const MAX_SEGMENT_ID: usize = 128;
const DAY_SECS: i64 = 86_400;
const NAME: Len = Len::required(limits::EVENT_NAME);

fn check_duration(
    out: &mut Violations,
    field: &str,
    d: Option<&Duration>,
    min_secs: i64,
    max_secs: i64,
) {
    match d {
        None => out.push(field, "is required"),
        Some(d) if duration_secs(d) < min_secs as f64 || duration_secs(d) > max_secs as f64 => out
            .push(
                field,
                format!("must be between {min_secs}s and {max_secs}s"),
            ),
        Some(_) => {}
    }
}

/// The conditions of `filters`, or what is wrong with them under `field`.
pub fn conditions(
    field: &str,
    filters: &[PropertyFilter],
) -> Result<Vec<Condition>, Vec<FieldViolation>> {
    let mut out = Violations::new();
    let mut conditions = Vec::with_capacity(filters.len());
    for (i, f) in filters.iter().enumerate() {
        match Condition::new(
            &format!("{field}[{i}]"),
            &f.property,
            f.operator,
            f.value.as_ref(),
        ) {
            Ok(c) => conditions.push(c),
            Err(v) => out.extend(v),
        }
    }
    out.finish().map(|()| conditions)
}

fn check_filters(out: &mut Violations, field: &str, filters: &[PropertyFilter]) {
    if let Err(v) = conditions(field, filters) {
        out.extend(v);
    }
}

pub(crate) fn check_time_zone(out: &mut Violations, field: &str, tz: &str) {
    if !tz.is_empty() && jiff::tz::TimeZone::get(tz).is_err() {
        out.push(field, format!("unknown IANA time zone {tz:?}"));
    }
}

pub(crate) fn check_local_time(out: &mut Violations, field: &str, value: &str) {
    let ok = value.len() == 5 && jiff::civil::Time::strptime("%H:%M", value).is_ok();
    if !ok {
        out.push(field, "must be a local time \"HH:MM\"");
    }
}

fn check_trigger(out: &mut Violations, trigger: Option<&Trigger>) {
    let Some(kind) = trigger.and_then(|t| t.kind.as_ref()) else {
        out.push(
            "campaign.trigger",
            "is required: set exactly one kind of trigger",
        );
        return;
    };
    match kind {
        TriggerKind::Event(e) => {
            out.text("campaign.trigger.event.event_name", &e.event_name, NAME);
            check_filters(
                out,
                "campaign.trigger.event.property_filters",
                &e.property_filters,
            );
        }
        TriggerKind::SegmentEntry(s) => out.text(
            "campaign.trigger.segment_entry.segment_id",
            &s.segment_id,
            Len::required(MAX_SEGMENT_ID),
        ),
        TriggerKind::Goal(g) => {
            out.text("campaign.trigger.goal.event_name", &g.event_name, NAME);
            check_filters(
                out,
                "campaign.trigger.goal.property_filters",
                &g.property_filters,
            );
        }
        TriggerKind::Time(t) => match &t.kind {
            None => out.push(
                "campaign.trigger.time",
                "must set exactly one kind of time trigger",
            ),
            Some(time_trigger::Kind::DelayAfterEvent(d)) => {
                let f = "campaign.trigger.time.delay_after_event";
                out.text(format!("{f}.event_name"), &d.event_name, NAME);
                check_filters(out, &format!("{f}.property_filters"), &d.property_filters);
                check_duration(
                    out,
                    &format!("{f}.delay"),
                    d.delay.as_ref(),
                    1,
                    90 * DAY_SECS,
                );
                out.text(
                    format!("{f}.cancel_event_name"),
                    &d.cancel_event_name,
                    Len::optional(128),
                );
            }
            Some(time_trigger::Kind::Inactivity(i)) => {
                let f = "campaign.trigger.time.inactivity";
                out.text(format!("{f}.event_name"), &i.event_name, NAME);
                out.text(
                    format!("{f}.expected_event_name"),
                    &i.expected_event_name,
                    Len::optional(128),
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
                    None => out.push(format!("{f}.when"), "must set cron or local_time"),
                    Some(local_schedule::When::Cron(c)) => {
                        if let Err(e) = crate::zone::LocalSchedule::cron(c) {
                            out.push(format!("{f}.cron"), e);
                        }
                    }
                    Some(local_schedule::When::LocalTime(t)) => {
                        if let Err(e) = crate::zone::LocalSchedule::at(t) {
                            out.push(format!("{f}.local_time"), e);
                        }
                    }
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
    let mut out = Violations::new();
    out.text("campaign.name", &campaign.name, Len::required(128));
    out.text(
        "campaign.description",
        &campaign.description,
        Len::optional(1024),
    );
    out.text(
        "campaign.category",
        &campaign.category,
        Len::optional(limits::CATEGORY),
    );
    check_trigger(&mut out, campaign.trigger.as_ref());
    if campaign.sequential_tuning > MAX_SEQUENTIAL_TUNING {
        out.push(
            "campaign.sequential_tuning",
            format!("must be at most {MAX_SEQUENTIAL_TUNING} (0 means 5000)"),
        );
    }
    if let Some(audience) = &campaign.audience {
        for (i, id) in audience.include_segment_ids.iter().enumerate() {
            out.text(
                format!("campaign.audience.include_segment_ids[{i}]"),
                id,
                Len::required(MAX_SEGMENT_ID),
            );
        }
        for (i, id) in audience.exclude_segment_ids.iter().enumerate() {
            out.text(
                format!("campaign.audience.exclude_segment_ids[{i}]"),
                id,
                Len::required(MAX_SEGMENT_ID),
            );
        }
        check_filters(
            &mut out,
            "campaign.audience.trait_filters",
            &audience.trait_filters,
        );
    }
    if campaign.variants.len() > MAX_VARIANTS {
        out.push(
            "campaign.variants",
            format!("must hold at most {MAX_VARIANTS} variants"),
        );
    }
    let mut ids = HashSet::new();
    for (v, variant) in campaign.variants.iter().enumerate() {
        let field = format!("campaign.variants[{v}]");
        if !valid_variant_id(&variant.id) {
            out.push(
                format!("{field}.id"),
                "must be 1..=64 characters of [A-Za-z0-9_-]",
            );
        } else if !ids.insert(variant.id.as_str()) {
            out.push(
                format!("{field}.id"),
                format!("duplicates variant id {:?}", variant.id),
            );
        }
        out.text(format!("{field}.name"), &variant.name, Len::optional(128));
        check_contents(&mut out, parser, &field, &variant.contents);
        check_localizations(&mut out, parser, &field, variant);
    }
    if let Some(cap) = &campaign.frequency_cap {
        if cap.max_deliveries == 0 {
            out.push(
                "campaign.frequency_cap.max_deliveries",
                "must be at least 1",
            );
        }
        if let Some(window) = &cap.window
            && duration_secs(window) < 60.0
        {
            out.push("campaign.frequency_cap.window", "must be at least 1 minute");
        }
    }
    if let Some(q) = &campaign.quiet_hours {
        // The same rule as the workspace's quiet hours (TriggerSettings).
        out.extend(crate::budget_rules::quiet_hours("campaign.quiet_hours", q));
    }
    if let Some(s) = &campaign.schedule
        && let (Some(start), Some(end)) = (&s.start_time, &s.end_time)
        && (end.seconds, end.nanos) <= (start.seconds, start.nanos)
    {
        out.push("campaign.schedule.end_time", "must be after start_time");
    }
    if let Some(goal) = &campaign.conversion_goal {
        out.text(
            "campaign.conversion_goal.event_name",
            &goal.event_name,
            NAME,
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
        && duration_secs(ttl) <= 0.0
    {
        out.push("campaign.message_ttl", "must be positive");
    }
    if let Some(entry) = &campaign.entry {
        check_entry(&mut out, entry);
    }
    out.into_vec()
}

fn check_entry(out: &mut Violations, entry: &herald_proto::trigger::v1::Entry) {
    use herald_proto::trigger::v1::EntryPolicy;
    match EntryPolicy::try_from(entry.policy) {
        Ok(EntryPolicy::Cooldown) => check_duration(
            out,
            "campaign.entry.cooldown",
            entry.cooldown.as_ref(),
            60,
            365 * DAY_SECS,
        ),
        Ok(_) if entry.cooldown.is_some() => out.push(
            "campaign.entry.cooldown",
            "is only allowed with ENTRY_POLICY_COOLDOWN",
        ),
        Ok(_) => {}
        Err(_) => out.push("campaign.entry.policy", "is not a known entry policy"),
    }
}

fn check_in_app(out: &mut Violations, field: &str, c: &herald_proto::common::v1::InAppContent) {
    let format = InAppFormat::try_from(c.format).unwrap_or(InAppFormat::Unspecified);
    if format == InAppFormat::Unspecified {
        out.push(format!("{field}.in_app.format"), "is required");
    }
    if format == InAppFormat::Tooltip
        && c.tooltip_target
            .as_ref()
            .is_none_or(|t| t.selector.is_empty())
    {
        out.push(
            format!("{field}.in_app.tooltip_target.selector"),
            "is required for tooltips",
        );
    }
    if c.actions.len() > 4 {
        out.push(
            format!("{field}.in_app.actions"),
            "must hold at most 4 actions",
        );
    }
    let mut ids = HashSet::new();
    for (a, action) in c.actions.iter().enumerate() {
        let field = format!("{field}.in_app.actions[{a}]");
        out.text(format!("{field}.id"), &action.id, Len::required(64));
        if !action.id.is_empty() && !ids.insert(action.id.as_str()) {
            out.push(format!("{field}.id"), "must be unique within the message");
        }
        if matches!(
            ActionKind::try_from(action.kind),
            Err(_) | Ok(ActionKind::Unspecified)
        ) {
            out.push(format!("{field}.kind"), "is required");
        }
    }
}

/// What an ACTIVE campaign needs beyond validity: variants with contents, weights that
/// give someone a bucket, and no setting this version would silently ignore.
pub fn completeness(campaign: &Campaign) -> Vec<FieldViolation> {
    let mut out = Violations::new();
    if campaign.variants.is_empty() {
        out.push(
            "campaign.variants",
            "an active campaign needs at least one variant",
        );
    }
    for (v, variant) in campaign.variants.iter().enumerate() {
        if variant.contents.is_empty() {
            out.push(
                format!("campaign.variants[{v}].contents"),
                "needs at least one content",
            );
        }
        out.extend(localized_channels_are_in_default(v, variant));
    }
    let total: u64 = campaign
        .variants
        .iter()
        .map(|v| u64::from(v.weight))
        .sum::<u64>()
        + u64::from(campaign.control_weight);
    if !campaign.variants.is_empty() && total == 0 {
        out.push(
            "campaign.variants[0].weight",
            "the variants' weights plus control_weight must be greater than 0",
        );
    }
    if let Some(Trigger {
        kind: Some(TriggerKind::Time(time)),
    }) = &campaign.trigger
        && matches!(time.kind, Some(time_trigger::Kind::Schedule(_)))
        && campaign
            .audience
            .as_ref()
            .is_none_or(|a| a.include_segment_ids.is_empty())
    {
        out.push(
            "campaign.audience.include_segment_ids",
            "a local schedule fires for the members of the included segments: name at least one",
        );
    }
    out.extend(not_enforced_yet(campaign));
    out.into_vec()
}

/// Why a setting is refused on an ACTIVE campaign.
const NOT_ENFORCED: &str =
    "is not enforced by this Herald version yet, so an active campaign cannot use it";

/// Settings this version stores but does not act on when a campaign fires. An active
/// campaign must not rely on them: an email, SMS or webhook content would never leave
/// delivery (it has no provider adapters for them yet; in-app and push contents are
/// delivered). They can be saved on drafts.
fn not_enforced_yet(campaign: &Campaign) -> Vec<FieldViolation> {
    let mut out = Violations::new();
    for (v, variant) in campaign.variants.iter().enumerate() {
        for (c, content) in variant.contents.iter().enumerate() {
            if !matches!(content.body, Some(Body::InApp(_) | Body::Push(_)) | None) {
                out.push(
                    format!("campaign.variants[{v}].contents[{c}]"),
                    format!(
                        "only in-app and push messages are delivered; the {} channel {NOT_ENFORCED}",
                        render::channel_name(render::channel(content))
                    ),
                );
            }
        }
    }
    out.into_vec()
}

/// The event name an event trigger matches, or empty.
pub fn trigger_event_name(campaign: &Campaign) -> &str {
    match campaign.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(TriggerKind::Event(e)) => &e.event_name,
        _ => "",
    }
}

/// Whether `campaign` names `segment_id`: in its audience (included or excluded) or as
/// its segment-entry trigger. A campaign that does must keep the segment alive.
pub fn references_segment(campaign: &Campaign, segment_id: &str) -> bool {
    let in_trigger = matches!(
        campaign.trigger.as_ref().and_then(|t| t.kind.as_ref()),
        Some(TriggerKind::SegmentEntry(s)) if s.segment_id == segment_id
    );
    in_trigger
        || campaign.audience.as_ref().is_some_and(|a| {
            a.include_segment_ids
                .iter()
                .chain(&a.exclude_segment_ids)
                .any(|id| id == segment_id)
        })
}

/// Most localizations of a variant.
pub const MAX_LOCALIZATIONS: usize = 50;

/// The localizations of `variant` (at `field`): well-formed locales, each once (ignoring
/// case and "_" vs "-"), at most [`MAX_LOCALIZATIONS`], each with 1..=[`MAX_CONTENTS`]
/// contents checked as the default contents are.
fn check_localizations(
    out: &mut Violations,
    parser: &liquid::Parser,
    field: &str,
    variant: &herald_proto::trigger::v1::Variant,
) {
    if variant.localizations.len() > MAX_LOCALIZATIONS {
        out.push(
            format!("{field}.localizations"),
            format!("must hold at most {MAX_LOCALIZATIONS} localizations"),
        );
    }
    let mut locales = HashSet::new();
    for (l, localization) in variant.localizations.iter().enumerate() {
        let field = format!("{field}.localizations[{l}]");
        if !crate::locale::is_well_formed(&localization.locale) {
            out.push(
                format!("{field}.locale"),
                "must be a BCP 47 language tag of 2..=35 characters, e.g. \"fr\" or \"fr-CA\"",
            );
        } else if !locales.insert(crate::locale::normalize(&localization.locale)) {
            out.push(
                format!("{field}.locale"),
                format!(
                    "repeats locale {:?} (locales are compared ignoring case and \"_\" vs \"-\")",
                    localization.locale
                ),
            );
        }
        if localization.contents.is_empty() {
            out.push(format!("{field}.contents"), "needs at least one content");
        }
        check_contents(out, parser, &field, &localization.contents);
    }
}

/// The contents of a variant, or of one of its localizations, under `field`: at most
/// [`MAX_CONTENTS`], each with exactly one channel and no channel twice, in-app contents
/// well formed, every template parsing.
fn check_contents(
    out: &mut Violations,
    parser: &liquid::Parser,
    field: &str,
    contents: &[herald_proto::common::v1::MessageContent],
) {
    if contents.len() > MAX_CONTENTS {
        out.push(
            format!("{field}.contents"),
            format!("must hold at most {MAX_CONTENTS} contents"),
        );
    }
    let mut channels = HashSet::new();
    for (c, content) in contents.iter().enumerate() {
        let field = format!("{field}.contents[{c}]");
        let Some(body) = &content.body else {
            out.push(field, "must set exactly one channel's content");
            continue;
        };
        if !channels.insert(render::channel(content)) {
            out.push(&field, "repeats a channel: at most one content per channel");
        }
        if let Body::InApp(in_app) = body {
            check_in_app(out, &field, in_app);
        }
        out.extend(render::check_templates(parser, &field, content));
    }
}

/// On an ACTIVE campaign the default locale must be complete: a localization may only
/// hold channels that the variant's default contents hold, or users of other locales
/// would miss that channel.
fn localized_channels_are_in_default(
    v: usize,
    variant: &herald_proto::trigger::v1::Variant,
) -> Vec<FieldViolation> {
    let default: HashSet<_> = variant.contents.iter().map(render::channel).collect();
    let mut out = Violations::new();
    for (l, localization) in variant.localizations.iter().enumerate() {
        for (c, content) in localization.contents.iter().enumerate() {
            let channel = render::channel(content);
            if content.body.is_some() && !default.contains(&channel) {
                out.push(
                    format!("campaign.variants[{v}].localizations[{l}].contents[{c}]"),
                    format!(
                        "the default locale is incomplete: it has no {} content but \
                         localization {:?} has one",
                        render::channel_name(channel),
                        localization.locale
                    ),
                );
            }
        }
    }
    out.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::common::v1::{
        ComparisonOperator, InAppContent, MessageContent, PushContent, SmsContent,
    };
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
    fn caps_quiet_hours_and_entry_rules_are_allowed_on_an_active_campaign() {
        let mut c = valid();
        c.frequency_cap = Some(herald_proto::trigger::v1::FrequencyCap {
            max_deliveries: 1,
            window: None,
        });
        c.quiet_hours = Some(herald_proto::trigger::v1::QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            ..Default::default()
        });
        c.entry = Some(herald_proto::trigger::v1::Entry {
            policy: herald_proto::trigger::v1::EntryPolicy::Once as i32,
            cooldown: None,
        });
        assert!(fields(&c).is_empty(), "{:?}", fields(&c));
        assert!(completeness(&c).is_empty(), "{:?}", completeness(&c));
        // A cooldown needs its duration, and only a cooldown may have one.
        c.entry = Some(herald_proto::trigger::v1::Entry {
            policy: herald_proto::trigger::v1::EntryPolicy::Cooldown as i32,
            cooldown: None,
        });
        assert_eq!(fields(&c), ["campaign.entry.cooldown"]);
        c.entry = Some(herald_proto::trigger::v1::Entry {
            policy: herald_proto::trigger::v1::EntryPolicy::Once as i32,
            cooldown: Some(Duration {
                seconds: 3600,
                nanos: 0,
            }),
        });
        assert_eq!(fields(&c), ["campaign.entry.cooldown"]);
    }

    #[test]
    fn audience_segments_are_allowed_on_an_active_campaign() {
        let mut c = valid();
        c.audience = Some(herald_proto::trigger::v1::Audience {
            include_segment_ids: vec!["trial".into()],
            exclude_segment_ids: vec!["paying".into()],
            ..Default::default()
        });
        assert!(fields(&c).is_empty());
        assert!(completeness(&c).is_empty(), "{:?}", completeness(&c));
        // An empty segment id is still invalid, active or not.
        c.audience.as_mut().unwrap().exclude_segment_ids[0] = String::new();
        assert_eq!(fields(&c), ["campaign.audience.exclude_segment_ids[0]"]);
    }

    #[test]
    fn segment_references_cover_the_audience_and_the_segment_entry_trigger() {
        let mut c = valid();
        assert!(!references_segment(&c, "trial"));
        c.audience = Some(herald_proto::trigger::v1::Audience {
            include_segment_ids: vec!["trial".into()],
            exclude_segment_ids: vec!["paying".into()],
            ..Default::default()
        });
        assert!(references_segment(&c, "trial"));
        assert!(references_segment(&c, "paying"));
        assert!(!references_segment(&c, "pay"));
        c.trigger = Some(Trigger {
            kind: Some(TriggerKind::SegmentEntry(
                herald_proto::trigger::v1::SegmentEntryTrigger {
                    segment_id: "activated".into(),
                    ..Default::default()
                },
            )),
        });
        assert!(references_segment(&c, "activated"));
        c.audience = None;
        assert!(!references_segment(&c, "trial"));
    }

    #[test]
    fn schedules_need_segments_and_other_channels_are_refused_until_enforced() {
        let mut c = valid();
        c.control_weight = 10;
        c.conversion_goal = Some(herald_proto::trigger::v1::ConversionGoal {
            event_name: "paid".into(),
            ..Default::default()
        });
        // Push is delivered (to the configured push provider); SMS is not yet.
        c.variants[0].contents.push(MessageContent {
            body: Some(Body::Push(PushContent {
                title: "Hi".into(),
                body: "Your report is ready".into(),
                ..Default::default()
            })),
        });
        c.variants[0].contents.push(MessageContent {
            body: Some(Body::Sms(SmsContent { body: "Hi".into() })),
        });
        c.trigger = Some(Trigger {
            kind: Some(TriggerKind::Time(herald_proto::trigger::v1::TimeTrigger {
                kind: Some(time_trigger::Kind::Schedule(
                    herald_proto::trigger::v1::LocalSchedule {
                        when: Some(local_schedule::When::Cron("0 9 * * 1".into())),
                        ..Default::default()
                    },
                )),
            })),
        });
        let violations = completeness(&c);
        let refused: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            refused,
            [
                "campaign.audience.include_segment_ids",
                "campaign.variants[0].contents[2]"
            ]
        );
        assert!(
            violations[1].description.contains("sms"),
            "{}",
            violations[1]
        );
        // A draft may hold them all.
        assert!(fields(&c).is_empty());
    }

    #[test]
    fn zero_weights_make_an_incomplete_campaign() {
        let mut c = valid();
        c.variants[0].weight = 0;
        let violations = completeness(&c);
        assert_eq!(violations[0].field, "campaign.variants[0].weight");
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

#[cfg(test)]
mod localization_tests {
    use super::*;
    use herald_proto::common::v1::{InAppContent, MessageContent, SmsContent};
    use herald_proto::trigger::v1::{EventTrigger, LocalizedContents, Variant};

    fn in_app(title: &str) -> MessageContent {
        MessageContent {
            body: Some(Body::InApp(InAppContent {
                format: InAppFormat::Modal as i32,
                title: title.into(),
                ..Default::default()
            })),
        }
    }

    fn sms(body: &str) -> MessageContent {
        MessageContent {
            body: Some(Body::Sms(SmsContent { body: body.into() })),
        }
    }

    fn localized(locale: &str, contents: Vec<MessageContent>) -> LocalizedContents {
        LocalizedContents {
            locale: locale.into(),
            contents,
        }
    }

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
                contents: vec![in_app("Hi {{ user.first_name }}")],
                localizations: vec![
                    localized("fr", vec![in_app("Salut {{ user.first_name }}")]),
                    localized("pt_BR", vec![in_app("Olá")]),
                ],
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
    fn valid_localizations_pass() {
        assert!(fields(&valid()).is_empty(), "{:?}", fields(&valid()));
        assert!(completeness(&valid()).is_empty());
    }

    #[test]
    fn every_bad_localization_field_is_named() {
        let mut c = valid();
        c.variants[0].localizations = vec![
            localized("f", vec![in_app("x")]),
            localized("FR", vec![in_app("x")]),
            localized("fr_ca", vec![]),
            localized("fr-CA", vec![in_app("x"), in_app("y")]),
            localized("de", vec![MessageContent::default(), sms("{% if %}")]),
            localized(
                "it",
                vec![MessageContent {
                    body: Some(Body::InApp(InAppContent::default())),
                }],
            ),
            localized("es", vec![in_app("x"); 6]),
        ];
        assert_eq!(
            fields(&c),
            [
                "campaign.variants[0].localizations[0].locale",
                "campaign.variants[0].localizations[2].contents",
                "campaign.variants[0].localizations[3].locale",
                "campaign.variants[0].localizations[3].contents[1]",
                "campaign.variants[0].localizations[4].contents[0]",
                "campaign.variants[0].localizations[4].contents[1].sms.body",
                "campaign.variants[0].localizations[5].contents[0].in_app.format",
                "campaign.variants[0].localizations[6].contents",
                "campaign.variants[0].localizations[6].contents[1]",
                "campaign.variants[0].localizations[6].contents[2]",
                "campaign.variants[0].localizations[6].contents[3]",
                "campaign.variants[0].localizations[6].contents[4]",
                "campaign.variants[0].localizations[6].contents[5]",
            ]
        );
        // A repeat ignores case and "_" vs "-".
        let mut c = valid();
        c.variants[0]
            .localizations
            .push(localized("PT-br", vec![in_app("x")]));
        let violations = campaign(&render::parser(), &c);
        assert_eq!(
            violations[0].field,
            "campaign.variants[0].localizations[2].locale"
        );
        assert!(
            violations[0]
                .description
                .contains("repeats locale \"PT-br\"")
        );
    }

    #[test]
    fn escaped_fields_are_checked_in_localizations() {
        let mut c = valid();
        c.variants[0].localizations[1].contents[0] = MessageContent {
            body: Some(Body::InApp(InAppContent {
                format: InAppFormat::Modal as i32,
                image_url: "{% raw %}x{% endraw %}".into(),
                ..Default::default()
            })),
        };
        assert_eq!(
            fields(&c),
            ["campaign.variants[0].localizations[1].contents[0].in_app.image_url"]
        );
    }

    #[test]
    fn at_most_fifty_localizations() {
        let mut c = valid();
        c.variants[0].localizations = (0..51)
            .map(|i| localized(&format!("en-{i:03}"), vec![in_app("x")]))
            .collect();
        assert_eq!(fields(&c), ["campaign.variants[0].localizations"]);
    }

    #[test]
    fn an_active_campaign_needs_a_complete_default_locale() {
        let mut c = valid();
        c.variants[0].localizations[0].contents.push(sms("Salut"));
        // A draft may be incomplete.
        assert!(fields(&c).is_empty());
        let violations = completeness(&c);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["campaign.variants[0].localizations[0].contents[1]"]
        );
        assert_eq!(
            violations[0].description,
            "the default locale is incomplete: it has no sms content but localization \"fr\" has one"
        );
    }
}
