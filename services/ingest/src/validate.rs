//! Checks events and identities against the limits of the contract, naming every field
//! that is wrong, and fills in what the contract defaults (the timestamp).

use herald_proto::common::v1::{Event, EventContext, Identity};
use herald_runtime::FieldViolation;
use prost::Message;
use prost_types::{Struct, Timestamp, Value, value::Kind};

/// Largest encoded `properties` / `traits`.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;
/// Deepest nesting of `properties` / `traits`.
pub const MAX_DEPTH: usize = 8;
/// Largest number of events in one TrackBatch.
pub const MAX_BATCH: usize = 1000;
/// How far in the future a timestamp may be.
const MAX_FUTURE_SECS: i64 = 24 * 3600;

fn check_len(out: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize, required: bool) {
    let len = value.chars().count();
    if required && len == 0 {
        out.push(FieldViolation::new(field, "must not be empty"));
    } else if len > max {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {max} characters, got {len}"),
        ));
    }
}

fn depth(value: &Value) -> usize {
    match &value.kind {
        Some(Kind::StructValue(s)) => 1 + struct_depth(s),
        Some(Kind::ListValue(l)) => 1 + l.values.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn struct_depth(s: &Struct) -> usize {
    s.fields.values().map(depth).max().unwrap_or(0)
}

fn check_struct(out: &mut Vec<FieldViolation>, field: &str, value: Option<&Struct>) {
    let Some(value) = value else { return };
    let size = value.encoded_len();
    if size > MAX_PROPERTIES_BYTES {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {MAX_PROPERTIES_BYTES} bytes encoded, got {size}"),
        ));
    }
    let depth = 1 + struct_depth(value);
    if depth > MAX_DEPTH {
        out.push(FieldViolation::new(
            field,
            format!("must be nested at most {MAX_DEPTH} levels deep, got {depth}"),
        ));
    }
}

fn check_timestamp(
    out: &mut Vec<FieldViolation>,
    field: &str,
    value: &mut Option<Timestamp>,
    now: Timestamp,
) {
    match value {
        None => *value = Some(now),
        Some(t) => {
            if t.nanos < 0 || t.nanos > 999_999_999 || t.seconds < 0 {
                out.push(FieldViolation::new(
                    field,
                    "must be a valid time after 1970-01-01",
                ));
            } else if t.seconds > now.seconds + MAX_FUTURE_SECS {
                out.push(FieldViolation::new(
                    field,
                    "must not be more than 24 hours in the future",
                ));
            }
        }
    }
}

fn check_context(out: &mut Vec<FieldViolation>, field: &str, context: Option<&EventContext>) {
    let Some(c) = context else { return };
    check_len(
        out,
        &format!("{field}.session_id"),
        &c.session_id,
        128,
        false,
    );
    check_len(out, &format!("{field}.locale"), &c.locale, 64, false);
    check_len(
        out,
        &format!("{field}.user_agent"),
        &c.user_agent,
        512,
        false,
    );
    check_len(
        out,
        &format!("{field}.app_version"),
        &c.app_version,
        64,
        false,
    );
    if !c.ip.is_empty() && c.ip.parse::<std::net::IpAddr>().is_err() {
        out.push(FieldViolation::new(
            format!("{field}.ip"),
            "must be an IPv4 or IPv6 address",
        ));
    }
    if !c.time_zone.is_empty() && jiff::tz::TimeZone::get(&c.time_zone).is_err() {
        out.push(FieldViolation::new(
            format!("{field}.time_zone"),
            format!("unknown IANA time zone {:?}", c.time_zone),
        ));
    }
}

/// The current time as a protobuf timestamp.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Validates `event` (reported under `field`), filling in its timestamp.
pub fn event(field: &str, event: &mut Event, now: Timestamp) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_len(
        &mut out,
        &format!("{field}.message_id"),
        &event.message_id,
        128,
        true,
    );
    check_len(
        &mut out,
        &format!("{field}.user_id"),
        &event.user_id,
        256,
        true,
    );
    check_len(&mut out, &format!("{field}.name"), &event.name, 128, true);
    if event.name.starts_with('$') {
        out.push(FieldViolation::new(
            format!("{field}.name"),
            "names starting with $ are reserved for Herald",
        ));
    }
    check_struct(
        &mut out,
        &format!("{field}.properties"),
        event.properties.as_ref(),
    );
    check_timestamp(
        &mut out,
        &format!("{field}.timestamp"),
        &mut event.timestamp,
        now,
    );
    check_context(
        &mut out,
        &format!("{field}.context"),
        event.context.as_ref(),
    );
    out
}

/// Validates `identity` (reported under `field`), filling in its timestamp.
pub fn identity(field: &str, identity: &mut Identity, now: Timestamp) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_len(
        &mut out,
        &format!("{field}.message_id"),
        &identity.message_id,
        128,
        true,
    );
    check_len(
        &mut out,
        &format!("{field}.user_id"),
        &identity.user_id,
        256,
        true,
    );
    check_struct(
        &mut out,
        &format!("{field}.traits"),
        identity.traits.as_ref(),
    );
    check_timestamp(
        &mut out,
        &format!("{field}.timestamp"),
        &mut identity.timestamp,
        now,
    );
    check_context(
        &mut out,
        &format!("{field}.context"),
        identity.context.as_ref(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Event {
        Event {
            message_id: "m1".into(),
            user_id: "u1".into(),
            name: "signed_up".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_event_gets_a_timestamp() {
        let mut e = valid();
        assert!(event("event", &mut e, now()).is_empty());
        assert!(e.timestamp.is_some());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut e = Event {
            name: "x".repeat(129),
            ..Default::default()
        };
        e.context = Some(EventContext {
            time_zone: "Mars/Olympus".into(),
            ..Default::default()
        });
        e.timestamp = Some(Timestamp {
            seconds: now().seconds + 3 * 86400,
            nanos: 0,
        });
        let fields: Vec<String> = event("events[2]", &mut e, now())
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "events[2].message_id",
                "events[2].user_id",
                "events[2].name",
                "events[2].timestamp",
                "events[2].context.time_zone"
            ]
        );
    }

    #[test]
    fn deep_properties_are_refused() {
        let mut value = Value {
            kind: Some(Kind::NumberValue(1.0)),
        };
        for _ in 0..9 {
            let mut s = Struct::default();
            s.fields.insert("a".into(), value);
            value = Value {
                kind: Some(Kind::StructValue(s)),
            };
        }
        let Some(Kind::StructValue(properties)) = value.kind else {
            unreachable!()
        };
        let mut e = Event {
            properties: Some(properties),
            ..valid()
        };
        let violations = event("event", &mut e, now());
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "event.properties");
    }
}
