//! The workspace's attention budget as stored: its cap rules (one row each, the encoded
//! `CapRule` with its id and times) and its trigger settings (one row, the encoded
//! `TriggerSettings` as admins set them, defaults filled in on read). What may be stored
//! is decided in `herald_campaigns::budget_rules`.
//!
//! Every write moves the workspace's campaign version first in its transaction
//! (`store::bump_version`): the caches of every replica then reload the rules with the
//! campaigns, and the first write locks the version row (PostgreSQL) or takes the write
//! lock (SQLite), so the writers of one workspace run one after another. That keeps the
//! 50-rule limit exact under concurrent creates, and an update reads the rule it
//! replaces under that lock.

use herald_campaigns::budget_rules::{self, MAX_CAP_RULES};
use herald_core::FieldViolation;
use herald_core::time::proto_from_ms;
use herald_proto::trigger::v1::{CapRule, TriggerSettings};
use herald_runtime::{Clock, Error};
use prost::Message;
use sea_orm::sea_query::{Expr, Func, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use crate::store;

pub mod cap_rule {
    //! One cap rule of one workspace.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_cap_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub create_time_ms: i64,
        pub update_time_ms: i64,
        /// The protobuf-encoded `CapRule`, with its id and times.
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod settings {
    //! The trigger settings of one workspace, once it changed them.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        pub update_time_ms: i64,
        /// The protobuf-encoded `TriggerSettings`, unset fields left unset.
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn decode_rule(row: cap_rule::Model) -> Result<CapRule, Error> {
    CapRule::decode(row.body.as_slice()).map_err(|e| {
        Error::corrupt(format!(
            "cap rule {:?} of {:?}: {e}",
            row.id, row.workspace_id
        ))
    })
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("cap rule {id:?} not found"))
}

fn invalid(violations: Vec<FieldViolation>) -> Result<(), Error> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

/// Creates `rule` in `workspace` with a new id; returns it as stored. FAILED_PRECONDITION
/// when the workspace already has [`MAX_CAP_RULES`].
pub async fn create_rule(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    mut rule: CapRule,
) -> Result<CapRule, Error> {
    invalid(budget_rules::cap_rule(&rule))?;
    rule.id = herald_core::ids::new_id("cap", clock);
    let txn = db.begin().await?;
    // First, so concurrent creates count one after another.
    store::bump_version(&txn, workspace).await?;
    let (count, latest_ms): (i64, Option<i64>) = cap_rule::Entity::find()
        .select_only()
        .expr(Func::count(Expr::col(cap_rule::Column::Id)))
        .expr(Func::max(Expr::col(cap_rule::Column::CreateTimeMs)))
        .filter(cap_rule::Column::WorkspaceId.eq(workspace))
        .into_tuple()
        .one(&txn)
        .await?
        .unwrap_or((0, None));
    if count >= MAX_CAP_RULES as i64 {
        return Err(Error::failed_precondition(format!(
            "a workspace has at most {MAX_CAP_RULES} cap rules: delete one first"
        )));
    }
    // After every rule there is, so "oldest first" is the order of creation even for
    // rules created within one millisecond.
    let now_ms = latest_ms.map_or(clock.now_ms(), |latest| clock.now_ms().max(latest + 1));
    rule.create_time = Some(proto_from_ms(now_ms));
    rule.update_time = Some(proto_from_ms(now_ms));
    cap_rule::Entity::insert(cap_rule::ActiveModel::from(cap_rule::Model {
        workspace_id: workspace.to_owned(),
        id: rule.id.clone(),
        create_time_ms: now_ms,
        update_time_ms: now_ms,
        body: rule.encode_to_vec(),
    }))
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(rule)
}

/// Every cap rule of `workspace`, oldest first.
pub async fn list_rules<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
) -> Result<Vec<CapRule>, Error> {
    cap_rule::Entity::find()
        .filter(cap_rule::Column::WorkspaceId.eq(workspace))
        .order_by_asc(cap_rule::Column::CreateTimeMs)
        .order_by_asc(cap_rule::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(decode_rule)
        .collect()
}

/// Replaces the fields of the stored rule `update.id` named by `paths` with those of
/// `update`; returns the rule as stored.
pub async fn update_rule(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    update: CapRule,
    paths: &[String],
) -> Result<CapRule, Error> {
    if update.id.is_empty() {
        return Err(Error::invalid("cap_rule.id", "is required"));
    }
    let txn = db.begin().await?;
    // First, so the rule read below is the latest and stays so until the commit.
    store::bump_version(&txn, workspace).await?;
    let row = cap_rule::Entity::find_by_id((workspace.to_owned(), update.id.clone()))
        .one(&txn)
        .await?
        .ok_or_else(|| not_found(&update.id))?;
    let previous_ms = row.update_time_ms;
    let mut rule = decode_rule(row)?;
    budget_rules::apply_cap_rule_mask(&mut rule, &update, paths)?;
    invalid(budget_rules::cap_rule(&rule))?;
    // Every write is a new version, even within one millisecond.
    let now_ms = clock.now_ms().max(previous_ms + 1);
    rule.update_time = Some(proto_from_ms(now_ms));
    let result = cap_rule::Entity::update_many()
        .col_expr(cap_rule::Column::UpdateTimeMs, Expr::value(now_ms))
        .col_expr(cap_rule::Column::Body, Expr::value(rule.encode_to_vec()))
        .filter(cap_rule::Column::WorkspaceId.eq(workspace))
        .filter(cap_rule::Column::Id.eq(&rule.id))
        .filter(cap_rule::Column::UpdateTimeMs.eq(previous_ms))
        .exec(&txn)
        .await?;
    if result.rows_affected != 1 {
        // Not expected under the version lock; refuse rather than overwrite.
        return Err(Error::Aborted(format!(
            "cap rule {:?} was changed concurrently, retry",
            rule.id
        )));
    }
    txn.commit().await?;
    Ok(rule)
}

/// Deletes the rule `id` of `workspace`, or NOT_FOUND.
pub async fn delete_rule(db: &DatabaseConnection, workspace: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid("cap_rule_id", "is required"));
    }
    let txn = db.begin().await?;
    store::bump_version(&txn, workspace).await?;
    let result = cap_rule::Entity::delete_many()
        .filter(cap_rule::Column::WorkspaceId.eq(workspace))
        .filter(cap_rule::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    if result.rows_affected == 0 {
        return Err(not_found(id));
    }
    txn.commit().await?;
    Ok(())
}

/// The settings of `workspace` as admins set them, unset fields left unset.
async fn stored_settings<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
) -> Result<TriggerSettings, Error> {
    let Some(row) = settings::Entity::find_by_id(workspace.to_owned())
        .one(db)
        .await?
    else {
        return Ok(TriggerSettings::default());
    };
    TriggerSettings::decode(row.body.as_slice())
        .map_err(|e| Error::corrupt(format!("trigger settings of {workspace:?}: {e}")))
}

