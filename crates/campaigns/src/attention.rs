//! The user's attention budget as the workspace sets it: cap rules ("at most 2 modals
//! per user per day"), the minimum interval between in-app messages, and quiet hours
//! (the workspace's, or a campaign's own). Counting is over the user's [`Ledger`], which
//! a decision holds locked, so reserving budget is atomic with the decision.

use std::sync::Arc;

use herald_core::time::duration_ms;
use herald_proto::common::v1::{Channel, InAppFormat};
use herald_proto::trigger::v1::{
    CapRule, QuietHours, QuietHoursBehavior, TriggerSettings, cap_rule,
};

use crate::day_starts;
use crate::ledger::Ledger;
use crate::zone::{self, LocalWindow};

/// The minimum interval between in-app messages when a workspace never set one (as
/// Braze's default).
pub const DEFAULT_MIN_IN_APP_INTERVAL_MS: i64 = 30_000;

/// The window a cap rule counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `ms` milliseconds.
    Rolling { ms: i64 },
    /// Today and the `days - 1` days before, in the user's time zone.
    CalendarDays { days: u32 },
}

/// A workspace cap rule, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Arc<str>,
    pub name: String,
    pub max: u32,
    pub window: Window,
    /// `None`: every channel.
    pub channel: Option<Channel>,
    /// `None`: every in-app format (or every message, without a channel).
    pub format: Option<InAppFormat>,
    pub default_time_zone: String,
    /// The verdict's words when the rule stops a message, written once.
    pub(crate) reached: Arc<str>,
}

impl Rule {
    /// The rule of a stored `CapRule`; `None` when it has no window (never stored so).
    pub fn compile(rule: &CapRule) -> Option<Rule> {
        let window = match rule.window.as_ref()? {
            cap_rule::Window::Rolling(d) => Window::Rolling { ms: duration_ms(d) },
            cap_rule::Window::CalendarDays(days) => Window::CalendarDays {
                days: (*days).max(1),
            },
        };
        let format = match InAppFormat::try_from(rule.in_app_format) {
            Ok(InAppFormat::Unspecified) | Err(_) => None,
            Ok(format) => Some(format),
        };
        let channel = match Channel::try_from(rule.channel) {
            Ok(Channel::Unspecified) | Err(_) => format.map(|_| Channel::InApp),
            Ok(channel) => Some(channel),
        };
        let mut compiled = Rule {
            id: rule.id.as_str().into(),
            name: rule.name.clone(),
            max: rule.max_messages.max(1),
            window,
            channel,
            format,
            default_time_zone: rule.default_time_zone.clone(),
            reached: Arc::from(""),
        };
        compiled.reached = format!(
            "cap rule {} ({:?}: {}) reached",
            compiled.id,
            compiled.name,
            compiled.describe()
        )
        .into();
        Some(compiled)
    }

    /// Whether a message on `channel` (of in-app `format`) counts towards this rule.
    pub fn covers(&self, channel: Channel, format: InAppFormat) -> bool {
        self.channel.is_none_or(|c| c == channel) && self.format.is_none_or(|f| f == format)
    }

    /// Where the window starts at `now_ms` for a user in `user_zone` (may be empty).
    pub fn window_start_ms(&self, now_ms: i64, user_zone: &str) -> i64 {
        match self.window {
            Window::Rolling { ms } => now_ms.saturating_sub(ms),
            Window::CalendarDays { days } => {
                day_starts::calendar_days_start_ms(now_ms, user_zone, &self.default_time_zone, days)
            }
        }
    }

    /// How many messages in `ledger` count towards this rule at `now_ms`.
    pub fn used(&self, ledger: &Ledger, now_ms: i64, user_zone: &str) -> u32 {
        let start = self.window_start_ms(now_ms, user_zone);
        ledger
            .sent
            .iter()
            .filter(|m| m.at_ms >= start && self.covers(m.channel(), m.format()))
            .count() as u32
    }

    /// A short description, e.g. `at most 2 per 1 calendar day(s) on in_app/modal`.
    pub fn describe(&self) -> String {
        let window = match self.window {
            Window::Rolling { ms } => format!("per {}s rolling", ms / 1000),
            Window::CalendarDays { days } => format!("per {days} calendar day(s)"),
        };
        let scope = match (self.channel, self.format) {
            (None, _) => "across all channels".to_owned(),
            (Some(c), None) => format!("on {}", c.as_str_name()),
            (Some(c), Some(f)) => format!("on {} {}", c.as_str_name(), f.as_str_name()),
        };
        format!("at most {} {window} {scope}", self.max)
    }
}

/// What happens to a message in quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuietBehavior {
    Delay,
    Drop,
}

/// Quiet hours, compiled.
#[derive(Debug, Clone)]
pub struct Quiet {
    pub window: LocalWindow,
    pub behavior: QuietBehavior,
    pub default_time_zone: String,
    /// Empty: every channel but in-app.
    pub channels: Vec<Channel>,
    pub jitter_ms: i64,
}

