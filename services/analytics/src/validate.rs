//! Checks internal and public requests, naming every wrong field, and turns the valid
//! ones into what the store keeps (times as milliseconds since the Unix epoch).

use herald_core::time::{checked_ms_of_proto as millis, duration_ms};
use herald_core::{FieldViolation, Len, Violations, limits};
use herald_proto::analytics::v1::{
    BucketSize, GetCampaignStatsRequest, GetTimeSeriesRequest, Interaction, InteractionKind, Metric,
};
use herald_proto::common::v1::Event;
use prost_types::{Duration, Timestamp};
/// The attribution window when the campaign names none.
pub const DEFAULT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// How far in the future a time may be.
const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

fn check_time(out: &mut Violations, field: String, t: Option<&Timestamp>, now: i64) -> i64 {
    let Some(t) = t else { return now };
    match millis(t) {
        None => {
            out.push(field, "must be a valid time after 1970-01-01");
            now
        }
        Some(ms) if ms > now.saturating_add(MAX_FUTURE_MS) => {
            out.push(field, "must not be more than 24 hours in the future");
            now
        }
        Some(ms) => ms,
    }
}

fn window_ms(out: &mut Violations, field: String, d: Option<&Duration>) -> i64 {
    match d {
        None => DEFAULT_WINDOW_MS,
        Some(d) if d.seconds < 0 || d.nanos < 0 || d.nanos > 999_999_999 => {
            out.push(field, "must be a positive duration");
            DEFAULT_WINDOW_MS
        }
        Some(d) if d.seconds == 0 && d.nanos == 0 => DEFAULT_WINDOW_MS,
        Some(d) => duration_ms(d),
    }
}

/// An interaction as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid {
    pub interaction: Interaction,
    pub kind: InteractionKind,
    pub occurred_at: i64,
    pub window_ms: i64,
}

/// Validates a RecordInteractions request.
pub fn interactions(
    workspace_id: &str,
    interactions: Vec<Interaction>,
    now: i64,
) -> Result<Vec<Valid>, Vec<FieldViolation>> {
    let mut out = Violations::new();
    out.batch(workspace_id, "interactions", interactions.len());
    let mut valid = Vec::with_capacity(interactions.len());
    for (i, mut interaction) in interactions.into_iter().enumerate() {
        let field = |name: &str| format!("interactions[{i}].{name}");
        out.text(field("id"), &interaction.id, Len::required(128));
        out.text(
            field("campaign_id"),
            &interaction.campaign_id,
            Len::required(128),
        );
        out.text(field("user_id"), &interaction.user_id, Len::required(256));
        let kind = match InteractionKind::try_from(interaction.kind) {
            Ok(InteractionKind::Unspecified) | Err(_) => {
                out.push(field("kind"), "must be a known interaction kind");
                InteractionKind::Unspecified
            }
            Ok(InteractionKind::Converted) => {
                out.push(field("kind"), "CONVERTED is recorded by analytics itself");
                InteractionKind::Unspecified
            }
            Ok(kind) => kind,
        };
        if kind == InteractionKind::AssignedControl {
            // Control has no variant; whatever was sent is not one.
            interaction.variant_id.clear();
        } else {
            out.text(
                field("variant_id"),
                &interaction.variant_id,
                Len::required(128),
            );
        }
        let needs_message = matches!(
            kind,
            InteractionKind::Delivered
                | InteractionKind::Impression
                | InteractionKind::Click
                | InteractionKind::Dismissal
        );
        out.text(
            field("message_id"),
            &interaction.message_id,
            if needs_message {
                Len::required(128)
            } else {
                Len::optional(128)
            },
        );
        out.text(
            field("action_id"),
            &interaction.action_id,
            Len::optional(64),
        );
        out.text(
            field("goal_event_name"),
            &interaction.goal_event_name,
            Len::optional(128),
        );
        out.text(
            field("delivery_idempotency_key"),
            &interaction.delivery_idempotency_key,
            Len::optional(256),
        );
        let occurred_at = check_time(&mut out, field("time"), interaction.time.as_ref(), now);
        let window_ms = window_ms(
            &mut out,
            field("attribution_window"),
            interaction.attribution_window.as_ref(),
        );
        valid.push(Valid {
            interaction,
            kind,
            occurred_at,
            window_ms,
        });
    }
    out.finish().map(|()| valid)
}

