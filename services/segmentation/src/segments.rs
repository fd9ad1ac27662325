//! Segment definitions and memberships as stored: one row per segment (its rule in
//! normal form, the rule's canonical text, and the progress of its backfill), one row per
//! member, and a per-workspace version that every create, rule change and delete of a
//! segment moves in the same transaction, so that a cache of compiled segments knows when
//! to reload.
//!
//! Writers that change which rules exist (create, rule change, delete) move the version
//! first in their transaction ([`bump_version`]): that write locks the workspace's version
//! row (PostgreSQL) or takes the write lock (SQLite), so such writers of one workspace run
//! one after another and each checks references against the rules the others committed.

use std::collections::HashMap;

use herald_proto::segmentation::v1::{BackfillState, Rule};
use herald_runtime::Error;
use prost::Message;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

pub mod segment {
    //! One segment of one workspace.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_segments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment_id: String,
        pub name: String,
        pub description: String,
        /// The encoded `herald.segmentation.v1.Rule`, in normal form
        /// (`herald_rules::normalize`); read it with [`rule`](super::rule).
        pub rule: Vec<u8>,
        /// The rule's canonical text (`herald_rules::format`).
        #[sea_orm(column_type = "Text")]
        pub rule_text: String,
        pub created_at: i64,
        /// Moved by every write of the definition (name, description, rule); backfill
        /// progress leaves it alone.
        pub updated_at: i64,
        /// 1 on create, +1 on every change of the rule. A backfill writes its progress
        /// only while the rule_version it started with is current.
        pub rule_version: i64,
        /// The `BackfillState` number: [`BACKFILL_PENDING`](super::BACKFILL_PENDING),
        /// [`BACKFILL_RUNNING`](super::BACKFILL_RUNNING) or
        /// [`BACKFILL_DONE`](super::BACKFILL_DONE).
        pub backfill_state: i16,
        /// Users to evaluate, counted when the backfill started.
        pub backfill_total: i64,
        /// Users evaluated so far.
        pub backfill_done: i64,
        /// The last user id evaluated; empty before the first.
        pub backfill_cursor: String,
        /// When the backfill started: the segment's create or rule-change time.
        pub backfill_started_at: i64,
        /// When the backfill finished; null until it is done.
        pub backfill_finished_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod member {
    //! One user currently in one segment.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub segment_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// When the user most recently entered the segment.
        pub entered_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod segment_version {
    //! A workspace's segment version: moved by every create, rule change and delete of
    //! one of its segments.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_segment_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `segment.backfill_state` of a backfill waiting for a replica.
pub const BACKFILL_PENDING: i16 = BackfillState::Pending as i16;
/// `segment.backfill_state` of a backfill evaluating users.
pub const BACKFILL_RUNNING: i16 = BackfillState::Running as i16;
/// `segment.backfill_state` of a finished backfill.
pub const BACKFILL_DONE: i16 = BackfillState::Done as i16;

/// The stored rule of `segment`, decoded.
pub fn rule(segment: &segment::Model) -> Result<Rule, Error> {
    Rule::decode(segment.rule.as_slice()).map_err(|e| {
        Error::corrupt(format!(
            "rule of segment {:?} of {:?}: {e}",
            segment.segment_id, segment.workspace_id
        ))
    })
}

/// The segment version of `workspace` (0 before its first segment): every create, rule
/// change and delete of one of its segments commits a greater one.
pub async fn segments_version<C: ConnectionTrait>(db: &C, workspace: &str) -> Result<i64, Error> {
    Ok(segment_version::Entity::find_by_id(workspace.to_owned())
        .select_only()
        .column(segment_version::Column::Version)
        .into_tuple::<i64>()
        .one(db)
        .await?
        .unwrap_or(0))
}

/// Every segment of `workspace`, in id order.
pub async fn active_segments<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
) -> Result<Vec<segment::Model>, Error> {
    Ok(segment::Entity::find()
        .filter(segment::Column::WorkspaceId.eq(workspace))
        .order_by_asc(segment::Column::SegmentId)
        .all(db)
        .await?)
}

/// Moves the segment version of `workspace` on (from 0, its value when no row exists).
/// As the first write of a transaction it also serialises the writers of the workspace's
/// rules (see the module documentation).
pub async fn bump_version<C: ConnectionTrait>(db: &C, workspace: &str) -> Result<(), Error> {
    use segment_version::{ActiveModel, Column, Entity, Model};
    Entity::insert(ActiveModel::from(Model {
        workspace_id: workspace.to_owned(),
        version: 1,
    }))
    .on_conflict(
        OnConflict::column(Column::WorkspaceId)
            .value(Column::Version, Expr::col((Entity, Column::Version)).add(1))
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The segment `id` of `workspace`, or NOT_FOUND.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    id: &str,
) -> Result<segment::Model, Error> {
    segment::Entity::find_by_id((workspace.to_owned(), id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("segment {id:?} not found")))
}

/// Inserts a new segment.
pub async fn insert<C: ConnectionTrait>(db: &C, segment: &segment::Model) -> Result<(), Error> {
    segment::Entity::insert(segment::ActiveModel::from(segment.clone()))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Writes the definition of `segment` (name, description, updated_at; with
/// `rule_changed` also the rule, its version and the reset backfill) if the stored row
/// is still at `expected_updated_at`; ABORTED when a concurrent write got there first.
/// Without `rule_changed` the backfill columns are left to the backfill.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    segment: &segment::Model,
    expected_updated_at: i64,
    rule_changed: bool,
) -> Result<(), Error> {
    use segment::Column;
    let mut update = segment::Entity::update_many()
        .col_expr(Column::Name, Expr::value(segment.name.clone()))
        .col_expr(
            Column::Description,
            Expr::value(segment.description.clone()),
        )
        .col_expr(Column::UpdatedAt, Expr::value(segment.updated_at));
    if rule_changed {
        update = update
            .col_expr(Column::Rule, Expr::value(segment.rule.clone()))
            .col_expr(Column::RuleText, Expr::value(segment.rule_text.clone()))
            .col_expr(Column::RuleVersion, Expr::value(segment.rule_version))
            .col_expr(Column::BackfillState, Expr::value(segment.backfill_state))
            .col_expr(Column::BackfillTotal, Expr::value(segment.backfill_total))
            .col_expr(Column::BackfillDone, Expr::value(segment.backfill_done))
            .col_expr(
                Column::BackfillCursor,
                Expr::value(segment.backfill_cursor.clone()),
            )
            .col_expr(
                Column::BackfillStartedAt,
                Expr::value(segment.backfill_started_at),
            )
            .col_expr(
                Column::BackfillFinishedAt,
                Expr::value(segment.backfill_finished_at),
            );
    }
    let result = update
        .filter(Column::WorkspaceId.eq(&segment.workspace_id))
        .filter(Column::SegmentId.eq(&segment.segment_id))
        .filter(Column::UpdatedAt.eq(expected_updated_at))
        .exec(db)
        .await?;
    if result.rows_affected == 1 {
        Ok(())
    } else {
        Err(Error::Aborted(format!(
            "segment {:?} was changed concurrently, retry",
            segment.segment_id
        )))
    }
}

/// Deletes segment `id` of `workspace` and its members; whether the segment existed.
pub async fn delete<C: ConnectionTrait>(db: &C, workspace: &str, id: &str) -> Result<bool, Error> {
    member::Entity::delete_many()
        .filter(member::Column::WorkspaceId.eq(workspace))
        .filter(member::Column::SegmentId.eq(id))
        .exec(db)
        .await?;
    let deleted = segment::Entity::delete_many()
        .filter(segment::Column::WorkspaceId.eq(workspace))
        .filter(segment::Column::SegmentId.eq(id))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// Where a listing of segments continues: after the segment created at `created_at`
/// with `segment_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub segment_id: String,
}

/// Up to `limit` segments of `workspace`, newest first, after `cursor`.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    cursor: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<segment::Model>, Error> {
    use segment::Column;
    let mut query = segment::Entity::find().filter(Column::WorkspaceId.eq(workspace));
    if let Some(cursor) = cursor {
        query = query.filter(
            Condition::any()
                .add(Column::CreatedAt.lt(cursor.created_at))
                .add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(cursor.created_at))
                        .add(Column::SegmentId.lt(cursor.segment_id.as_str())),
                ),
        );
    }
    Ok(query
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::SegmentId)
        .limit(limit)
        .all(db)
        .await?)
}

