//! Per-user state: merged traits and event counters, deduplicated on the items'
//! `message_id` and committed together with the outbox items that carry new events to
//! trigger.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use herald_outbox::{NewItem, Outbox, Staged};
use herald_proto::common::v1::{Event, Identity};
use herald_proto::trigger::v1::{HandleEventsRequest, UserEvent};
use prost::Message;
use prost_types::Struct;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use crate::downstream::TRIGGER;
use crate::error::Error;
use crate::traits;

pub mod processed {
    //! One applied event or identity update, by its message_id.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_processed")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        /// 1 = event, 2 = identity.
        pub kind: i16,
        pub user_id: String,
        pub processed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user {
    //! A known user and their merged traits.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// The merged traits, an encoded `google.protobuf.Struct`; empty for none.
        pub traits: Vec<u8>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event_count {
    //! How often a user performed one event, and when first and last.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_event_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_name: String,
        pub count: i64,
        pub first_at: i64,
        pub last_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Rows per INSERT, to stay under SQLite's bound-parameter limit.
const CHUNK: usize = 500;

const KIND_EVENT: i16 = 1;
const KIND_IDENTITY: i16 = 2;

/// What a call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: u32,
    pub duplicates: u32,
}

/// Applies `events` of `workspace`: counters, users, and one outbox item per new event
/// for trigger, in one transaction; returns once committed.
pub async fn apply_events(
    db: &DatabaseConnection,
    outbox: &Outbox,
    workspace: &str,
    events: &[Event],
) -> Result<Applied, Error> {
    let (applied, staged) = retrying(|| try_apply_events(db, outbox, workspace, events)).await?;
    outbox.publish(staged).await;
    Ok(applied)
}

/// Merges `identities` of `workspace` into their users' traits in one transaction.
pub async fn apply_identities(
    db: &DatabaseConnection,
    workspace: &str,
    identities: &[Identity],
) -> Result<Applied, Error> {
    retrying(|| try_apply_identities(db, workspace, identities)).await
}

/// Two concurrent calls with the same new message_id (or the same new user) race on a
/// primary key; the loser retries and then sees the winner's rows.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(Error::Database(e)) if tries < 3 && is_unique_violation(&e) => continue,
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

fn millis(t: Option<&prost_types::Timestamp>, default: i64) -> i64 {
    t.map(|t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos) / 1_000_000)
    })
    .unwrap_or(default)
}

/// The message ids among `ids` already applied in `workspace`.
async fn applied_ids(
    txn: &DatabaseTransaction,
    workspace: &str,
    ids: Vec<&str>,
) -> Result<HashSet<String>, Error> {
    Ok(processed::Entity::find()
        .select_only()
        .column(processed::Column::MessageId)
        .filter(processed::Column::WorkspaceId.eq(workspace))
        .filter(processed::Column::MessageId.is_in(ids))
        .into_tuple::<String>()
        .all(txn)
        .await?
        .into_iter()
        .collect())
}

/// One user's traits during a transaction.
struct UserState {
    traits: Struct,
    /// False when the user has no row yet.
    stored: bool,
    changed: bool,
}

/// Loads (and on PostgreSQL locks, in user id order so that concurrent calls cannot
/// deadlock) the users `ids` of `workspace`; unknown users start with no traits.
async fn load_users(
    txn: &DatabaseTransaction,
    workspace: &str,
    ids: &BTreeSet<&str>,
) -> Result<BTreeMap<String, UserState>, Error> {
    let mut users: BTreeMap<String, UserState> = ids
        .iter()
        .map(|id| {
            (
                id.to_string(),
                UserState {
                    traits: Struct::default(),
                    stored: false,
                    changed: false,
                },
            )
        })
        .collect();
    if ids.is_empty() {
        return Ok(users);
    }
    let rows = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(workspace))
        .filter(user::Column::UserId.is_in(ids.iter().copied()))
        .order_by_asc(user::Column::UserId)
        .lock_exclusive()
        .all(txn)
        .await?;
    for row in rows {
        let traits = traits::decode(&row.traits).map_err(|e| {
            sea_orm::DbErr::Custom(format!("undecodable traits of user {:?}: {e}", row.user_id))
        })?;
        users.insert(
            row.user_id,
            UserState {
                traits,
                stored: true,
                changed: false,
            },
        );
    }
    Ok(users)
}

