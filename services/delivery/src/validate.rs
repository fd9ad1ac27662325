//! Checks of incoming deliveries and preferences, returning every field violation.

use std::collections::HashSet;

use herald_core::{FieldViolation, Len, Violations, limits};
use herald_proto::common::v1::{Channel, message_content};
use herald_proto::delivery::v1::{DeliverRequest, Delivery, Preferences};
use herald_runtime::Error;

fn length(out: &mut Vec<FieldViolation>, field: &str, value: &str, min: usize, max: usize) {
    if let Some(description) = Len::between(min, max).check(value) {
        out.push(FieldViolation::new(field, description));
    }
}

/// The longest attribution window a delivery may carry: 90 days, as campaigns allow.
const MAX_ATTRIBUTION_WINDOW_SECS: i64 = 90 * 86_400;

/// Whether `window` is a well-formed duration of 1 second to 90 days.
fn attribution_window_ok(window: &prost_types::Duration) -> bool {
    let (seconds, nanos) = (window.seconds, window.nanos);
    (0..=999_999_999).contains(&nanos)
        && (1, 0) <= (seconds, nanos)
        && (seconds, nanos) <= (MAX_ATTRIBUTION_WINDOW_SECS, 0)
}

/// Checks a Deliver request: 1..=1000 deliveries, every wrong field named.
pub fn deliver(request: &DeliverRequest) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        "workspace_id",
        &request.workspace_id,
        Len::required(limits::WORKSPACE_ID),
    );
    let n = request.deliveries.len();
    if n == 0 || n > limits::MAX_BATCH {
        out.push(
            "deliveries",
            format!("must hold 1..={} deliveries, got {n}", limits::MAX_BATCH),
        );
    }
    for (i, d) in request.deliveries.iter().enumerate() {
        out.extend(delivery(&format!("deliveries[{i}]"), d));
    }
    Ok(out.finish()?)
}

/// The violations of one delivery at `path` (e.g. `deliveries[3]`).
pub fn delivery(path: &str, d: &Delivery) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let field = |name: &str| format!("{path}.{name}");
    length(
        &mut out,
        &field("idempotency_key"),
        &d.idempotency_key,
        1,
        limits::IDEMPOTENCY_KEY,
    );
    length(&mut out, &field("user_id"), &d.user_id, 1, limits::USER_ID);
    length(
        &mut out,
        &field("campaign_id"),
        &d.campaign_id,
        1,
        limits::CAMPAIGN_ID,
    );
    length(
        &mut out,
        &field("variant_id"),
        &d.variant_id,
        1,
        limits::VARIANT_ID,
    );
    length(
        &mut out,
        &field("category"),
        &d.category,
        0,
        limits::CATEGORY,
    );
    length(&mut out, &field("address"), &d.address, 0, 512);
    length(
        &mut out,
        &field("goal_event_name"),
        &d.goal_event_name,
        0,
        limits::EVENT_NAME,
    );
    if let Some(window) = &d.attribution_window
        && !attribution_window_ok(window)
    {
        out.push(FieldViolation::new(
            field("attribution_window"),
            format!(
                "must be between 1s and 90 days ({MAX_ATTRIBUTION_WINDOW_SECS}s), got {}s",
                herald_core::time::duration_secs(window)
            ),
        ));
    }
    let channel = Channel::try_from(d.channel).unwrap_or(Channel::Unspecified);
    if channel == Channel::Unspecified {
        out.push(FieldViolation::new(
            field("channel"),
            "must be a known channel",
        ));
    }
    let body = d.content.as_ref().and_then(|c| c.body.as_ref());
    let Some(body) = body else {
        out.push(FieldViolation::new(
            field("content"),
            "is required and must set one channel's content",
        ));
        return out;
    };
    let content_channel = match body {
        message_content::Body::InApp(_) => Channel::InApp,
        message_content::Body::Push(_) => Channel::Push,
        message_content::Body::Email(_) => Channel::Email,
        message_content::Body::Sms(_) => Channel::Sms,
        message_content::Body::Webhook(_) => Channel::Webhook,
    };
    if channel != Channel::Unspecified && channel != content_channel {
        out.push(FieldViolation::new(
            field("content"),
            format!(
                "holds {} content but channel is {}",
                content_channel.as_str_name(),
                channel.as_str_name()
            ),
        ));
    }
    if let message_content::Body::InApp(in_app) = body {
        length(
            &mut out,
            &field("content.in_app.title"),
            &in_app.title,
            0,
            256,
        );
        length(
            &mut out,
            &field("content.in_app.body"),
            &in_app.body,
            0,
            8192,
        );
        if in_app.actions.len() > 4 {
            out.push(FieldViolation::new(
                field("content.in_app.actions"),
                "must hold at most 4 actions",
            ));
        }
        let mut ids = HashSet::new();
        for (i, action) in in_app.actions.iter().enumerate() {
            let action_field = field(&format!("content.in_app.actions[{i}].id"));
            length(&mut out, &action_field, &action.id, 1, 64);
            if !ids.insert(action.id.as_str()) {
                out.push(FieldViolation::new(
                    action_field,
                    "must be unique within the message",
                ));
            }
        }
    }
    out
}

/// The fields of Preferences an update mask may name.
pub const PREFERENCE_FIELDS: [&str; 3] = ["channels", "opted_out_categories", "quiet_hours"];