/// The settings of `workspace`, defaults filled in.
pub async fn get_settings<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
) -> Result<TriggerSettings, Error> {
    Ok(budget_rules::with_defaults(
        stored_settings(db, workspace).await?,
    ))
}

/// Replaces the settings of `workspace` named by `paths` with those of `update`; returns
/// the settings after the update, defaults filled in.
pub async fn update_settings(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    update: TriggerSettings,
    paths: &[String],
) -> Result<TriggerSettings, Error> {
    let txn = db.begin().await?;
    store::bump_version(&txn, workspace).await?;
    let mut settings = stored_settings(&txn, workspace).await?;
    budget_rules::apply_settings_mask(&mut settings, &update, paths)?;
    invalid(budget_rules::settings(&settings))?;
    use settings::{ActiveModel, Column, Entity, Model};
    Entity::insert(ActiveModel::from(Model {
        workspace_id: workspace.to_owned(),
        update_time_ms: clock.now_ms(),
        body: settings.encode_to_vec(),
    }))
    .on_conflict(
        OnConflict::column(Column::WorkspaceId)
            .update_columns([Column::UpdateTimeMs, Column::Body])
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(budget_rules::with_defaults(settings))
}

/// What a decision in `workspace` is bound by: its cap rules, oldest first, and its
/// settings with defaults filled in. Read it at a campaign version (`store::version`):
/// every write of either moves that version.
pub async fn workspace_rules<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
) -> Result<(Vec<CapRule>, TriggerSettings), Error> {
    Ok((
        list_rules(db, workspace).await?,
        get_settings(db, workspace).await?,
    ))
}
