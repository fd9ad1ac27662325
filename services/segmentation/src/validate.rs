//! Checks the internal requests ingest relays: a workspace, at most [`MAX_BATCH`] items,
//! and on every item the ids and names segmentation keys its state on. Ingest already
//! enforced the full limits; these checks keep a misbehaving caller from writing
//! unkeyed state, and name every wrong field.

use herald_proto::common::v1::{Event, Identity};
use herald_runtime::FieldViolation;

/// Largest number of events or identities in one call.
pub const MAX_BATCH: usize = 1000;

fn check_len(out: &mut Vec<FieldViolation>, field: String, value: &str, max: usize) {
    let len = value.chars().count();
    if len == 0 {
        out.push(FieldViolation::new(field, "must not be empty"));
    } else if len > max {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {max} characters, got {len}"),
        ));
    }
}

fn check_batch(out: &mut Vec<FieldViolation>, workspace_id: &str, field: &str, len: usize) {
    check_len(out, "workspace_id".into(), workspace_id, 128);
    if len > MAX_BATCH {
        out.push(FieldViolation::new(
            field,
            format!("must hold at most {MAX_BATCH} items, got {len}"),
        ));
    }
}

/// Violations of an ApplyEvents request.
pub fn events(workspace_id: &str, events: &[Event]) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_batch(&mut out, workspace_id, "events", events.len());
    for (i, e) in events.iter().enumerate() {
        check_len(
            &mut out,
            format!("events[{i}].message_id"),
            &e.message_id,
            128,
        );
        check_len(&mut out, format!("events[{i}].user_id"), &e.user_id, 256);
        check_len(&mut out, format!("events[{i}].name"), &e.name, 128);
    }
    out
}

/// Violations of an ApplyIdentities request.
pub fn identities(workspace_id: &str, identities: &[Identity]) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_batch(&mut out, workspace_id, "identities", identities.len());
    for (i, identity) in identities.iter().enumerate() {
        check_len(
            &mut out,
            format!("identities[{i}].message_id"),
            &identity.message_id,
            128,
        );
        check_len(
            &mut out,
            format!("identities[{i}].user_id"),
            &identity.user_id,
            256,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_key_is_named() {
        let ok = Event {
            message_id: "m".into(),
            user_id: "u".into(),
            name: "n".into(),
            ..Default::default()
        };
        let bad = Event {
            message_id: "m2".into(),
            ..Default::default()
        };
        let fields: Vec<String> = events("", &[ok, bad])
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            ["workspace_id", "events[1].user_id", "events[1].name"]
        );
    }

    #[test]
    fn identities_need_ids() {
        let fields: Vec<String> = identities("acme", &[Identity::default()])
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            ["identities[0].message_id", "identities[0].user_id"]
        );
    }
}