impl Quiet {
    /// The quiet hours of `q`; `None` when they are empty (start equals end) or invalid.
    pub fn compile(q: &QuietHours) -> Option<Quiet> {
        let window = LocalWindow::parse(&q.start_local_time, &q.end_local_time)?;
        Some(Quiet {
            window,
            behavior: match QuietHoursBehavior::try_from(q.behavior) {
                Ok(QuietHoursBehavior::Drop) => QuietBehavior::Drop,
                _ => QuietBehavior::Delay,
            },
            default_time_zone: q.default_time_zone.clone(),
            channels: q
                .channels
                .iter()
                .filter_map(|c| Channel::try_from(*c).ok())
                .collect(),
            jitter_ms: q.release_jitter.as_ref().map(duration_ms).unwrap_or(0),
        })
    }

    /// Whether quiet hours hold messages on `channel`.
    pub fn applies_to(&self, channel: Channel) -> bool {
        if self.channels.is_empty() {
            channel != Channel::InApp
        } else {
            self.channels.contains(&channel)
        }
    }

    /// When `now_ms` is inside quiet hours for a user in `user_zone` (may be empty), the
    /// instant the user's message is released (the end of quiet hours plus the user's
    /// jitter); `None` outside quiet hours.
    pub fn release_ms(&self, now_ms: i64, user_zone: &str, user_id: &str) -> Option<i64> {
        let tz = zone::resolve(&[user_zone, &self.default_time_zone]);
        let end = self.window.release_ms(now_ms, &tz)?;
        Some(end.saturating_add(zone::jitter_ms(user_id, self.jitter_ms)))
    }
}

/// A workspace's rules for the attention budget, compiled.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: String,
    pub rules: Vec<Rule>,
    pub min_in_app_interval_ms: i64,
    pub quiet: Option<Quiet>,
    pub default_locale: String,
}

impl Workspace {
    /// The workspace `id` with `rules` (oldest first) and `settings`.
    pub fn compile(id: &str, rules: &[CapRule], settings: &TriggerSettings) -> Workspace {
        Workspace {
            id: id.to_owned(),
            rules: rules.iter().filter_map(Rule::compile).collect(),
            min_in_app_interval_ms: settings
                .min_in_app_interval
                .as_ref()
                .map_or(DEFAULT_MIN_IN_APP_INTERVAL_MS, duration_ms),
            quiet: settings.quiet_hours.as_ref().and_then(Quiet::compile),
            default_locale: settings.default_locale.clone(),
        }
    }

    /// A workspace with no rules and the default settings.
    pub fn defaults(id: &str) -> Workspace {
        Workspace::compile(id, &[], &TriggerSettings::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max: u32, window: cap_rule::Window, channel: Channel, format: InAppFormat) -> Rule {
        Rule::compile(&CapRule {
            id: "cap_1".into(),
            max_messages: max,
            window: Some(window),
            channel: channel as i32,
            in_app_format: format as i32,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_rule_counts_the_messages_of_its_scope_inside_its_window() {
        let modals = rule(
            2,
            cap_rule::Window::Rolling(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            Channel::Unspecified,
            InAppFormat::Modal,
        );
        assert_eq!(modals.channel, Some(Channel::InApp));
        let mut ledger = Ledger::default();
        ledger.sent("a", Channel::InApp, InAppFormat::Modal, 0);
        ledger.sent("a", Channel::InApp, InAppFormat::Modal, 3_000_000);
        ledger.sent("b", Channel::InApp, InAppFormat::Banner, 3_100_000);
        ledger.sent("b", Channel::Email, InAppFormat::Unspecified, 3_200_000);
        assert_eq!(modals.used(&ledger, 3_500_000, ""), 2);
        assert_eq!(modals.used(&ledger, 3_700_000, ""), 1);
        let everything = rule(
            5,
            cap_rule::Window::CalendarDays(1),
            Channel::Unspecified,
            InAppFormat::Unspecified,
        );
        assert_eq!(everything.used(&ledger, 3_500_000, "UTC"), 4);
    }

    #[test]
    fn quiet_hours_hold_every_channel_but_in_app_unless_named() {
        let q = Quiet::compile(&QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(q.applies_to(Channel::Push));
        assert!(!q.applies_to(Channel::InApp));
        let named = Quiet::compile(&QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            channels: vec![Channel::InApp as i32],
            ..Default::default()
        })
        .unwrap();
        assert!(named.applies_to(Channel::InApp));
        assert!(!named.applies_to(Channel::Push));
        // 23:00 UTC is quiet; released at 08:00 UTC the next day.
        let at_23 = 23 * 3_600_000;
        assert_eq!(q.release_ms(at_23, "", "u1"), Some(32 * 3_600_000));
        assert_eq!(q.release_ms(12 * 3_600_000, "", "u1"), None);
    }
}