/// The violations of preferences given to UpdatePreferences, for the fields in `fields`.
pub fn preferences(p: &Preferences, fields: &[&str]) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if fields.contains(&"channels") {
        let mut seen = HashSet::new();
        for (i, c) in p.channels.iter().enumerate() {
            let field = format!("preferences.channels[{i}].channel");
            match Channel::try_from(c.channel) {
                Ok(Channel::Unspecified) | Err(_) => {
                    out.push(FieldViolation::new(field, "must be a known channel"))
                }
                Ok(_) if !seen.insert(c.channel) => {
                    out.push(FieldViolation::new(field, "must appear at most once"))
                }
                Ok(_) => {}
            }
        }
    }
    if fields.contains(&"opted_out_categories") {
        if p.opted_out_categories.len() > 100 {
            out.push(FieldViolation::new(
                "preferences.opted_out_categories",
                "must hold at most 100 entries",
            ));
        }
        for (i, category) in p.opted_out_categories.iter().enumerate() {
            length(
                &mut out,
                &format!("preferences.opted_out_categories[{i}]"),
                category,
                1,
                64,
            );
        }
    }
    if fields.contains(&"quiet_hours")
        && let Some(q) = &p.quiet_hours
    {
        for (name, value) in [
            ("start_local_time", &q.start_local_time),
            ("end_local_time", &q.end_local_time),
        ] {
            if !is_local_time(value) {
                out.push(FieldViolation::new(
                    format!("preferences.quiet_hours.{name}"),
                    format!("must be HH:MM in 24-hour form, got {value:?}"),
                ));
            }
        }
        if q.time_zone.is_empty() || jiff::tz::TimeZone::get(&q.time_zone).is_err() {
            out.push(FieldViolation::new(
                "preferences.quiet_hours.time_zone",
                format!(
                    "must be an IANA time zone such as Europe/Paris, got {:?}",
                    q.time_zone
                ),
            ));
        }
    }
    out
}

fn is_local_time(value: &str) -> bool {
    let Some((h, m)) = value.split_once(':') else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && h.parse::<u8>().is_ok_and(|h| h < 24)
        && m.parse::<u8>().is_ok_and(|m| m < 60)
}

#[cfg(test)]
mod tests {
    use herald_proto::common::v1::{Action, InAppContent, MessageContent, PushContent};
    use herald_proto::delivery::v1::{ChannelPreference, QuietHoursOverride};

    use super::*;

    fn in_app(actions: &[&str]) -> Delivery {
        Delivery {
            idempotency_key: "k".into(),
            user_id: "u".into(),
            campaign_id: "c".into(),
            variant_id: "v".into(),
            channel: Channel::InApp as i32,
            content: Some(MessageContent {
                body: Some(message_content::Body::InApp(InAppContent {
                    actions: actions
                        .iter()
                        .map(|id| Action {
                            id: (*id).into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }
    }

    fn fields(violations: Vec<FieldViolation>) -> Vec<String> {
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn deliveries() {
        assert!(delivery("d", &in_app(&["a", "b"])).is_empty());
        assert_eq!(
            fields(delivery("d", &in_app(&["a", "a"]))),
            ["d.content.in_app.actions[1].id"]
        );
        let mut mismatch = in_app(&[]);
        mismatch.content = Some(MessageContent {
            body: Some(message_content::Body::Push(PushContent::default())),
        });
        assert_eq!(fields(delivery("d", &mismatch)), ["d.content"]);
        let empty = Delivery::default();
        assert_eq!(
            fields(delivery("d", &empty)),
            [
                "d.idempotency_key",
                "d.user_id",
                "d.campaign_id",
                "d.variant_id",
                "d.channel",
                "d.content"
            ]
        );
    }

    #[test]
    fn goals_and_attribution_windows() {
        let window = |seconds: i64, nanos: i32| Delivery {
            goal_event_name: "purchased".into(),
            attribution_window: Some(prost_types::Duration { seconds, nanos }),
            ..in_app(&[])
        };
        for (seconds, nanos) in [(1, 0), (3600, 500), (90 * 86_400, 0)] {
            assert!(delivery("d", &window(seconds, nanos)).is_empty());
        }
        for (seconds, nanos) in [
            (0, 0),
            (0, 999_999_999),
            (90 * 86_400, 1),
            (-5, 0),
            (1, -1),
            (1, 1_000_000_000),
        ] {
            assert_eq!(
                fields(delivery("d", &window(seconds, nanos))),
                ["d.attribution_window"],
                "{seconds}s {nanos}ns"
            );
        }
        let long_goal = Delivery {
            goal_event_name: "e".repeat(129),
            ..in_app(&[])
        };
        assert_eq!(fields(delivery("d", &long_goal)), ["d.goal_event_name"]);
        let no_goal = Delivery {
            goal_event_name: String::new(),
            attribution_window: None,
            ..window(1, 0)
        };
        assert!(delivery("d", &no_goal).is_empty());
    }

    #[test]
    fn preference_updates() {
        let p = Preferences {
            channels: vec![
                ChannelPreference {
                    channel: Channel::Email as i32,
                    enabled: false,
                },
                ChannelPreference {
                    channel: Channel::Email as i32,
                    enabled: true,
                },
                ChannelPreference {
                    channel: 0,
                    enabled: true,
                },
            ],
            opted_out_categories: vec!["news".into(), String::new()],
            quiet_hours: Some(QuietHoursOverride {
                start_local_time: "22:00".into(),
                end_local_time: "24:00".into(),
                time_zone: "Mars/Olympus".into(),
            }),
            update_time: None,
        };
        assert_eq!(
            fields(preferences(&p, &PREFERENCE_FIELDS)),
            [
                "preferences.channels[1].channel",
                "preferences.channels[2].channel",
                "preferences.opted_out_categories[1]",
                "preferences.quiet_hours.end_local_time",
                "preferences.quiet_hours.time_zone",
            ]
        );
        assert!(
            preferences(&p, &[]).is_empty(),
            "fields outside the mask are not checked"
        );
    }
}