/// Writes new users and users whose traits changed.
async fn save_users(
    txn: &DatabaseTransaction,
    workspace: &str,
    users: &BTreeMap<String, UserState>,
    now: i64,
) -> Result<(), Error> {
    let row = |id: &String, state: &UserState| {
        user::ActiveModel::from(user::Model {
            workspace_id: workspace.to_owned(),
            user_id: id.clone(),
            traits: traits::encode(&state.traits),
            created_at: now,
            updated_at: now,
        })
    };
    let new: Vec<_> = users
        .iter()
        .filter(|(_, s)| !s.stored)
        .map(|(id, s)| row(id, s))
        .collect();
    for chunk in new.chunks(CHUNK) {
        // A plain insert: if a concurrent call created the user meanwhile, this fails
        // and the whole call retries on top of that user's traits.
        user::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    let changed: Vec<_> = users
        .iter()
        .filter(|(_, s)| s.stored && s.changed)
        .map(|(id, s)| row(id, s))
        .collect();
    for chunk in changed.chunks(CHUNK) {
        // These rows exist and are locked by this transaction: the upsert is an update.
        user::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([user::Column::WorkspaceId, user::Column::UserId])
                    .update_columns([user::Column::Traits, user::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

async fn mark_processed(
    txn: &DatabaseTransaction,
    rows: Vec<processed::ActiveModel>,
) -> Result<(), Error> {
    for chunk in rows.chunks(CHUNK) {
        processed::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

fn processed_row(
    workspace: &str,
    message_id: &str,
    kind: i16,
    user_id: &str,
    now: i64,
) -> processed::ActiveModel {
    processed::ActiveModel::from(processed::Model {
        workspace_id: workspace.to_owned(),
        message_id: message_id.to_owned(),
        kind,
        user_id: user_id.to_owned(),
        processed_at: now,
    })
}

async fn try_apply_identities(
    db: &DatabaseConnection,
    workspace: &str,
    identities: &[Identity],
) -> Result<Applied, Error> {
    let txn = db.begin().await?;
    let mut seen = applied_ids(
        &txn,
        workspace,
        identities.iter().map(|i| i.message_id.as_str()).collect(),
    )
    .await?;
    let fresh: Vec<&Identity> = identities
        .iter()
        .filter(|i| seen.insert(i.message_id.clone()))
        .collect();
    let result = Applied {
        applied: fresh.len() as u32,
        duplicates: (identities.len() - fresh.len()) as u32,
    };
    if fresh.is_empty() {
        txn.rollback().await?;
        return Ok(result);
    }
    let now = herald_storage::now_ms();
    let ids: BTreeSet<&str> = fresh.iter().map(|i| i.user_id.as_str()).collect();
    let mut users = load_users(&txn, workspace, &ids).await?;
    let mut processed = Vec::with_capacity(fresh.len());
    // In request order: that is ingest's commit order per user.
    for identity in &fresh {
        if let (Some(update), Some(state)) = (&identity.traits, users.get_mut(&identity.user_id)) {
            state.changed |= traits::merge(&mut state.traits, update);
        }
        processed.push(processed_row(
            workspace,
            &identity.message_id,
            KIND_IDENTITY,
            &identity.user_id,
            now,
        ));
    }
    mark_processed(&txn, processed).await?;
    save_users(&txn, workspace, &users, now).await?;
    txn.commit().await?;
    Ok(result)
}

async fn try_apply_events(
    db: &DatabaseConnection,
    outbox: &Outbox,
    workspace: &str,
    events: &[Event],
) -> Result<(Applied, Staged), Error> {
    let txn = db.begin().await?;
    let mut seen = applied_ids(
        &txn,
        workspace,
        events.iter().map(|e| e.message_id.as_str()).collect(),
    )
    .await?;
    let fresh: Vec<&Event> = events
        .iter()
        .filter(|e| seen.insert(e.message_id.clone()))
        .collect();
    let result = Applied {
        applied: fresh.len() as u32,
        duplicates: (events.len() - fresh.len()) as u32,
    };
    if fresh.is_empty() {
        txn.rollback().await?;
        return Ok((result, Staged::default()));
    }
    let now = herald_storage::now_ms();
    let ids: BTreeSet<&str> = fresh.iter().map(|e| e.user_id.as_str()).collect();
    let users = load_users(&txn, workspace, &ids).await?;
    let traceparent = herald_runtime::telemetry::current_traceparent();
    // (user, event name) → (count, first, last), in key order so upserts lock rows in
    // the same order in every transaction.
    let mut counts: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
    let mut processed = Vec::with_capacity(fresh.len());
    let mut items = Vec::with_capacity(fresh.len());
    for event in &fresh {
        let at = millis(event.timestamp.as_ref(), now);
        let entry = counts
            .entry((event.user_id.as_str(), event.name.as_str()))
            .or_insert((0, at, at));
        entry.0 += 1;
        entry.1 = entry.1.min(at);
        entry.2 = entry.2.max(at);
        processed.push(processed_row(
            workspace,
            &event.message_id,
            KIND_EVENT,
            &event.user_id,
            now,
        ));
        let traits = users
            .get(&event.user_id)
            .and_then(|u| traits::present(&u.traits));
        let request = HandleEventsRequest {
            workspace_id: workspace.to_owned(),
            events: vec![UserEvent {
                event: Some((*event).clone()),
                traits,
                segment_ids: Vec::new(),
            }],
        };
        items.push(NewItem {
            destination: TRIGGER,
            key: event.user_id.clone(),
            payload: request.encode_to_vec(),
            traceparent: traceparent.clone(),
        });
    }
    mark_processed(&txn, processed).await?;
    save_users(&txn, workspace, &users, now).await?;
    let rows: Vec<_> = counts
        .into_iter()
        .map(|((user_id, name), (count, first_at, last_at))| {
            event_count::ActiveModel::from(event_count::Model {
                workspace_id: workspace.to_owned(),
                user_id: user_id.to_owned(),
                event_name: name.to_owned(),
                count,
                first_at,
                last_at,
            })
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        event_count::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    event_count::Column::WorkspaceId,
                    event_count::Column::UserId,
                    event_count::Column::EventName,
                ])
                .value(event_count::Column::Count, Expr::cust(r#""segmentation_event_counts"."count" + "excluded"."count""#))
                .value(
                    event_count::Column::FirstAt,
                    Expr::cust(
                        r#"CASE WHEN "excluded"."first_at" < "segmentation_event_counts"."first_at" THEN "excluded"."first_at" ELSE "segmentation_event_counts"."first_at" END"#,
                    ),
                )
                .value(
                    event_count::Column::LastAt,
                    Expr::cust(
                        r#"CASE WHEN "excluded"."last_at" > "segmentation_event_counts"."last_at" THEN "excluded"."last_at" ELSE "segmentation_event_counts"."last_at" END"#,
                    ),
                )
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    Ok((result, staged))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use herald_outbox::{Item, Sink, SinkError};
    use herald_storage::testing::TestDatabase;
    use prost_types::Timestamp;

    use super::*;

    struct Nowhere;

    #[async_trait::async_trait]
    impl Sink for Nowhere {
        async fn send(&self, _: &[Item]) -> Result<(), SinkError> {
            Err(SinkError::Retryable("nowhere".into()))
        }
    }

    fn event(id: &str, name: &str, seconds: i64) -> Event {
        Event {
            message_id: id.into(),
            user_id: "u1".into(),
            name: name.into(),
            timestamp: Some(Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn events_fold_into_counters_once_each() {
        let test_db = TestDatabase::new().await;
        let db = herald_storage::connect_and_migrate::<crate::migration::Migrator>(
            &test_db.url("segmentation"),
        )
        .await
        .unwrap();
        let shutdown = herald_runtime::CancellationToken::new();
        let outbox = Outbox::builder(db.clone(), crate::migration::OUTBOX_TABLE, "test")
            .destination(TRIGGER, Arc::new(Nowhere))
            .start(shutdown.clone());

        let first = [
            event("m1", "opened", 100),
            event("m2", "opened", 50),
            event("m3", "paid", 70),
        ];
        let applied = apply_events(&db, &outbox, "acme", &first).await.unwrap();
        assert_eq!(
            applied,
            Applied {
                applied: 3,
                duplicates: 0
            }
        );
        let again = [
            event("m1", "opened", 100),
            event("m4", "opened", 300),
            event("m4", "opened", 300),
        ];
        let applied = apply_events(&db, &outbox, "acme", &again).await.unwrap();
        assert_eq!(
            applied,
            Applied {
                applied: 1,
                duplicates: 2
            }
        );

        let counters: HashMap<String, event_count::Model> = event_count::Entity::find()
            .filter(event_count::Column::WorkspaceId.eq("acme"))
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.event_name.clone(), m))
            .collect();
        let opened = &counters["opened"];
        assert_eq!(
            (opened.count, opened.first_at, opened.last_at),
            (3, 50_000, 300_000)
        );
        assert_eq!(counters["paid"].count, 1);
        assert_eq!(outbox.pending(TRIGGER).await.unwrap(), 4);
        shutdown.cancel();
    }
}
