//! The workspace's attention budget as admins write it: what a [`CapRule`] and the
//! [`TriggerSettings`] must satisfy, field by field ([`cap_rule`], [`settings`],
//! [`quiet_hours`]), how an update mask replaces their fields ([`apply_cap_rule_mask`],
//! [`apply_settings_mask`]), and the defaults the settings fall back to
//! ([`with_defaults`]). How the rules count messages when deciding is not here; this
//! module only says what may be stored.

use herald_core::{FieldViolation, Len, Violations};
use herald_proto::common::v1::{Channel, InAppFormat};
use herald_proto::trigger::v1::cap_rule::Window;
use herald_proto::trigger::v1::{CapRule, QuietHours, QuietHoursBehavior, TriggerSettings};
use prost_types::Duration;

use crate::validate::{check_local_time, check_time_zone};

/// Most cap rules of one workspace.
pub const MAX_CAP_RULES: usize = 50;
/// Longest cap rule name, in characters.
pub const MAX_NAME: usize = 128;
/// Most days of a calendar-day window.
pub const MAX_CALENDAR_DAYS: u32 = 31;
/// The least time between two in-app messages to one user, when the workspace never set
/// one.
pub const DEFAULT_MIN_IN_APP_INTERVAL: Duration = Duration {
    seconds: 30,
    nanos: 0,
};
const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Whether `d` is a duration protobuf allows: nanos within a second and of the sign of
/// seconds.
fn well_formed(d: &Duration) -> bool {
    d.nanos.abs() < 1_000_000_000
        && !(d.seconds > 0 && d.nanos < 0)
        && !(d.seconds < 0 && d.nanos > 0)
}

/// Checks that `d` lies in `min_secs..=max_secs`, with `range` saying so in words.
fn check_range(
    out: &mut Violations,
    field: &str,
    d: &Duration,
    min_secs: i64,
    max_secs: i64,
    range: &str,
) {
    let inside = well_formed(d)
        && (d.seconds, d.nanos) >= (min_secs, 0)
        && (d.seconds, d.nanos) <= (max_secs, 0);
    if !inside {
        out.push(field, format!("must be {range}"));
    }
}

fn known_channel(value: i32) -> Option<Channel> {
    Channel::try_from(value).ok()
}

/// Every violation of the contract by `rule`, under `cap_rule.`.
pub fn cap_rule(rule: &CapRule) -> Vec<FieldViolation> {
    let mut out = Violations::new();
    out.text("cap_rule.name", &rule.name, Len::required(MAX_NAME));
    if rule.max_messages == 0 {
        out.push("cap_rule.max_messages", "must be at least 1");
    }
    match &rule.window {
        None => out.push(
            "cap_rule.window",
            "is required: set rolling or calendar_days",
        ),
        Some(Window::Rolling(d)) => check_range(
            &mut out,
            "cap_rule.rolling",
            d,
            MINUTE,
            31 * DAY,
            "between 1 minute and 31 days",
        ),
        Some(Window::CalendarDays(days)) => {
            if !(1..=MAX_CALENDAR_DAYS).contains(days) {
                out.push(
                    "cap_rule.calendar_days",
                    format!("must be 1..={MAX_CALENDAR_DAYS}"),
                );
            }
        }
    }
    let channel = known_channel(rule.channel);
    if channel.is_none() {
        out.push("cap_rule.channel", "is not a known channel");
    }
    match InAppFormat::try_from(rule.in_app_format) {
        Err(_) => out.push("cap_rule.in_app_format", "is not a known in-app format"),
        Ok(InAppFormat::Unspecified) => {}
        // An unknown channel is reported above; a format is only wrong beside a known one.
        Ok(_) if matches!(channel, Some(c) if c != Channel::InApp && c != Channel::Unspecified) => {
            out.push(
                "cap_rule.in_app_format",
                "counts in-app messages only: leave channel unspecified or set it to IN_APP",
            )
        }
        Ok(_) => {}
    }
    check_time_zone(
        &mut out,
        "cap_rule.default_time_zone",
        &rule.default_time_zone,
    );
    out.into_vec()
}

/// Every violation of the contract by the quiet hours `q`, under `field` (e.g.
/// `settings.quiet_hours`).
pub fn quiet_hours(field: &str, q: &QuietHours) -> Vec<FieldViolation> {
    let mut out = Violations::new();
    check_local_time(
        &mut out,
        &format!("{field}.start_local_time"),
        &q.start_local_time,
    );
    check_local_time(
        &mut out,
        &format!("{field}.end_local_time"),
        &q.end_local_time,
    );
    if QuietHoursBehavior::try_from(q.behavior).is_err() {
        out.push(format!("{field}.behavior"), "is not a known behavior");
    }
    check_time_zone(
        &mut out,
        &format!("{field}.default_time_zone"),
        &q.default_time_zone,
    );
    for (i, &channel) in q.channels.iter().enumerate() {
        if matches!(known_channel(channel), None | Some(Channel::Unspecified)) {
            out.push(
                format!("{field}.channels[{i}]"),
                "must be a known channel other than UNSPECIFIED",
            );
        }
    }
    if let Some(jitter) = &q.release_jitter {
        check_range(
            &mut out,
            &format!("{field}.release_jitter"),
            jitter,
            0,
            6 * HOUR,
            "between 0 and 6 hours",
        );
    }
    out.into_vec()
}