/// How many members segment `id` of `workspace` has.
pub async fn member_count<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    id: &str,
) -> Result<u64, Error> {
    Ok(member::Entity::find()
        .filter(member::Column::WorkspaceId.eq(workspace))
        .filter(member::Column::SegmentId.eq(id))
        .count(db)
        .await?)
}

/// How many members each of the segments `ids` of `workspace` has, in one grouped
/// count; segments without members are absent.
pub async fn member_counts<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    ids: &[&str],
) -> Result<HashMap<String, u64>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = member::Entity::find()
        .select_only()
        .column(member::Column::SegmentId)
        .column_as(
            Expr::col((member::Entity, member::Column::UserId)).count(),
            "members",
        )
        .filter(member::Column::WorkspaceId.eq(workspace))
        .filter(member::Column::SegmentId.is_in(ids.iter().copied()))
        .group_by(member::Column::SegmentId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, count)| (id, u64::try_from(count).unwrap_or(0)))
        .collect())
}

/// Up to `limit` members of segment `id` of `workspace`, by user id, after the user
/// `after`.
pub async fn members<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<member::Model>, Error> {
    let mut query = member::Entity::find()
        .filter(member::Column::WorkspaceId.eq(workspace))
        .filter(member::Column::SegmentId.eq(id));
    if let Some(after) = after {
        query = query.filter(member::Column::UserId.gt(after));
    }
    Ok(query
        .order_by_asc(member::Column::UserId)
        .limit(limit)
        .all(db)
        .await?)
}

/// The ids of the segments user `user_id` of `workspace` is in, sorted.
pub async fn segments_of_user<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    user_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(member::Entity::find()
        .select_only()
        .column(member::Column::SegmentId)
        .filter(member::Column::WorkspaceId.eq(workspace))
        .filter(member::Column::UserId.eq(user_id))
        .order_by_asc(member::Column::SegmentId)
        .into_tuple::<String>()
        .all(db)
        .await?)
}