/// Validates a RecordEvents request; returns each event's time in milliseconds.
pub fn events(
    workspace_id: &str,
    events: &[Event],
    now: i64,
) -> Result<Vec<i64>, Vec<FieldViolation>> {
    let mut out = Violations::new();
    out.batch(workspace_id, "events", events.len());
    let mut times = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        out.event_keys(&format!("events[{i}]"), &e.message_id, &e.user_id, &e.name);
        // Past times are fine; ingest already bounded the future.
        times.push(match e.timestamp.as_ref().map(millis) {
            None => now,
            Some(Some(ms)) => ms,
            Some(None) => {
                out.push(
                    format!("events[{i}].timestamp"),
                    "must be a valid time after 1970-01-01",
                );
                now
            }
        });
    }
    out.finish().map(|()| times)
}

/// The range of a GetCampaignStats request, `[start, end)` in milliseconds.
pub fn stats_range(
    request: &GetCampaignStatsRequest,
    now: i64,
) -> Result<(i64, i64), Vec<FieldViolation>> {
    let mut out = Violations::new();
    out.text(
        "campaign_id",
        &request.campaign_id,
        Len::required(limits::CAMPAIGN_ID),
    );
    let mut bound = |field: &str, t: Option<&Timestamp>, default: i64| match t.map(millis) {
        None => default,
        Some(Some(ms)) => ms,
        Some(None) => {
            out.push(field, "must be a valid time after 1970-01-01");
            default
        }
    };
    let start = bound("start_time", request.start_time.as_ref(), 0);
    let end = bound("end_time", request.end_time.as_ref(), i64::MAX);
    if request.start_time.is_some() && request.end_time.is_some() && end <= start {
        out.push("end_time", "must be after start_time");
    }
    // Unset end means now; interactions a little in the future (clock skew) count too.
    let end = if request.end_time.is_none() {
        now.saturating_add(MAX_FUTURE_MS)
    } else {
        end
    };
    out.finish().map(|()| (start, end))
}

/// A valid GetTimeSeries request.
#[derive(Debug)]
pub struct Series {
    pub metric: Metric,
    pub size: BucketSize,
    pub start: i64,
    pub end: i64,
    pub zone: jiff::tz::TimeZone,
}