/// Every violation of the contract by `settings`, under `settings.`.
pub fn settings(settings: &TriggerSettings) -> Vec<FieldViolation> {
    let mut out = Violations::new();
    if let Some(interval) = &settings.min_in_app_interval {
        check_range(
            &mut out,
            "settings.min_in_app_interval",
            interval,
            0,
            DAY,
            "between 0 (off) and 1 day",
        );
    }
    if let Some(q) = &settings.quiet_hours {
        out.extend(quiet_hours("settings.quiet_hours", q));
    }
    if !settings.default_locale.is_empty()
        && !crate::locale::is_well_formed(&settings.default_locale)
    {
        out.push(
            "settings.default_locale",
            "must be a BCP 47 language tag such as \"en\" or \"fr-CA\" (2..=35 characters)",
        );
    }
    out.into_vec()
}

/// `settings` as a decision reads them: every unset field that has a default filled in
/// (min_in_app_interval).
pub fn with_defaults(mut settings: TriggerSettings) -> TriggerSettings {
    settings
        .min_in_app_interval
        .get_or_insert(DEFAULT_MIN_IN_APP_INTERVAL);
    settings
}

/// INVALID_ARGUMENT violations for an empty mask.
fn empty_mask(paths: &[String]) -> Result<(), Vec<FieldViolation>> {
    if paths.is_empty() {
        Err(vec![FieldViolation::new(
            "update_mask",
            "must name at least one field to update",
        )])
    } else {
        Ok(())
    }
}

/// Replaces the fields of `rule` named in `paths` with those of `update`: any of `name`,
/// `max_messages`, `window` (rolling and calendar_days together), `channel`,
/// `in_app_format`, `default_time_zone`. An empty mask, or a path naming anything else,
/// is a violation under `update_mask`, and then `rule` is left as it was. The result is
/// not validated: check it with [`cap_rule`].
pub fn apply_cap_rule_mask(
    rule: &mut CapRule,
    update: &CapRule,
    paths: &[String],
) -> Result<(), Vec<FieldViolation>> {
    empty_mask(paths)?;
    let mut out = Violations::new();
    let mut next = rule.clone();
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        match path.as_str() {
            "name" => next.name.clone_from(&update.name),
            "max_messages" => next.max_messages = update.max_messages,
            "window" => next.window = update.window,
            "channel" => next.channel = update.channel,
            "in_app_format" => next.in_app_format = update.in_app_format,
            "default_time_zone" => next.default_time_zone.clone_from(&update.default_time_zone),
            "rolling" | "calendar_days" => out.push(
                field,
                format!(
                    "name \"window\" to replace {path} (rolling and calendar_days are one choice)"
                ),
            ),
            "id" | "create_time" | "update_time" => {
                out.push(field, format!("{path} is output only"))
            }
            _ => out.push(field, format!("unknown cap rule field {path:?}")),
        }
    }
    out.finish()?;
    *rule = next;
    Ok(())
}

