//! Durable, deduplicated records of events and identities, committed together with the
//! outbox items that carry them downstream.

use std::collections::HashSet;

use herald_outbox::{NewItem, Outbox};
use herald_proto::analytics::v1::RecordEventsRequest;
use herald_proto::common::v1::{Event, Identity};
use herald_proto::segmentation::v1::{ApplyEventsRequest, ApplyIdentitiesRequest};
use prost::Message;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};

use crate::downstream::{ANALYTICS, SEGMENTATION, SegmentationItem};
use crate::error::Error;

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
    workspace: &str,
    records: &[Incoming],
) -> Result<Outcome, Error> {
    // Two concurrent requests with the same new message_id race on the primary key; the
    // loser retries and then sees the winner's row as a duplicate.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_record(db, outbox, workspace, records).await {
            Err(Error::Database(e)) if attempt < 3 && is_unique_violation(&e) => continue,
            other => return other,
        }
    }
}

fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

async fn try_record(
    db: &DatabaseConnection,
    outbox: &Outbox,
    workspace: &str,
    records: &[Incoming],
) -> Result<Outcome, Error> {
    let txn = db.begin().await?;
    let ids: Vec<&str> = records.iter().map(Incoming::message_id).collect();
    let mut seen: HashSet<String> = record::Entity::find()
        .select_only()
        .column(record::Column::MessageId)
        .filter(record::Column::WorkspaceId.eq(workspace))
        .filter(record::Column::MessageId.is_in(ids))
        .into_tuple::<String>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    let received_at = herald_storage::now_ms();
    let traceparent = herald_runtime::telemetry::current_traceparent();
    let mut outcome = Outcome::default();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for incoming in records {
        let fresh = seen.insert(incoming.message_id().to_owned());
        outcome.duplicate.push(!fresh);
        if !fresh {
            continue;
        }
        let key = incoming.user_id().to_owned();
        let item = |destination, payload: Vec<u8>| NewItem {
            destination,
            key: key.clone(),
            payload,
            traceparent: traceparent.clone(),
        };
        let (kind, name, occurred, body) = match incoming {
            Incoming::Event(event) => {
                items.push(item(
                    SEGMENTATION,
                    SegmentationItem::Events(ApplyEventsRequest {
                        workspace_id: workspace.to_owned(),
                        events: vec![event.clone()],
                    })
                    .encode(),
                ));
                items.push(item(
                    ANALYTICS,
                    RecordEventsRequest {
                        workspace_id: workspace.to_owned(),
                        events: vec![event.clone()],
                    }
                    .encode_to_vec(),
                ));
                (
                    1,
                    event.name.clone(),
                    event.timestamp,
                    event.encode_to_vec(),
                )
            }
            Incoming::Identity(identity) => {
                items.push(item(
                    SEGMENTATION,
                    SegmentationItem::Identities(ApplyIdentitiesRequest {
                        workspace_id: workspace.to_owned(),
                        identities: vec![identity.clone()],
                    })
                    .encode(),
                ));
                (
                    2,
                    String::new(),
                    identity.timestamp,
                    identity.encode_to_vec(),
                )
            }
        };
        rows.push(record::ActiveModel::from(record::Model {
            workspace_id: workspace.to_owned(),
            message_id: incoming.message_id().to_owned(),
            kind,
            user_id: incoming.user_id().to_owned(),
            name,
            occurred_at: occurred
                .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
                .unwrap_or(received_at),
            received_at,
            body,
        }));
    }
    if rows.is_empty() {
        txn.rollback().await?;
        return Ok(outcome);
    }
    // Chunked to stay under SQLite's bound-parameter limit.
    for chunk in rows.chunks(500) {
        record::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(outcome)
}