/// Validates a GetTimeSeries request; an empty `time_zone` means `default_zone` (the
/// workspace's).
pub fn series(
    request: &GetTimeSeriesRequest,
    now: i64,
    default_zone: &jiff::tz::TimeZone,
) -> Result<Series, Vec<FieldViolation>> {
    let mut out = Violations::new();
    out.text(
        "campaign_id",
        &request.campaign_id,
        Len::required(limits::CAMPAIGN_ID),
    );
    let metric = match Metric::try_from(request.metric) {
        Ok(Metric::Unspecified) | Err(_) => {
            out.push("metric", "must be a known metric");
            Metric::Unspecified
        }
        Ok(metric) => metric,
    };
    let size = match BucketSize::try_from(request.bucket_size) {
        Ok(BucketSize::Unspecified) => BucketSize::Day,
        Ok(BucketSize::Minute) => {
            out.push(
                "bucket_size",
                "minutes are not kept: aggregates are hourly (use HOUR, DAY or WEEK)",
            );
            BucketSize::Day
        }
        Ok(size) => size,
        Err(_) => {
            out.push("bucket_size", "must be a known bucket size");
            BucketSize::Day
        }
    };
    let start = match request.start_time.as_ref().map(millis) {
        None => {
            out.push("start_time", "is required");
            0
        }
        Some(None) => {
            out.push("start_time", "must be a valid time after 1970-01-01");
            0
        }
        Some(Some(ms)) => ms,
    };
    let end = match request.end_time.as_ref().map(millis) {
        None => now,
        Some(None) => {
            out.push("end_time", "must be a valid time after 1970-01-01");
            now
        }
        Some(Some(ms)) => ms,
    };
    if request.start_time.is_some() && end <= start {
        out.push("end_time", "must be after start_time");
    }
    if request.control && !request.variant_id.is_empty() {
        out.push("variant_id", "must be empty when control is set");
    }
    out.text("variant_id", &request.variant_id, Len::optional(128));
    let zone = if request.time_zone.is_empty() {
        default_zone.clone()
    } else {
        match jiff::tz::TimeZone::get(&request.time_zone) {
            Ok(zone) => zone,
            Err(_) => {
                out.push("time_zone", "must be an IANA time zone, e.g. Europe/Paris");
                jiff::tz::TimeZone::UTC
            }
        }
    };
    out.finish().map(|()| Series {
        metric,
        size,
        start,
        end,
        zone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click() -> Interaction {
        Interaction {
            id: "i1".into(),
            campaign_id: "c1".into(),
            variant_id: "v1".into(),
            user_id: "u1".into(),
            kind: InteractionKind::Click as i32,
            message_id: "m1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_interaction_gets_defaults() {
        let valid = interactions("acme", vec![click()], 5_000).unwrap();
        assert_eq!(
            (valid[0].occurred_at, valid[0].window_ms),
            (5_000, DEFAULT_WINDOW_MS)
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = Interaction {
            kind: 42,
            message_id: String::new(),
            ..click()
        };
        let control = Interaction {
            kind: InteractionKind::AssignedControl as i32,
            variant_id: "ignored".into(),
            message_id: String::new(),
            time: Some(Timestamp {
                seconds: 10_000_000_000,
                nanos: 0,
            }),
            ..click()
        };
        let missing_message = Interaction {
            kind: InteractionKind::Impression as i32,
            message_id: String::new(),
            ..click()
        };
        let fields: Vec<String> = interactions("", vec![bad, control, missing_message], 0)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "workspace_id",
                "interactions[0].kind",
                "interactions[1].time",
                "interactions[2].message_id"
            ]
        );
    }

    #[test]
    fn control_needs_no_variant_or_message() {
        let control = Interaction {
            kind: InteractionKind::AssignedControl as i32,
            variant_id: "v9".into(),
            message_id: String::new(),
            ..click()
        };
        let valid = interactions("acme", vec![control], 0).unwrap();
        assert_eq!(valid[0].interaction.variant_id, "");
    }

    #[test]
    fn stats_ranges_must_be_ordered() {
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        let request = GetCampaignStatsRequest {
            campaign_id: "c".into(),
            start_time: at(10),
            end_time: at(5),
            ..Default::default()
        };
        let fields: Vec<String> = stats_range(&request, 0)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["end_time"]);
        let request = GetCampaignStatsRequest {
            campaign_id: "c".into(),
            start_time: at(5),
            end_time: at(10),
            ..Default::default()
        };
        assert_eq!(stats_range(&request, 0).unwrap(), (5_000, 10_000));
    }

    #[test]
    fn a_series_without_a_zone_follows_the_workspaces() {
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let request = GetTimeSeriesRequest {
            campaign_id: "c".into(),
            metric: Metric::Sent as i32,
            start_time: Some(Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            ..Default::default()
        };
        let valid = series(&request, 86_400_000, &new_york).unwrap();
        assert_eq!(valid.zone.iana_name(), Some("America/New_York"));
        let paris = GetTimeSeriesRequest {
            time_zone: "Europe/Paris".into(),
            ..request
        };
        let valid = series(&paris, 86_400_000, &new_york).unwrap();
        assert_eq!(valid.zone.iana_name(), Some("Europe/Paris"));
    }
}
