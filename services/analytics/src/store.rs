//! Interactions and events, each recorded once per id, counted into the maintained
//! aggregates as they arrive (see `aggregates.rs`), conversions attributed then; and the
//! aggregates read back for statistics and time series.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use prost::Message;

use herald_outbox::{NewItem, Outbox, Staged};
use herald_proto::analytics::v1::{
    Interaction, InteractionKind, Metric, RecordInteractionsRequest,
};
use herald_proto::common::v1::Event;
use herald_runtime::Error;
use herald_storage::sql;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait, Value,
};

use sha2::{Digest, Sha256};

use crate::aggregates::{self, CONTROL, Cell, Deltas, LIFETIME, count, exposure, first, goal};
use crate::downstream;
use crate::validate::Valid;

pub mod interaction {
    //! One interaction with a campaign message or assignment.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "analytics_interactions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub campaign_id: String,
        /// Empty for control.
        pub variant_id: String,
        pub user_id: String,
        /// The `InteractionKind` number.
        pub kind: i16,
        pub message_id: String,
        /// The message this counts for: message id, else delivery key, else id.
        pub message_key: String,
        pub action_id: String,
        pub delivery_key: String,
        pub goal_event_name: String,
        pub attribution_window_ms: i64,
        pub occurred_at: i64,
        pub recorded_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event {
    //! One user event, kept for conversion attribution.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "analytics_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub user_id: String,
        pub name: String,
        pub occurred_at: i64,
        pub recorded_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Users per IN list, to stay under SQLite's bound-parameter limit.
const CHUNK: usize = 500;

/// What a record call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub recorded: u32,
    pub duplicates: u32,
    /// Conversions the new items made.
    pub conversions: u32,
}

/// Keeps the first row per key (rows come in the order to prefer) and sorts them by key,
/// so two writers insert in the same order.
fn first_per_key<K: Ord + Clone, A>(rows: Vec<(K, A)>) -> Vec<(K, A)> {
    let mut seen = BTreeSet::new();
    let mut unique: Vec<(K, A)> = rows
        .into_iter()
        .filter(|(key, _)| seen.insert(key.clone()))
        .collect();
    unique.sort_by(|a, b| a.0.cmp(&b.0));
    unique
}

/// Serializes, on PostgreSQL, the transactions that touch these users' exposures and
/// goal events, so an exposure and its goal event recorded at the same moment by two
/// writers still meet (each would otherwise miss the other's uncommitted row). SQLite
/// has one writer already.
async fn lock_users(
    txn: &DatabaseTransaction,
    workspace: &str,
    users: &BTreeSet<&str>,
) -> Result<(), Error> {
    if txn.get_database_backend() != DbBackend::Postgres || users.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = users.iter().map(|u| format!("{workspace}\n{u}")).collect();
    for chunk in keys.chunks(CHUNK) {
        let rows = (1..=chunk.len())
            .map(|i| format!("(${i})"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(u, 0) AS k \
             FROM (VALUES {rows}) AS t(u) ORDER BY k) AS s"
        );
        let values = chunk.iter().map(|k| Value::from(k.clone())).collect();
        txn.query_all_raw(sql::statement(DbBackend::Postgres, sql, values))
            .await?;
    }
    Ok(())
}

/// The message an interaction counts for: message id, else delivery key, else its id.
fn message_key(i: &herald_proto::analytics::v1::Interaction) -> String {
    [&i.message_id, &i.delivery_idempotency_key, &i.id]
        .into_iter()
        .find(|k| !k.is_empty())
        .cloned()
        .unwrap_or_default()
}

/// The metric an interaction kind counts in, besides assignment and exposure.
fn metric_of(kind: InteractionKind) -> Option<Metric> {
    match kind {
        InteractionKind::Sent => Some(Metric::Sent),
        InteractionKind::Delivered => Some(Metric::Delivered),
        InteractionKind::Impression => Some(Metric::Impressions),
        InteractionKind::Click => Some(Metric::Clicks),
        InteractionKind::Dismissal => Some(Metric::Dismissals),
        _ => None,
    }
}

fn cell(campaign_id: &str, arm: &str, goal_version: i32, metric: Metric) -> Cell {
    Cell {
        campaign_id: campaign_id.to_owned(),
        arm: arm.to_owned(),
        goal_version,
        metric,
    }
}

/// A goal as an exposure carries it: campaign, event name (empty for none), window and
/// the encoded experiment.
type GoalKey = (String, String, i64, Vec<u8>);

/// Whether `v` is an exposure: a variant's EXPOSED, control's ASSIGNED_CONTROL.
fn is_exposure(v: &Valid) -> bool {
    matches!(
        v.kind,
        InteractionKind::Exposed | InteractionKind::AssignedControl
    )
}

/// The experiment an exposure carries, encoded, with the default tuning written out so
/// an unset and an explicit 5000 are one version; empty without one.
fn experiment_bytes(v: &Valid) -> Vec<u8> {
    v.interaction
        .experiment
        .as_ref()
        .map_or_else(Vec::new, |e| {
            let mut e = e.clone();
            if e.sequential_tuning == 0 {
                e.sequential_tuning = herald_stats::DEFAULT_TUNING as u32;
            }
            e.encode_to_vec()
        })
}

fn goal_key(v: &Valid) -> GoalKey {
    let i = &v.interaction;
    (
        i.campaign_id.clone(),
        i.goal_event_name.clone(),
        goal_window(v),
        experiment_bytes(v),
    )
}

/// The goal versions of `wanted` (with their first exposure times), numbering the new
/// ones after their campaign's latest.
async fn goal_versions(
    txn: &DatabaseTransaction,
    workspace: &str,
    wanted: &BTreeMap<GoalKey, i64>,
) -> Result<HashMap<GoalKey, i32>, Error> {
    let campaigns: BTreeSet<&str> = wanted.keys().map(|k| k.0.as_str()).collect();
    let mut versions = HashMap::new();
    let mut latest: HashMap<String, i32> = HashMap::new();
    for chunk in campaigns.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
        let rows = goal::Entity::find()
            .filter(goal::Column::WorkspaceId.eq(workspace))
            .filter(goal::Column::CampaignId.is_in(chunk.iter().copied()))
            .all(txn)
            .await?;
        for row in rows {
            let top = latest.entry(row.campaign_id.clone()).or_default();
            *top = (*top).max(row.version);
            let key = (
                row.campaign_id,
                row.event_name,
                row.window_ms,
                row.experiment,
            );
            versions.insert(key, row.version);
        }
    }
    // New versions are numbered in the order of their first exposures.
    let mut unseen: Vec<(&GoalKey, i64)> = wanted
        .iter()
        .filter(|(key, _)| !versions.contains_key(*key))
        .map(|(key, at)| (key, *at))
        .collect();
    unseen.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    let mut new = Vec::new();
    for (key, first_at) in unseen {
        let top = latest.entry(key.0.clone()).or_default();
        *top += 1;
        new.push(goal::ActiveModel::from(goal::Model {
            workspace_id: workspace.to_owned(),
            campaign_id: key.0.clone(),
            version: *top,
            event_name: key.1.clone(),
            window_ms: key.2,
            experiment: key.3.clone(),
            first_at,
        }));
        versions.insert(key.clone(), *top);
    }
    if !new.is_empty() {
        // A writer numbering the same campaign's version at once fails on the key, and
        // the call is retried by its sender.
        goal::Entity::insert_many(new)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(versions)
}

/// Records `interactions` of `workspace`, each once per id, and counts the new ones.
pub async fn record_interactions(
    db: &DatabaseConnection,
    outbox: &Outbox,
    now: i64,
    workspace: &str,
    mut interactions: Vec<Valid>,
) -> Result<Recorded, Error> {
    let total = interactions.len();
    // Earliest first, so a batch's first time is its earliest.
    interactions.sort_by_key(|v| v.occurred_at);
    let rows = interactions
        .iter()
        .map(|v| {
            let i = &v.interaction;
            let model = interaction::Model {
                workspace_id: workspace.to_owned(),
                id: i.id.clone(),
                campaign_id: i.campaign_id.clone(),
                variant_id: i.variant_id.clone(),
                user_id: i.user_id.clone(),
                kind: v.kind as i16,
                message_id: i.message_id.clone(),
                message_key: message_key(i),
                action_id: i.action_id.clone(),
                delivery_key: i.delivery_idempotency_key.clone(),
                goal_event_name: i.goal_event_name.clone(),
                attribution_window_ms: v.window_ms,
                occurred_at: v.occurred_at,
                recorded_at: now,
            };
            (i.id.clone(), interaction::ActiveModel::from(model))
        })
        .collect();
    let txn = db.begin().await?;
    let rows: Vec<interaction::ActiveModel> =
        first_per_key(rows).into_iter().map(|(_, r)| r).collect();
    let fresh = herald_storage::insert_fresh(&txn, rows).await?;
    // The stored copy of an id repeated in the batch is its first (earliest).
    let mut taken = HashSet::new();
    let fresh: Vec<&Valid> = interactions
        .iter()
        .filter(|v| fresh.contains(&(workspace.to_owned(), v.interaction.id.clone())))
        .filter(|v| taken.insert(v.interaction.id.as_str()))
        .collect();
    let exposures: Vec<&Valid> = fresh.iter().copied().filter(|v| is_exposure(v)).collect();
    lock_users(
        &txn,
        workspace,
        &exposures
            .iter()
            .map(|v| v.interaction.user_id.as_str())
            .collect(),
    )
    .await?;

    // Firsts: per message and per user of each count, and per user of assignment. Within
    // the batch, the earliest interaction of a key is the one that may be first.
    let mut candidates = Vec::new();
    for (at, v) in fresh.iter().enumerate() {
        let i = &v.interaction;
        let mut add = |metric: Metric, subject: String| {
            let key = (i.campaign_id.clone(), metric as i16, subject);
            let row = first::Model {
                workspace_id: workspace.to_owned(),
                campaign_id: key.0.clone(),
                metric: key.1,
                subject: key.2.clone(),
                arm: i.variant_id.clone(),
                at: v.occurred_at,
            };
            candidates.push((key, (at, first::ActiveModel::from(row))));
        };
        if let Some(metric) = metric_of(v.kind) {
            add(metric, format!("m:{}", message_key(i)));
            add(metric, format!("u:{}", i.user_id));
        }
        if is_exposure(v) {
            add(Metric::Assigned, format!("u:{}", i.user_id));
        }
    }
    let mut winners: HashMap<(String, i16, String), usize> = HashMap::new();
    let mut rows = Vec::new();
    for (key, (at, row)) in first_per_key(candidates) {
        winners.insert(key, at);
        rows.push(row);
    }
    let firsts = herald_storage::insert_fresh(&txn, rows).await?;
    // Whether the `at`-th fresh interaction is the first of `metric` for `subject`.
    let is_first = |at: usize, metric: Metric, subject: String| {
        let campaign = fresh[at].interaction.campaign_id.clone();
        let key = (campaign, metric as i16, subject);
        winners.get(&key) == Some(&at)
            && firsts.contains(&(workspace.to_owned(), key.0, key.1, key.2))
    };

    let mut deltas = Deltas::default();
    let mut goal_first_at: BTreeMap<GoalKey, i64> = BTreeMap::new();
    for v in &exposures {
        goal_first_at.entry(goal_key(v)).or_insert(v.occurred_at);
    }
    let versions = goal_versions(&txn, workspace, &goal_first_at).await?;

    let mut new_exposures = Vec::new();
    for (at, v) in fresh.iter().enumerate() {
        let i = &v.interaction;
        let arm = i.variant_id.as_str();
        if let Some(metric) = metric_of(v.kind) {
            let message = is_first(at, metric, format!("m:{}", message_key(i)));
            let user = is_first(at, metric, format!("u:{}", i.user_id));
            deltas.add(
                cell(&i.campaign_id, arm, 0, metric),
                v.occurred_at,
                i64::from(message),
                i64::from(user),
            );
        }
        if !is_exposure(v) {
            continue;
        }
        let assigned = i64::from(is_first(at, Metric::Assigned, format!("u:{}", i.user_id)));
        deltas.add(
            cell(&i.campaign_id, arm, 0, Metric::Assigned),
            v.occurred_at,
            assigned,
            assigned,
        );
        let window = goal_window(v);
        let version = versions[&goal_key(v)];
        deltas.add(
            cell(&i.campaign_id, arm, version, Metric::Exposed),
            v.occurred_at,
            1,
            0,
        );
        new_exposures.push((
            (i.user_id.clone(), i.campaign_id.clone(), version),
            exposure::Model {
                workspace_id: workspace.to_owned(),
                user_id: i.user_id.clone(),
                campaign_id: i.campaign_id.clone(),
                goal_version: version,
                goal_event_name: i.goal_event_name.clone(),
                window_ms: window,
                arm: arm.to_owned(),
                first_at: v.occurred_at,
                converted_at: 0,
            },
        ));
    }
    let new_exposures: Vec<exposure::Model> = first_per_key(new_exposures)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let rows = new_exposures
        .iter()
        .cloned()
        .map(exposure::ActiveModel::from)
        .collect();
    let inserted = herald_storage::insert_fresh(&txn, rows).await?;
    // A user's first exposure under a goal version is the one recorded first.
    let exposed: Vec<exposure::Model> = new_exposures
        .into_iter()
        .filter(|e| {
            inserted.contains(&(
                e.workspace_id.clone(),
                e.user_id.clone(),
                e.campaign_id.clone(),
                e.goal_version,
            ))
        })
        .collect();
    for e in &exposed {
        deltas.add(
            cell(&e.campaign_id, &e.arm, e.goal_version, Metric::Exposed),
            e.first_at,
            0,
            1,
        );
    }
    // Goal events recorded before their exposure convert now.
    let goals: Vec<&exposure::Model> = exposed
        .iter()
        .filter(|e| !e.goal_event_name.is_empty())
        .collect();
    let events = goal_events(&txn, workspace, &goals).await?;
    let conversions = convert(&txn, &mut deltas, &goals, &events).await?;
    finish(txn, outbox, workspace, deltas, &conversions).await?;
    Ok(Recorded {
        recorded: fresh.len() as u32,
        duplicates: (total - fresh.len()) as u32,
        conversions: 0,
    })
}

/// The attribution window of an exposure's goal; 0 without a goal.
fn goal_window(v: &Valid) -> i64 {
    if v.interaction.goal_event_name.is_empty() {
        0
    } else {
        v.window_ms
    }
}

/// The earliest of `times` (sorted) in `(first_at, first_at + window]`, if any.
fn first_conversion(e: &exposure::Model, times: Option<&Vec<i64>>) -> Option<i64> {
    let end = e.first_at.saturating_add(e.window_ms);
    times?
        .iter()
        .copied()
        .find(|t| *t > e.first_at && *t <= end)
}

/// The goal events (times, sorted) of the exposures' users and goals.
async fn goal_events(
    txn: &DatabaseTransaction,
    workspace: &str,
    exposures: &[&exposure::Model],
) -> Result<HashMap<(String, String), Vec<i64>>, Error> {
    let mut times: HashMap<(String, String), Vec<i64>> = HashMap::new();
    if exposures.is_empty() {
        return Ok(times);
    }
    let users: BTreeSet<&str> = exposures.iter().map(|e| e.user_id.as_str()).collect();
    let names: BTreeSet<&str> = exposures
        .iter()
        .map(|e| e.goal_event_name.as_str())
        .collect();
    let users: Vec<&str> = users.into_iter().collect();
    for chunk in users.chunks(CHUNK) {
        let rows: Vec<(String, String, i64)> = event::Entity::find()
            .select_only()
            .column(event::Column::UserId)
            .column(event::Column::Name)
            .column(event::Column::OccurredAt)
            .filter(event::Column::WorkspaceId.eq(workspace))
            .filter(event::Column::UserId.is_in(chunk.iter().copied()))
            .filter(event::Column::Name.is_in(names.iter().copied()))
            .order_by_asc(event::Column::OccurredAt)
            .into_tuple()
            .all(txn)
            .await?;
        for (user, name, at) in rows {
            times.entry((user, name)).or_default().push(at);
        }
    }
    Ok(times)
}

/// A conversion just counted: whose, of which campaign's arm and goal version, when.
pub struct Conversion {
    user_id: String,
    campaign_id: String,
    arm: String,
    goal_version: i32,
    at: i64,
}

/// Marks the exposures that one of their goal's event `times` (per user and event name,
/// sorted) converts as converted, unless already converted, and counts those it marked;
/// returns them.
async fn convert(
    txn: &DatabaseTransaction,
    deltas: &mut Deltas,
    exposures: &[&exposure::Model],
    times: &HashMap<(String, String), Vec<i64>>,
) -> Result<Vec<Conversion>, Error> {
    let mut converted = Vec::new();
    for e in exposures {
        let key = (e.user_id.clone(), e.goal_event_name.clone());
        let Some(at) = first_conversion(e, times.get(&key)) else {
            continue;
        };
        let marked = exposure::Entity::update_many()
            .col_expr(exposure::Column::ConvertedAt, Expr::value(at))
            .filter(exposure::Column::WorkspaceId.eq(e.workspace_id.as_str()))
            .filter(exposure::Column::UserId.eq(e.user_id.as_str()))
            .filter(exposure::Column::CampaignId.eq(e.campaign_id.as_str()))
            .filter(exposure::Column::GoalVersion.eq(e.goal_version))
            .filter(exposure::Column::ConvertedAt.eq(0))
            .exec(txn)
            .await?;
        if marked.rows_affected == 1 {
            deltas.add(
                cell(&e.campaign_id, &e.arm, e.goal_version, Metric::Conversions),
                at,
                1,
                1,
            );
            converted.push(Conversion {
                user_id: e.user_id.clone(),
                campaign_id: e.campaign_id.clone(),
                arm: e.arm.clone(),
                goal_version: e.goal_version,
                at,
            });
        }
    }
    Ok(converted)
}

/// The id of a conversion's CONVERTED interaction: one per user, campaign and goal
/// version, at most 128 characters (a digest when the parts are longer).
fn conversion_id(c: &Conversion) -> String {
    let id = format!(
        "conversion:{}:{}:{}",
        c.campaign_id, c.goal_version, c.user_id
    );
    if id.len() <= 128 {
        return id;
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("conversion:{hex}")
}

/// Writes the counts and stages the conversions for segmentation in `txn`, commits it and
/// hands the staged items to the relay.
async fn finish(
    txn: DatabaseTransaction,
    outbox: &Outbox,
    workspace: &str,
    deltas: Deltas,
    conversions: &[Conversion],
) -> Result<(), Error> {
    deltas.write(&txn, workspace).await?;
    let staged = stage(&txn, outbox, workspace, conversions).await?;
    txn.commit().await?;
    if let Some(staged) = staged {
        outbox.publish(staged).await;
    }
    Ok(())
}

/// Stages the conversions' CONVERTED interactions for segmentation in `txn`.
async fn stage(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    workspace: &str,
    conversions: &[Conversion],
) -> Result<Option<Staged>, Error> {
    if conversions.is_empty() {
        return Ok(None);
    }
    let traceparent = herald_runtime::telemetry::current_traceparent();
    let items = conversions
        .iter()
        .map(|c| NewItem {
            destination: downstream::SEGMENTATION,
            // Per-user order across the hop.
            key: c.user_id.clone(),
            payload: RecordInteractionsRequest {
                workspace_id: workspace.to_owned(),
                interactions: vec![Interaction {
                    id: conversion_id(c),
                    campaign_id: c.campaign_id.clone(),
                    variant_id: c.arm.clone(),
                    user_id: c.user_id.clone(),
                    kind: InteractionKind::Converted as i32,
                    time: Some(herald_core::time::proto_from_ms(c.at)),
                    ..Default::default()
                }],
            }
            .encode_to_vec(),
            traceparent: traceparent.clone(),
        })
        .collect();
    Ok(Some(outbox.add(txn, items).await?))
}

/// Records `events` of `workspace` (with their times in ms), each once per message_id,
/// and attributes the conversions the new ones make.
pub async fn record_events(
    db: &DatabaseConnection,
    outbox: &Outbox,
    now: i64,
    workspace: &str,
    events: &[Event],
    times: &[i64],
) -> Result<Recorded, Error> {
    let rows = events
        .iter()
        .zip(times)
        .map(|(e, at)| {
            let model = event::Model {
                workspace_id: workspace.to_owned(),
                message_id: e.message_id.clone(),
                user_id: e.user_id.clone(),
                name: e.name.clone(),
                occurred_at: *at,
                recorded_at: now,
            };
            (e.message_id.clone(), event::ActiveModel::from(model))
        })
        .collect();
    let txn = db.begin().await?;
    let rows: Vec<event::ActiveModel> = first_per_key(rows).into_iter().map(|(_, r)| r).collect();
    let fresh = herald_storage::insert_fresh(&txn, rows).await?;
    let fresh: Vec<(&Event, i64)> = events
        .iter()
        .zip(times.iter().copied())
        .filter(|(e, _)| fresh.contains(&(workspace.to_owned(), e.message_id.clone())))
        .collect();
    // The stored copy of a message id repeated in the batch is its first.
    let mut taken = HashSet::new();
    let fresh: Vec<(&Event, i64)> = fresh
        .into_iter()
        .filter(|(e, _)| taken.insert(e.message_id.as_str()))
        .collect();
    let users: BTreeSet<&str> = fresh.iter().map(|(e, _)| e.user_id.as_str()).collect();
    lock_users(&txn, workspace, &users).await?;
    let names: BTreeSet<&str> = fresh.iter().map(|(e, _)| e.name.as_str()).collect();
    let mut open = Vec::new();
    for chunk in users.iter().copied().collect::<Vec<_>>().chunks(CHUNK) {
        open.extend(
            exposure::Entity::find()
                .filter(exposure::Column::WorkspaceId.eq(workspace))
                .filter(exposure::Column::UserId.is_in(chunk.iter().copied()))
                .filter(exposure::Column::ConvertedAt.eq(0))
                .filter(exposure::Column::GoalEventName.is_in(names.iter().copied()))
                .order_by_asc(exposure::Column::UserId)
                .order_by_asc(exposure::Column::CampaignId)
                .order_by_asc(exposure::Column::GoalVersion)
                .all(&txn)
                .await?,
        );
    }
    let mut times: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for (e, at) in &fresh {
        times
            .entry((e.user_id.clone(), e.name.clone()))
            .or_default()
            .push(*at);
    }
    for t in times.values_mut() {
        t.sort_unstable();
    }
    let mut deltas = Deltas::default();
    let open: Vec<&exposure::Model> = open.iter().collect();
    let conversions = convert(&txn, &mut deltas, &open, &times).await?;
    finish(txn, outbox, workspace, deltas, &conversions).await?;
    Ok(Recorded {
        recorded: fresh.len() as u32,
        duplicates: (events.len() - fresh.len()) as u32,
        conversions: conversions.len() as u32,
    })
}

/// One aggregate read back: arm, goal version, metric, total, users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub arm: String,
    pub goal_version: i32,
    pub metric: Metric,
    pub total: u64,
    pub users: u64,
}

fn summed(column: &str) -> Expr {
    Expr::cust(format!(r#"CAST(SUM("{column}") AS BIGINT)"#))
}

/// The aggregates of `campaign`: its lifetime rows, or the sums of its hourly rows over
/// `[start_hour, end_hour)`.
pub async fn aggregates(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &str,
    hours: Option<(i64, i64)>,
) -> Result<Vec<Aggregate>, Error> {
    let mut query = count::Entity::find()
        .select_only()
        .column(count::Column::Arm)
        .column(count::Column::GoalVersion)
        .column(count::Column::Metric)
        .expr_as(summed("total"), "total")
        .expr_as(summed("users"), "users")
        .filter(count::Column::WorkspaceId.eq(workspace))
        .filter(count::Column::CampaignId.eq(campaign));
    query = match hours {
        None => query.filter(count::Column::Bucket.eq(LIFETIME)),
        Some((start, end)) => query
            .filter(count::Column::Bucket.gte(start.max(0)))
            .filter(count::Column::Bucket.lt(end)),
    };
    let rows: Vec<(String, i32, i16, i64, i64)> = query
        .group_by(count::Column::Arm)
        .group_by(count::Column::GoalVersion)
        .group_by(count::Column::Metric)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(arm, goal_version, metric, total, users)| {
            Some(Aggregate {
                arm,
                goal_version,
                metric: Metric::try_from(i32::from(metric)).ok()?,
                total: total.max(0) as u64,
                users: users.max(0) as u64,
            })
        })
        .collect())
}

/// The goal versions of `campaign`, oldest first.
pub async fn goals(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &str,
) -> Result<Vec<goal::Model>, Error> {
    Ok(goal::Entity::find()
        .filter(goal::Column::WorkspaceId.eq(workspace))
        .filter(goal::Column::CampaignId.eq(campaign))
        .order_by_asc(goal::Column::Version)
        .all(db)
        .await?)
}

/// Which arms a series sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arms {
    /// One variant.
    Variant(String),
    Control,
    /// Every variant, not control.
    Variants,
}

