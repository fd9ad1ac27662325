//! Per-user state: merged traits and event counters, deduplicated on the items'
//! `message_id` and committed together with the outbox items that carry new events to
//! trigger.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use herald_core::time::ms_of_proto;
use herald_outbox::{NewItem, Outbox};
use herald_proto::common::v1::{Event, Identity};
use herald_proto::trigger::v1::{HandleEventsRequest, UserEvent};
use herald_runtime::{Clock, Error};
use prost::Message;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use crate::downstream::TRIGGER;
use crate::traits::{self, Version, Versions};

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
        /// When each trait was last written (`traits::Versions`); null for none yet.
        pub trait_versions: Option<Vec<u8>>,
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

/// The ledger of applied message ids, and the column retention counts from.
pub const PROCESSED: herald_storage::retention::Ledger = herald_storage::retention::Ledger {
    table: "segmentation_processed",
    time_column: "processed_at",
};

/// What a call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: u32,
    pub duplicates: u32,
}

/// The items of one call applied for the first time (in request order), their users
/// (created where new; locked with `lock`), and the call's tally.
struct FirstSeen<'a, T> {
    applied: Applied,
    items: Vec<&'a T>,
    users: BTreeMap<String, UserState>,
}

/// Records the message ids of `items` (the first of each id) as processed, and returns
/// the items seen for the first time with their users.
async fn first_seen<'a, T>(
    txn: &DatabaseTransaction,
    workspace: &str,
    items: &'a [T],
    key: impl Fn(&T) -> (&str, &str),
    kind: i16,
    now: i64,
    lock: bool,
) -> Result<FirstSeen<'a, T>, Error> {
    let mut unique = HashSet::new();
    let candidates: Vec<&T> = items.iter().filter(|i| unique.insert(key(i).0)).collect();
    let rows = candidates
        .iter()
        .map(|i| {
            let (message_id, user_id) = key(i);
            processed::ActiveModel::from(processed::Model {
                workspace_id: workspace.to_owned(),
                message_id: message_id.to_owned(),
                kind,
                user_id: user_id.to_owned(),
                processed_at: now,
            })
        })
        .collect();
    let fresh_ids = herald_storage::insert_fresh(txn, rows).await?;
    let fresh: Vec<&T> = candidates
        .into_iter()
        .filter(|i| fresh_ids.contains(&(workspace.to_owned(), key(i).0.to_owned())))
        .collect();
    let ids: BTreeSet<&str> = fresh.iter().map(|i| key(i).1).collect();
    let users = if ids.is_empty() {
        BTreeMap::new()
    } else {
        users(txn, workspace, &ids, now, lock).await?
    };
    Ok(FirstSeen {
        applied: Applied {
            applied: fresh.len() as u32,
            duplicates: (items.len() - fresh.len()) as u32,
        },
        items: fresh,
        users,
    })
}

/// An event's message id and user.
fn event_key(e: &Event) -> (&str, &str) {
    (&e.message_id, &e.user_id)
}

/// An identity's message id and user.
fn identity_key(i: &Identity) -> (&str, &str) {
    (&i.message_id, &i.user_id)
}

