//! Checks events and identities against the limits of the contract, naming every field
//! that is wrong, and fills in what the contract defaults (the timestamp, from the clock).

use herald_core::{Len, Violations, limits};
use herald_proto::common::v1::{Event, EventContext, Identity};
use herald_runtime::Error;
use prost::Message;
use prost_types::{Struct, Timestamp, Value, value::Kind};

use crate::store::Incoming;

/// Largest encoded `properties` / `traits`.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;
/// Deepest nesting of `properties` / `traits`.
pub const MAX_DEPTH: usize = 8;
/// How far in the future a timestamp may be.
const MAX_FUTURE_SECS: i64 = 24 * 3600;

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

fn check_struct(out: &mut Violations, field: &str, value: Option<&Struct>) {
    let Some(value) = value else { return };
    let size = value.encoded_len();
    if size > MAX_PROPERTIES_BYTES {
        out.push(
            field,
            format!("must be at most {MAX_PROPERTIES_BYTES} bytes encoded, got {size}"),
        );
    }
    let depth = 1 + struct_depth(value);
    if depth > MAX_DEPTH {
        out.push(
            field,
            format!("must be nested at most {MAX_DEPTH} levels deep, got {depth}"),
        );
    }
}

fn check_timestamp(
    out: &mut Violations,
    field: &str,
    value: &mut Option<Timestamp>,
    now: Timestamp,
) {
    match value {
        None => *value = Some(now),
        Some(t) => {
            if t.nanos < 0 || t.nanos > 999_999_999 || t.seconds < 0 {
                out.push(field, "must be a valid time after 1970-01-01");
            } else if t.seconds > now.seconds.saturating_add(MAX_FUTURE_SECS) {
                out.push(field, "must not be more than 24 hours in the future");
            }
        }
    }
}

fn check_context(out: &mut Violations, field: &str, context: Option<&EventContext>) {
    let Some(c) = context else { return };
    out.text(
        format!("{field}.session_id"),
        &c.session_id,
        Len::optional(128),
    );
    out.text(format!("{field}.locale"), &c.locale, Len::optional(64));
    out.text(
        format!("{field}.user_agent"),
        &c.user_agent,
        Len::optional(512),
    );
    out.text(
        format!("{field}.app_version"),
        &c.app_version,
        Len::optional(64),
    );
    if !c.ip.is_empty() && c.ip.parse::<std::net::IpAddr>().is_err() {
        out.push(format!("{field}.ip"), "must be an IPv4 or IPv6 address");
    }
    if !c.time_zone.is_empty() && jiff::tz::TimeZone::get(&c.time_zone).is_err() {
        out.push(
            format!("{field}.time_zone"),
            format!("unknown IANA time zone {:?}", c.time_zone),
        );
    }
}

fn check_event(out: &mut Violations, field: &str, event: &mut Event, now: Timestamp) {
    out.event_keys(field, &event.message_id, &event.user_id, &event.name);
    if event.name.starts_with('$') {
        out.push(
            format!("{field}.name"),
            "names starting with $ are reserved for Herald",
        );
    }
    check_struct(
        out,
        &format!("{field}.properties"),
        event.properties.as_ref(),
    );
    check_timestamp(
        out,
        &format!("{field}.timestamp"),
        &mut event.timestamp,
        now,
    );
    check_context(out, &format!("{field}.context"), event.context.as_ref());
}

/// Validates `event` (reported under `field`), filling in its timestamp with `now`.
pub fn event(field: &str, event: &mut Event, now: Timestamp) -> Result<(), Error> {
    let mut out = Violations::new();
    check_event(&mut out, field, event, now);
    Ok(out.finish()?)
}

/// Validates the events of a TrackBatch: 1..=1000 of them, every wrong field named.
pub fn batch(events: Vec<Event>, now: Timestamp) -> Result<Vec<Incoming>, Error> {
    if events.is_empty() || events.len() > limits::MAX_BATCH {
        return Err(Error::invalid(
            "events",
            format!(
                "must hold 1..={} events, got {}",
                limits::MAX_BATCH,
                events.len()
            ),
        ));
    }
    let mut out = Violations::new();
    let records = events
        .into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            check_event(&mut out, &format!("events[{i}]"), &mut event, now);
            Incoming::Event(event)
        })
        .collect();
    out.finish()?;
    Ok(records)
}

/// Validates `identity` (reported under `field`), filling in its timestamp with `now`.
pub fn identity(field: &str, identity: &mut Identity, now: Timestamp) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        format!("{field}.message_id"),
        &identity.message_id,
        Len::required(limits::MESSAGE_ID),
    );
    out.text(
        format!("{field}.user_id"),
        &identity.user_id,
        Len::required(limits::USER_ID),
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
    Ok(out.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp {
            seconds: 1_780_000_000,
            nanos: 0,
        }
    }

    fn violations(result: Result<(), Error>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(Error::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

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
        assert!(event("event", &mut e, now()).is_ok());
        assert_eq!(e.timestamp, Some(now()));
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
        let fields = violations(event("events[2]", &mut e, now()));
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
        assert_eq!(
            violations(event("event", &mut e, now())),
            ["event.properties"]
        );
    }
}
