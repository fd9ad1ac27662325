//! Durable, deduplicated records of events and identities, committed together with the
//! outbox items that carry them downstream.

use std::collections::HashSet;

use herald_core::time::ms_of_proto;
use herald_outbox::{NewItem, Outbox};
use herald_proto::analytics::v1::RecordEventsRequest;
use herald_proto::common::v1::{Event, Identity};
use herald_proto::segmentation::v1::{ApplyEventsRequest, ApplyIdentitiesRequest};
use herald_runtime::{Clock, Error};
use prost::Message;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::downstream::{ANALYTICS, SEGMENTATION, SegmentationCall};

pub mod record {
    //! One accepted event or identity update.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ingest_records")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        /// 1 = event, 2 = identity.
        pub kind: i16,
        pub user_id: String,
        /// Event name; empty for identities.
        pub name: String,
        pub occurred_at: i64,
        pub received_at: i64,
        /// The protobuf-encoded `Event` or `Identity`, as acknowledged.
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A validated event or identity, ready to store.
#[derive(Debug, Clone)]
pub enum Incoming {
    Event(Event),
    Identity(Identity),
}

impl Incoming {
    fn message_id(&self) -> &str {
        match self {
            Incoming::Event(e) => &e.message_id,
            Incoming::Identity(i) => &i.message_id,
        }
    }

    fn user_id(&self) -> &str {
        match self {
            Incoming::Event(e) => &e.user_id,
            Incoming::Identity(i) => &i.user_id,
        }
    }
}

/// What happened to each incoming record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Per record, in request order: true when it was a duplicate.
    pub duplicate: Vec<bool>,
}

impl Outcome {
    pub fn accepted(&self) -> u32 {
        self.duplicate.iter().filter(|d| !**d).count() as u32
    }

    pub fn duplicates(&self) -> u32 {
        self.duplicate.iter().filter(|d| **d).count() as u32
    }
}

/// Stores `records` of `workspace` and their outbox items in one transaction; returns
/// once committed. Records whose message_id was seen before (or earlier in the same
/// request) are duplicates and change nothing.
pub async fn record(
    db: &DatabaseConnection,
    outbox: &Outbox,
    clock: &Clock,
    workspace: &str,
    records: &[Incoming],
) -> Result<Outcome, Error> {
    let received_at = clock.now_ms();
    // The first record of each message_id in the request; later repeats are duplicates.
    let mut first = HashSet::new();
    let mut outcome = Outcome::default();
    let mut rows = Vec::with_capacity(records.len());
    for incoming in records {
        let new_here = first.insert(incoming.message_id());
        outcome.duplicate.push(!new_here);
        if new_here {
            rows.push(row(workspace, incoming, received_at));
        }
    }
    let txn = db.begin().await?;
    // One statement inserts what is new and says which it was.
    let fresh = herald_storage::insert_fresh(&txn, rows).await?;
    let traceparent = herald_runtime::telemetry::current_traceparent();
    let mut items = Vec::new();
    for (incoming, duplicate) in records.iter().zip(outcome.duplicate.iter_mut()) {
        if *duplicate {
            continue;
        }
        if !fresh.contains(&(workspace.to_owned(), incoming.message_id().to_owned())) {
            *duplicate = true;
            continue;
        }
        items.extend(outbox_items(workspace, incoming, traceparent.as_ref()));
    }
    if items.is_empty() {
        txn.rollback().await?;
        return Ok(outcome);
    }
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(outcome)
}

/// The stored form of `incoming`.
fn row(workspace: &str, incoming: &Incoming, received_at: i64) -> record::ActiveModel {
    let (kind, name, occurred, body) = match incoming {
        Incoming::Event(e) => (1, e.name.clone(), e.timestamp.as_ref(), e.encode_to_vec()),
        Incoming::Identity(i) => (2, String::new(), i.timestamp.as_ref(), i.encode_to_vec()),
    };
    record::ActiveModel::from(record::Model {
        workspace_id: workspace.to_owned(),
        message_id: incoming.message_id().to_owned(),
        kind,
        user_id: incoming.user_id().to_owned(),
        name,
        occurred_at: occurred.map(ms_of_proto).unwrap_or(received_at),
        received_at,
        body,
    })
}

/// The outbox items a new record makes: every record goes to segmentation (events and
/// identities share the destination, so one user's stay in order), events to analytics.
fn outbox_items(
    workspace: &str,
    incoming: &Incoming,
    traceparent: Option<&String>,
) -> Vec<NewItem> {
    let item = |destination, payload: Vec<u8>| NewItem {
        destination,
        key: incoming.user_id().to_owned(),
        payload,
        traceparent: traceparent.cloned(),
    };
    match incoming {
        Incoming::Event(event) => vec![
            item(
                SEGMENTATION,
                SegmentationCall::Events(ApplyEventsRequest {
                    workspace_id: workspace.to_owned(),
                    events: vec![event.clone()],
                })
                .encode(),
            ),
            item(
                ANALYTICS,
                RecordEventsRequest {
                    workspace_id: workspace.to_owned(),
                    events: vec![event.clone()],
                }
                .encode_to_vec(),
            ),
        ],
        Incoming::Identity(identity) => vec![item(
            SEGMENTATION,
            SegmentationCall::Identities(ApplyIdentitiesRequest {
                workspace_id: workspace.to_owned(),
                identities: vec![identity.clone()],
            })
            .encode(),
        )],
    }
}
