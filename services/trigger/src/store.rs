//! Campaigns, stored as their encoded protobuf plus the columns that find them (status
//! and trigger event name, so that matching never scans every campaign), and the ids of
//! events and segment transitions already handled.

use std::collections::HashSet;

use herald_campaigns::validate::{references_segment, trigger_event_name};
use herald_core::time::ms_of_proto;
use herald_proto::trigger::v1::{Campaign, CampaignStatus};
use herald_runtime::Error;
use herald_timers::Timers;
use prost::Message;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

pub mod campaign {
    //! One campaign of one workspace.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The `CampaignStatus` number.
        pub status: i16,
        /// The event name of an event trigger; empty for other kinds.
        pub trigger_event_name: String,
        pub create_time_ms: i64,
        pub update_time_ms: i64,
        /// The protobuf-encoded `Campaign`, with its id, status and times.
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod handled_event {
    //! The message_id of an event trigger has already handled.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_handled_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub handled_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod handled_transition {
    //! The id of a segment transition trigger has already handled.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_handled_transitions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub transition_id: String,
        pub handled_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod campaign_version {
    //! A workspace's campaign version: moved by every write of one of its campaigns.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_campaign_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The ledger of handled event message ids, and the column retention counts from.
pub const HANDLED: herald_storage::retention::Ledger = herald_storage::retention::Ledger {
    table: "trigger_handled_events",
    time_column: "handled_at",
};

/// The ledger of handled segment transition ids, and the column retention counts from.
pub const HANDLED_TRANSITIONS: herald_storage::retention::Ledger =
    herald_storage::retention::Ledger {
        table: "trigger_handled_transitions",
        time_column: "handled_at",
    };

/// A stored campaign, decoded.
#[derive(Debug, Clone)]
pub struct Stored {
    pub campaign: Campaign,
    pub update_time_ms: i64,
}

fn decode(row: campaign::Model) -> Result<Stored, Error> {
    let campaign = Campaign::decode(row.body.as_slice()).map_err(|e| {
        Error::corrupt(format!(
            "campaign {:?} of {:?}: {e}",
            row.id, row.workspace_id
        ))
    })?;
    Ok(Stored {
        campaign,
        update_time_ms: row.update_time_ms,
    })
}

fn row(workspace: &str, campaign: &Campaign) -> campaign::Model {
    campaign::Model {
        workspace_id: workspace.to_owned(),
        id: campaign.id.clone(),
        status: campaign.status as i16,
        trigger_event_name: trigger_event_name(campaign).to_owned(),
        create_time_ms: campaign
            .create_time
            .as_ref()
            .map(ms_of_proto)
            .unwrap_or_default(),
        update_time_ms: campaign
            .update_time
            .as_ref()
            .map(ms_of_proto)
            .unwrap_or_default(),
        body: campaign.encode_to_vec(),
    }
}

/// A timer to schedule with a campaign write, in its transaction: the enrolment of a
/// segment's existing members when the campaign becomes ACTIVE.
pub struct WithTimer<'a> {
    pub timers: &'a Timers,
    pub key: String,
    pub due_ms: i64,
    pub payload: Vec<u8>,
}

async fn schedule(txn: &DatabaseTransaction, timer: Option<&WithTimer<'_>>) -> Result<(), Error> {
    if let Some(t) = timer {
        t.timers
            .schedule(txn, &t.key, t.due_ms, t.payload.clone())
            .await?;
    }
    Ok(())
}

/// Inserts a new campaign (its id and times already set), moving the workspace's
/// campaign version and scheduling `timer` in the same transaction.
pub async fn insert(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &Campaign,
    timer: Option<&WithTimer<'_>>,
) -> Result<(), Error> {
    let txn = db.begin().await?;
    campaign::Entity::insert(campaign::ActiveModel::from(row(workspace, campaign)))
        .exec_without_returning(&txn)
        .await?;
    bump_version(&txn, workspace).await?;
    schedule(&txn, timer).await?;
    txn.commit().await?;
    if let Some(t) = timer {
        t.timers.notify();
    }
    Ok(())
}

/// Moves the campaign version of `workspace` on (from 0, its value when no row exists).
pub(crate) async fn bump_version<C: ConnectionTrait>(db: &C, workspace: &str) -> Result<(), Error> {
    use campaign_version::{ActiveModel, Column, Entity, Model};
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

/// The campaign version of `workspace`: any write of one of its campaigns commits a
/// different one.
pub async fn version<C: ConnectionTrait>(db: &C, workspace: &str) -> Result<i64, Error> {
    Ok(campaign_version::Entity::find_by_id(workspace.to_owned())
        .select_only()
        .column(campaign_version::Column::Version)
        .into_tuple::<i64>()
        .one(db)
        .await?
        .unwrap_or(0))
}

/// The campaign `id` of `workspace`, or NOT_FOUND.
pub async fn get<C: ConnectionTrait>(db: &C, workspace: &str, id: &str) -> Result<Stored, Error> {
    let row = campaign::Entity::find_by_id((workspace.to_owned(), id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("campaign {id:?} not found")))?;
    decode(row)
}

/// Replaces the stored campaign if it is still at version `expected_update_ms` (and
/// schedules `timer` with it); ABORTED when a concurrent write got there first.
pub async fn replace(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &Campaign,
    expected_update_ms: i64,
    timer: Option<&WithTimer<'_>>,
) -> Result<(), Error> {
    let new = row(workspace, campaign);
    let txn = db.begin().await?;
    let result = campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::value(new.status))
        .col_expr(
            campaign::Column::TriggerEventName,
            Expr::value(new.trigger_event_name),
        )
        .col_expr(
            campaign::Column::UpdateTimeMs,
            Expr::value(new.update_time_ms),
        )
        .col_expr(campaign::Column::Body, Expr::value(new.body))
        .filter(campaign::Column::WorkspaceId.eq(workspace))
        .filter(campaign::Column::Id.eq(&campaign.id))
        .filter(campaign::Column::UpdateTimeMs.eq(expected_update_ms))
        .exec(&txn)
        .await?;
    if result.rows_affected == 1 {
        bump_version(&txn, workspace).await?;
        schedule(&txn, timer).await?;
        txn.commit().await?;
        if let Some(t) = timer {
            t.timers.notify();
        }
        Ok(())
    } else {
        Err(Error::Aborted(format!(
            "campaign {:?} was changed concurrently, retry",
            campaign.id
        )))
    }
}

/// Where a listing continues: after the campaign created at `create_ms` with `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub create_ms: i64,
    pub id: String,
}

/// Up to `limit` campaigns of `workspace`, newest first, after `cursor`, optionally of
/// one status.
pub async fn list(
    db: &DatabaseConnection,
    workspace: &str,
    status: Option<CampaignStatus>,
    cursor: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<Campaign>, Error> {
    let mut query = campaign::Entity::find().filter(campaign::Column::WorkspaceId.eq(workspace));
    if let Some(status) = status {
        query = query.filter(campaign::Column::Status.eq(status as i16));
    }
    if let Some(cursor) = cursor {
        query = query.filter(
            Condition::any()
                .add(campaign::Column::CreateTimeMs.lt(cursor.create_ms))
                .add(
                    Condition::all()
                        .add(campaign::Column::CreateTimeMs.eq(cursor.create_ms))
                        .add(campaign::Column::Id.lt(cursor.id.as_str())),
                ),
        );
    }
    let rows = query
        .order_by_desc(campaign::Column::CreateTimeMs)
        .order_by_desc(campaign::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    rows.into_iter()
        .map(|r| decode(r).map(|s| s.campaign))
        .collect()
}

/// The ACTIVE campaigns of `workspace`.
pub async fn active_campaigns<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
) -> Result<Vec<Stored>, Error> {
    let rows = campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace))
        .filter(campaign::Column::Status.eq(CampaignStatus::Active as i16))
        .all(db)
        .await?;
    rows.into_iter().map(decode).collect()
}