/// Applies `events` of `workspace`: counters, users, and one outbox item per new event
/// for trigger, in one transaction; returns once committed.
pub async fn apply_events(
    db: &DatabaseConnection,
    outbox: &Outbox,
    clock: &Clock,
    workspace: &str,
    events: &[Event],
) -> Result<Applied, Error> {
    let now = clock.now_ms();
    let txn = db.begin().await?;
    let FirstSeen {
        applied,
        items: fresh,
        users,
    } = first_seen(&txn, workspace, events, event_key, KIND_EVENT, now, false).await?;
    if fresh.is_empty() {
        txn.rollback().await?;
        return Ok(applied);
    }
    let traceparent = herald_runtime::telemetry::current_traceparent();
    // (user, event name) → (count, first, last), in key order so upserts lock rows in
    // the same order in every transaction.
    let mut counts: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
    let mut items = Vec::with_capacity(fresh.len());
    for event in &fresh {
        let at = event.timestamp.as_ref().map(ms_of_proto).unwrap_or(now);
        let entry = counts
            .entry((event.user_id.as_str(), event.name.as_str()))
            .or_insert((0, at, at));
        entry.0 += 1;
        entry.1 = entry.1.min(at);
        entry.2 = entry.2.max(at);
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
    outbox.publish(staged).await;
    Ok(applied)
}

/// Merges `identities` of `workspace` into their users' traits in one transaction,
/// last writer wins per trait by the identity's timestamp.
pub async fn apply_identities(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    identities: &[Identity],
) -> Result<Applied, Error> {
    let now = clock.now_ms();
    let txn = db.begin().await?;
    let FirstSeen {
        applied,
        items: fresh,
        mut users,
    } = first_seen(
        &txn,
        workspace,
        identities,
        identity_key,
        KIND_IDENTITY,
        now,
        true,
    )
    .await?;
    if fresh.is_empty() {
        txn.rollback().await?;
        return Ok(applied);
    }
    for identity in &fresh {
        if let (Some(update), Some(state)) = (&identity.traits, users.get_mut(&identity.user_id)) {
            let version = Version {
                at_ms: identity.timestamp.as_ref().map(ms_of_proto).unwrap_or(now),
                message_id: identity.message_id.clone(),
            };
            state.changed |=
                traits::merge(&mut state.traits, &mut state.versions, update, &version);
        }
    }
    save_changed(&txn, workspace, &users, now).await?;
    txn.commit().await?;
    Ok(applied)
}

/// One user's traits during a transaction.
struct UserState {
    traits: prost_types::Struct,
    versions: Versions,
    changed: bool,
}

/// The users `ids` of `workspace`, created (without traits) where they are new. With
/// `lock`, their rows are locked for update (on PostgreSQL; SQLite serialises writers),
/// in user id order so that concurrent calls cannot deadlock.
async fn users(
    txn: &DatabaseTransaction,
    workspace: &str,
    ids: &BTreeSet<&str>,
    now: i64,
    lock: bool,
) -> Result<BTreeMap<String, UserState>, Error> {
    let new = ids.iter().map(|id| {
        user::ActiveModel::from(user::Model {
            workspace_id: workspace.to_owned(),
            user_id: (*id).to_owned(),
            traits: Vec::new(),
            created_at: now,
            updated_at: now,
            trait_versions: None,
        })
    });
    herald_storage::insert_fresh(txn, new.collect()).await?;
    let mut query = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(workspace))
        .filter(user::Column::UserId.is_in(ids.iter().copied()))
        .order_by_asc(user::Column::UserId);
    if lock {
        query = query.lock_exclusive();
    }
    let mut users = BTreeMap::new();
    for row in query.all(txn).await? {
        let corrupt = |e: prost::DecodeError| {
            Error::corrupt(format!("traits of user {:?}: {e}", row.user_id))
        };
        let state = UserState {
            traits: traits::decode(&row.traits).map_err(corrupt)?,
            versions: traits::decode_versions(row.trait_versions.as_deref()).map_err(corrupt)?,
            changed: false,
        };
        users.insert(row.user_id, state);
    }
    Ok(users)
}

/// Writes the users whose traits changed (their rows exist and are locked).
async fn save_changed(
    txn: &DatabaseTransaction,
    workspace: &str,
    users: &BTreeMap<String, UserState>,
    now: i64,
) -> Result<(), Error> {
    for (id, state) in users.iter().filter(|(_, s)| s.changed) {
        user::Entity::update_many()
            .col_expr(
                user::Column::Traits,
                Expr::value(traits::encode(&state.traits)),
            )
            .col_expr(
                user::Column::TraitVersions,
                Expr::value(Some(state.versions.encode_to_vec())),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::WorkspaceId.eq(workspace))
            .filter(user::Column::UserId.eq(id.as_str()))
            .exec(txn)
            .await?;
    }
    Ok(())
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
        let clock = Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
        let outbox = Outbox::builder(
            db.clone(),
            crate::migration::OUTBOX_TABLE,
            "test",
            clock.clone(),
        )
        .destination(TRIGGER, Arc::new(Nowhere))
        .start(shutdown.clone());

        let calls = [
            (
                vec![
                    event("m1", "opened", 100),
                    event("m2", "opened", 50),
                    event("m3", "paid", 70),
                ],
                (3, 0),
            ),
            (
                vec![
                    event("m1", "opened", 100),
                    event("m4", "opened", 300),
                    event("m4", "opened", 300),
                ],
                (1, 2),
            ),
        ];
        for (events, (applied, duplicates)) in calls {
            let result = apply_events(&db, &outbox, &clock, "acme", &events)
                .await
                .unwrap();
            assert_eq!(
                result,
                Applied {
                    applied,
                    duplicates
                }
            );
        }

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