/// Replaces the fields of `settings` named in `paths` with those of `update`: any of
/// `min_in_app_interval`, `quiet_hours`, `default_locale`; naming a field that `update`
/// leaves unset or empty clears it, which restores its default. An empty mask, or a path
/// naming anything else, is a violation under `update_mask`, and then `settings` is left
/// as it was. The result is not validated: check it with [`settings`](fn@settings).
pub fn apply_settings_mask(
    settings: &mut TriggerSettings,
    update: &TriggerSettings,
    paths: &[String],
) -> Result<(), Vec<FieldViolation>> {
    empty_mask(paths)?;
    let mut out = Violations::new();
    let mut next = settings.clone();
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "min_in_app_interval" => next.min_in_app_interval = update.min_in_app_interval,
            "quiet_hours" => next.quiet_hours.clone_from(&update.quiet_hours),
            "default_locale" => next.default_locale.clone_from(&update.default_locale),
            _ => out.push(
                format!("update_mask.paths[{i}]"),
                format!("unknown settings field {path:?}"),
            ),
        }
    }
    out.finish()?;
    *settings = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> CapRule {
        CapRule {
            name: "At most 2 modals a day".into(),
            max_messages: 2,
            window: Some(Window::CalendarDays(1)),
            channel: Channel::InApp as i32,
            in_app_format: InAppFormat::Modal as i32,
            default_time_zone: "Europe/Berlin".into(),
            ..Default::default()
        }
    }

    fn fields(violations: Vec<FieldViolation>) -> Vec<String> {
        violations.into_iter().map(|v| v.field).collect()
    }

    fn secs(seconds: i64, nanos: i32) -> Duration {
        Duration { seconds, nanos }
    }

    fn quiet() -> QuietHours {
        QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            behavior: QuietHoursBehavior::Delay as i32,
            default_time_zone: "America/New_York".into(),
            channels: vec![Channel::Push as i32, Channel::InApp as i32],
            release_jitter: Some(secs(6 * HOUR, 0)),
        }
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_valid_rule_passes() {
        assert!(cap_rule(&rule()).is_empty());
        let every_message = CapRule {
            name: "x".into(),
            max_messages: 1,
            window: Some(Window::Rolling(secs(MINUTE, 0))),
            ..Default::default()
        };
        assert!(cap_rule(&every_message).is_empty());
        // A format with an unspecified channel means in-app messages of that format.
        let modals = CapRule {
            channel: Channel::Unspecified as i32,
            ..rule()
        };
        assert!(cap_rule(&modals).is_empty());
    }

    #[test]
    fn every_bad_rule_field_is_named() {
        let bad = CapRule {
            name: "n".repeat(129),
            max_messages: 0,
            window: Some(Window::CalendarDays(0)),
            channel: 99,
            in_app_format: 99,
            default_time_zone: "Mars/Olympus".into(),
            ..Default::default()
        };
        assert_eq!(
            fields(cap_rule(&bad)),
            [
                "cap_rule.name",
                "cap_rule.max_messages",
                "cap_rule.calendar_days",
                "cap_rule.channel",
                "cap_rule.in_app_format",
                "cap_rule.default_time_zone",
            ]
        );
        let no_window = CapRule {
            name: String::new(),
            window: None,
            ..rule()
        };
        assert_eq!(
            fields(cap_rule(&no_window)),
            ["cap_rule.name", "cap_rule.window"]
        );
    }

    #[test]
    fn a_format_only_counts_in_app_messages() {
        let email_modals = CapRule {
            channel: Channel::Email as i32,
            ..rule()
        };
        assert_eq!(fields(cap_rule(&email_modals)), ["cap_rule.in_app_format"]);
        let emails = CapRule {
            channel: Channel::Email as i32,
            in_app_format: InAppFormat::Unspecified as i32,
            ..rule()
        };
        assert!(cap_rule(&emails).is_empty());
    }

    #[test]
    fn windows_have_bounds() {
        let with = |window| CapRule {
            window: Some(window),
            ..rule()
        };
        for ok in [
            Window::Rolling(secs(60, 0)),
            Window::Rolling(secs(31 * DAY, 0)),
            Window::CalendarDays(1),
            Window::CalendarDays(31),
        ] {
            assert!(cap_rule(&with(ok)).is_empty(), "{ok:?}");
        }
        for bad in [
            Window::Rolling(secs(59, 999_999_999)),
            Window::Rolling(secs(31 * DAY, 1)),
            Window::Rolling(secs(-120, 0)),
            Window::Rolling(secs(120, -1)),
            Window::Rolling(secs(120, 1_000_000_000)),
        ] {
            assert_eq!(
                fields(cap_rule(&with(bad))),
                ["cap_rule.rolling"],
                "{bad:?}"
            );
        }
        assert_eq!(
            fields(cap_rule(&with(Window::CalendarDays(32)))),
            ["cap_rule.calendar_days"]
        );
    }

    #[test]
    fn valid_settings_pass() {
        assert!(settings(&TriggerSettings::default()).is_empty());
        let full = TriggerSettings {
            min_in_app_interval: Some(secs(DAY, 0)),
            quiet_hours: Some(quiet()),
            default_locale: "pt-BR".into(),
        };
        assert!(settings(&full).is_empty(), "{:?}", settings(&full));
        let off = TriggerSettings {
            min_in_app_interval: Some(secs(0, 0)),
            ..Default::default()
        };
        assert!(settings(&off).is_empty());
    }

    #[test]
    fn every_bad_settings_field_is_named() {
        let bad = TriggerSettings {
            min_in_app_interval: Some(secs(DAY, 1)),
            quiet_hours: Some(QuietHours {
                start_local_time: "24:00".into(),
                end_local_time: "8:00".into(),
                behavior: 7,
                default_time_zone: "Nowhere/Land".into(),
                channels: vec![Channel::Sms as i32, Channel::Unspecified as i32, 42],
                release_jitter: Some(secs(6 * HOUR + 1, 0)),
            }),
            default_locale: "english!".into(),
        };
        assert_eq!(
            fields(settings(&bad)),
            [
                "settings.min_in_app_interval",
                "settings.quiet_hours.start_local_time",
                "settings.quiet_hours.end_local_time",
                "settings.quiet_hours.behavior",
                "settings.quiet_hours.default_time_zone",
                "settings.quiet_hours.channels[1]",
                "settings.quiet_hours.channels[2]",
                "settings.quiet_hours.release_jitter",
                "settings.default_locale",
            ]
        );
        let negative = TriggerSettings {
            min_in_app_interval: Some(secs(-1, 0)),
            ..Default::default()
        };
        assert_eq!(
            fields(settings(&negative)),
            ["settings.min_in_app_interval"]
        );
    }

    #[test]
    fn locale_tags_are_checked_for_shape() {
        for ok in ["en", "fr-CA", "fr_CA", "zh-Hant-TW", "es-419", "de-DE-1996"] {
            assert!(crate::locale::is_well_formed(ok), "{ok}");
        }
        for bad in [
            "",
            "e",
            "e1",
            "en-",
            "-en",
            "en--US",
            "en US",
            "toolonglang",
            "en-ABCDEFGHI",
            "en-a".repeat(9).as_str(),
        ] {
            assert!(!crate::locale::is_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_fill_only_what_is_unset() {
        assert_eq!(
            with_defaults(TriggerSettings::default()).min_in_app_interval,
            Some(DEFAULT_MIN_IN_APP_INTERVAL)
        );
        let off = TriggerSettings {
            min_in_app_interval: Some(secs(0, 0)),
            ..Default::default()
        };
        assert_eq!(with_defaults(off.clone()), off);
    }

    #[test]
    fn a_rule_mask_replaces_only_what_it_names() {
        let mut stored = rule();
        let update = CapRule {
            id: "cap_other".into(),
            name: "Renamed".into(),
            max_messages: 9,
            window: Some(Window::Rolling(secs(HOUR, 0))),
            ..Default::default()
        };
        apply_cap_rule_mask(&mut stored, &update, &paths(&["name", "window"])).expect("applies");
        assert_eq!(stored.name, "Renamed");
        assert_eq!(stored.window, Some(Window::Rolling(secs(HOUR, 0))));
        assert_eq!(stored.max_messages, 2);
        assert_eq!(stored.default_time_zone, "Europe/Berlin");
        // Clearing a field through the mask.
        apply_cap_rule_mask(&mut stored, &update, &paths(&["in_app_format", "channel"]))
            .expect("applies");
        assert_eq!(stored.channel, Channel::Unspecified as i32);
        assert_eq!(stored.in_app_format, InAppFormat::Unspecified as i32);
        assert_eq!(stored.id, "", "the id is not replaced");
    }

    #[test]
    fn bad_rule_masks_are_refused_whole() {
        let mut stored = rule();
        let before = stored.clone();
        let update = CapRule::default();
        assert_eq!(
            fields(apply_cap_rule_mask(&mut stored, &update, &[]).unwrap_err()),
            ["update_mask"]
        );
        let refused = apply_cap_rule_mask(
            &mut stored,
            &update,
            &paths(&["name", "id", "calendar_days", "colour"]),
        )
        .unwrap_err();
        assert_eq!(
            fields(refused),
            [
                "update_mask.paths[1]",
                "update_mask.paths[2]",
                "update_mask.paths[3]"
            ]
        );
        assert_eq!(stored, before);
    }

    #[test]
    fn a_settings_mask_sets_and_clears() {
        let mut stored = TriggerSettings::default();
        let update = TriggerSettings {
            min_in_app_interval: Some(secs(0, 0)),
            quiet_hours: Some(quiet()),
            default_locale: "en".into(),
        };
        apply_settings_mask(
            &mut stored,
            &update,
            &paths(&["min_in_app_interval", "quiet_hours", "default_locale"]),
        )
        .expect("applies");
        assert_eq!(stored, update);
        apply_settings_mask(
            &mut stored,
            &TriggerSettings::default(),
            &paths(&["min_in_app_interval", "default_locale"]),
        )
        .expect("applies");
        assert_eq!(
            with_defaults(stored.clone()),
            TriggerSettings {
                min_in_app_interval: Some(DEFAULT_MIN_IN_APP_INTERVAL),
                quiet_hours: Some(quiet()),
                default_locale: String::new(),
            }
        );
        let refused = apply_settings_mask(&mut stored, &update, &paths(&["quiet_hours", "locale"]))
            .unwrap_err();
        assert_eq!(fields(refused), ["update_mask.paths[1]"]);
        assert_eq!(stored.default_locale, "", "nothing applied");
        assert_eq!(
            fields(apply_settings_mask(&mut stored, &update, &[]).unwrap_err()),
            ["update_mask"]
        );
    }
}
