//! Checks the internal requests ingest relays: a workspace, at most
//! [`limits::MAX_BATCH`] items, and on every item the ids and names segmentation keys its
//! state on. Ingest already enforced the full limits; these checks keep a misbehaving
//! caller from writing unkeyed state, and name every wrong field.

use herald_core::{Len, Violations, limits};
use herald_proto::analytics::v1::Interaction;
use herald_proto::common::v1::{Event, Identity};
use herald_runtime::Error;

/// Checks an ApplyEvents request.
pub fn events(workspace_id: &str, events: &[Event]) -> Result<(), Error> {
    let mut out = Violations::new();
    out.batch(workspace_id, "events", events.len());
    for (i, e) in events.iter().enumerate() {
        out.event_keys(&format!("events[{i}]"), &e.message_id, &e.user_id, &e.name);
    }
    Ok(out.finish()?)
}

/// Checks an ApplyIdentities request.
pub fn identities(workspace_id: &str, identities: &[Identity]) -> Result<(), Error> {
    let mut out = Violations::new();
    out.batch(workspace_id, "identities", identities.len());
    for (i, identity) in identities.iter().enumerate() {
        out.text(
            format!("identities[{i}].message_id"),
            &identity.message_id,
            Len::required(limits::MESSAGE_ID),
        );
        out.text(
            format!("identities[{i}].user_id"),
            &identity.user_id,
            Len::required(limits::USER_ID),
        );
    }
    Ok(out.finish()?)
}

/// Checks an ApplyInteractions request: the ids and keys an engagement series is counted
/// under.
pub fn interactions(workspace_id: &str, interactions: &[Interaction]) -> Result<(), Error> {
    let mut out = Violations::new();
    out.batch(workspace_id, "interactions", interactions.len());
    for (i, interaction) in interactions.iter().enumerate() {
        out.text(
            format!("interactions[{i}].id"),
            &interaction.id,
            Len::required(limits::MESSAGE_ID),
        );
        out.text(
            format!("interactions[{i}].user_id"),
            &interaction.user_id,
            Len::required(limits::USER_ID),
        );
        out.text(
            format!("interactions[{i}].campaign_id"),
            &interaction.campaign_id,
            Len::required(limits::CAMPAIGN_ID),
        );
    }
    Ok(out.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(result: Result<(), Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

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
        let fields = fields(events("", &[ok, bad]));
        assert_eq!(
            fields,
            ["workspace_id", "events[1].user_id", "events[1].name"]
        );
    }

    #[test]
    fn identities_need_ids() {
        let fields = fields(identities("acme", &[Identity::default()]));
        assert_eq!(
            fields,
            ["identities[0].message_id", "identities[0].user_id"]
        );
    }
}