/// The hourly rows of one metric of `campaign` over `[start_hour, end_hour)`: hour start,
/// total, users, summed over `arms`.
pub async fn hourly(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &str,
    metric: Metric,
    goal_version: i32,
    arms: &Arms,
    (start, end): (i64, i64),
) -> Result<Vec<(i64, u64, u64)>, Error> {
    let mut query = count::Entity::find()
        .select_only()
        .column(count::Column::Bucket)
        .expr_as(summed("total"), "total")
        .expr_as(summed("users"), "users")
        .filter(count::Column::WorkspaceId.eq(workspace))
        .filter(count::Column::CampaignId.eq(campaign))
        .filter(count::Column::Metric.eq(metric as i16))
        .filter(count::Column::GoalVersion.eq(goal_version))
        .filter(count::Column::Bucket.gte(start.max(0)))
        .filter(count::Column::Bucket.lt(end));
    query = match arms {
        Arms::Variant(v) => query.filter(count::Column::Arm.eq(v.as_str())),
        Arms::Control => query.filter(count::Column::Arm.eq(CONTROL)),
        Arms::Variants => query.filter(count::Column::Arm.ne(CONTROL)),
    };
    let rows: Vec<(i64, i64, i64)> = query
        .group_by(count::Column::Bucket)
        .order_by_asc(count::Column::Bucket)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(bucket, total, users)| (bucket, total.max(0) as u64, users.max(0) as u64))
        .collect())
}

/// The hour `aggregates::hour_of` puts `ms` in.
pub fn hour_of(ms: i64) -> i64 {
    aggregates::hour_of(ms)
}
