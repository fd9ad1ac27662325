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

    /// The size of its protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Incoming::Event(e) => e.encoded_len(),
            Incoming::Identity(i) => i.encoded_len(),
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

/// One record to store, with what it carries downstream besides itself.
#[derive(Debug, Clone)]
pub struct Entry {
    pub workspace: String,
    pub incoming: Incoming,
    /// The W3C trace context of the call that brought it.
    pub traceparent: Option<String>,
}

impl Entry {
    /// `incoming` of `workspace`, in the trace of the current span.
    pub fn here(workspace: &str, incoming: Incoming) -> Entry {
        Entry {
            workspace: workspace.to_owned(),
            incoming,
            traceparent: herald_runtime::telemetry::current_traceparent(),
        }
    }

    /// `records` of `workspace`, all in the trace of the current span.
    pub fn all_here(workspace: &str, records: Vec<Incoming>) -> Vec<Entry> {
        let traceparent = herald_runtime::telemetry::current_traceparent();
        records
            .into_iter()
            .map(|incoming| Entry {
                workspace: workspace.to_owned(),
                incoming,
                traceparent: traceparent.clone(),
            })
            .collect()
    }
}

/// Stores `entries` and their outbox items in one transaction; returns once committed.
/// An entry whose (workspace, message_id) was stored before, or comes earlier in
/// `entries`, is a duplicate and changes nothing.
pub async fn record(
    db: &DatabaseConnection,
    outbox: &Outbox,
    clock: &Clock,
    entries: &[Entry],
) -> Result<Outcome, Error> {
    let received_at = clock.now_ms();
    // The first entry of each (workspace, message_id); later repeats are duplicates.
    let mut first = HashSet::new();
    let mut outcome = Outcome::default();
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let new_here = first.insert((entry.workspace.as_str(), entry.incoming.message_id()));
        outcome.duplicate.push(!new_here);
        if new_here {
            rows.push(row(&entry.workspace, &entry.incoming, received_at));
        }
    }
    let txn = db.begin().await?;
    let fresh = herald_storage::insert_fresh(&txn, rows).await?;
    let mut items = Vec::with_capacity(entries.len() * 2);
    for (entry, duplicate) in entries.iter().zip(outcome.duplicate.iter_mut()) {
        if *duplicate {
            continue;
        }
        let key = (
            entry.workspace.clone(),
            entry.incoming.message_id().to_owned(),
        );
        if fresh.contains(&key) {
            items.extend(outbox_items(entry));
        } else {
            *duplicate = true;
        }
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
fn outbox_items(entry: &Entry) -> Vec<NewItem> {
    let Entry {
        workspace,
        incoming,
        traceparent,
    } = entry;
    let workspace = workspace.as_str();
    let item = |destination, payload: Vec<u8>| NewItem {
        destination,
        key: incoming.user_id().to_owned(),
        payload,
        traceparent: traceparent.clone(),
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