/// The ids of `workspace`'s campaigns, in any status, that reference `segment_id` (in
/// their audience or as their segment-entry trigger), sorted. One query over the
/// workspace's campaigns (by the primary key's workspace prefix) and a decode of each:
/// the segment ids live inside the encoded campaign.
pub async fn segment_references<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    segment_id: &str,
) -> Result<Vec<String>, Error> {
    let rows: Vec<(String, Vec<u8>)> = campaign::Entity::find()
        .select_only()
        .column(campaign::Column::Id)
        .column(campaign::Column::Body)
        .filter(campaign::Column::WorkspaceId.eq(workspace))
        .order_by_asc(campaign::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut ids = Vec::new();
    for (id, body) in rows {
        let campaign = Campaign::decode(body.as_slice())
            .map_err(|e| Error::corrupt(format!("campaign {id:?} of {workspace:?}: {e}")))?;
        if references_segment(&campaign, segment_id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Records `message_ids` of `workspace` (distinct) as handled at `now_ms`; returns those
/// that were not handled before.
pub async fn mark_handled<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    message_ids: &[&str],
    now_ms: i64,
) -> Result<HashSet<String>, Error> {
    let rows = message_ids
        .iter()
        .map(|id| {
            handled_event::ActiveModel::from(handled_event::Model {
                workspace_id: workspace.to_owned(),
                message_id: (*id).to_owned(),
                handled_at: now_ms,
            })
        })
        .collect();
    Ok(herald_storage::insert_fresh(db, rows)
        .await?
        .into_iter()
        .map(|(_, message_id)| message_id)
        .collect())
}

/// Records `transition_ids` of `workspace` (distinct) as handled at `now_ms`; returns
/// those that were not handled before.
pub async fn mark_transitions_handled<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    transition_ids: &[&str],
    now_ms: i64,
) -> Result<HashSet<String>, Error> {
    let rows = transition_ids
        .iter()
        .map(|id| {
            handled_transition::ActiveModel::from(handled_transition::Model {
                workspace_id: workspace.to_owned(),
                transition_id: (*id).to_owned(),
                handled_at: now_ms,
            })
        })
        .collect();
    Ok(herald_storage::insert_fresh(db, rows)
        .await?
        .into_iter()
        .map(|(_, transition_id)| transition_id)
        .collect())
}
