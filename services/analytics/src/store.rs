//! Interactions and events, each stored once per id, and the campaign statistics read
//! from them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use herald_proto::analytics::v1::InteractionKind;
use herald_proto::common::v1::Event;
use herald_runtime::Error;
use herald_stats::{self as stats, Counts};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

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
}

/// Inserts the rows whose keys are new, in one statement per chunk; a key seen before, or
/// earlier in `rows`, is a duplicate and changes nothing.
async fn insert_new<A>(db: &DatabaseConnection, rows: Vec<(String, A)>) -> Result<Recorded, Error>
where
    A: sea_orm::ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    <<A::Entity as EntityTrait>::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType:
        Eq + std::hash::Hash,
{
    let total = rows.len();
    let mut first = HashSet::new();
    let unique: Vec<A> = rows
        .into_iter()
        .filter(|(key, _)| first.insert(key.clone()))
        .map(|(_, row)| row)
        .collect();
    let fresh = herald_storage::insert_fresh(db, unique).await?;
    Ok(Recorded {
        recorded: fresh.len() as u32,
        duplicates: (total - fresh.len()) as u32,
    })
}

/// Records `interactions` of `workspace`, each once per id.
pub async fn record_interactions(
    db: &DatabaseConnection,
    now: i64,
    workspace: &str,
    interactions: Vec<Valid>,
) -> Result<Recorded, Error> {
    let rows = interactions
        .into_iter()
        .map(|v| {
            let i = v.interaction;
            let message_key = [&i.message_id, &i.delivery_idempotency_key, &i.id]
                .into_iter()
                .find(|k| !k.is_empty())
                .cloned()
                .unwrap_or_default();
            let model = interaction::Model {
                workspace_id: workspace.to_owned(),
                id: i.id.clone(),
                campaign_id: i.campaign_id,
                variant_id: i.variant_id,
                user_id: i.user_id,
                kind: v.kind as i16,
                message_id: i.message_id,
                message_key,
                action_id: i.action_id,
                delivery_key: i.delivery_idempotency_key,
                goal_event_name: i.goal_event_name,
                attribution_window_ms: v.window_ms,
                occurred_at: v.occurred_at,
                recorded_at: now,
            };
            (i.id, interaction::ActiveModel::from(model))
        })
        .collect();
    insert_new(db, rows).await
}

/// Records `events` of `workspace` (with their times in ms), each once per message_id.
pub async fn record_events(
    db: &DatabaseConnection,
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
    insert_new(db, rows).await
}

/// A campaign's counts over `[start, end)`: per variant (ordered by id), control when it
/// has any, and all variants combined.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CampaignCounts {
    pub variants: BTreeMap<String, Counts>,
    pub control: Option<Counts>,
    pub total: Counts,
}

fn add_kind(counts: &mut Counts, kind: i16, messages: u64, users: u64) {
    match InteractionKind::try_from(i32::from(kind)) {
        Ok(InteractionKind::Sent) => {
            counts.sent += messages;
            counts.assigned += users;
        }
        Ok(InteractionKind::Delivered) => counts.delivered += messages,
        Ok(InteractionKind::Impression) => counts.impressions += messages,
        Ok(InteractionKind::Click) => counts.clicks += messages,
        Ok(InteractionKind::Dismissal) => counts.dismissals += messages,
        Ok(InteractionKind::AssignedControl) => counts.assigned += users,
        _ => {}
    }
}

const CONTROL: i16 = InteractionKind::AssignedControl as i16;
const SENT: i16 = InteractionKind::Sent as i16;
const IMPRESSION: i16 = InteractionKind::Impression as i16;

/// Counts of `campaign` in `workspace` over `[start, end)` (ms).
pub async fn campaign_counts(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &str,
    start: i64,
    end: i64,
) -> Result<CampaignCounts, Error> {
    let in_range = || {
        interaction::Entity::find()
            .select_only()
            .filter(interaction::Column::WorkspaceId.eq(workspace))
            .filter(interaction::Column::CampaignId.eq(campaign))
            .filter(interaction::Column::OccurredAt.gte(start))
            .filter(interaction::Column::OccurredAt.lt(end))
    };
    let distinct_messages = Expr::cust(r#"COUNT(DISTINCT "message_key")"#);
    let distinct_users = Expr::cust(r#"COUNT(DISTINCT "user_id")"#);
    let per_variant: Vec<(String, i16, i64, i64)> = in_range()
        .column(interaction::Column::VariantId)
        .column(interaction::Column::Kind)
        .expr_as(distinct_messages.clone(), "messages")
        .expr_as(distinct_users.clone(), "users")
        .group_by(interaction::Column::VariantId)
        .group_by(interaction::Column::Kind)
        .into_tuple()
        .all(db)
        .await?;
    // Distinct across variants, so a user or message seen in two variants counts once.
    let combined: Vec<(i16, i64, i64)> = in_range()
        .column(interaction::Column::Kind)
        .expr_as(distinct_messages, "messages")
        .expr_as(distinct_users, "users")
        .filter(interaction::Column::Kind.ne(CONTROL))
        .group_by(interaction::Column::Kind)
        .into_tuple()
        .all(db)
        .await?;

    let mut result = CampaignCounts::default();
    for (variant, kind, messages, users) in per_variant {
        let counts = if kind == CONTROL {
            result.control.get_or_insert_with(Counts::default)
        } else {
            result.variants.entry(variant).or_default()
        };
        add_kind(counts, kind, messages as u64, users as u64);
    }
    for (kind, messages, users) in combined {
        add_kind(&mut result.total, kind, messages as u64, users as u64);
    }

    let conversions = conversions(db, workspace, campaign, start, end).await?;
    for (exposure, count) in conversions {
        match exposure {
            Group::Control => {
                result
                    .control
                    .get_or_insert_with(Counts::default)
                    .conversions += count
            }
            Group::Variant(v) => {
                result.total.conversions += count;
                // Variants are listed only when they have interactions in the range.
                if let Some(counts) = result.variants.get_mut(&v) {
                    counts.conversions += count;
                }
            }
        }
    }
    Ok(result)
}

/// The goal stored under `key`, if `key` is set.
fn lookup<'a>(map: &HashMap<&str, (&'a str, i64)>, key: &str) -> Option<(&'a str, i64)> {
    if key.is_empty() {
        None
    } else {
        map.get(key).copied()
    }
}

/// A variant or the control group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Group {
    Variant(String),
    Control,
}

/// One exposure that may convert: a message's first impression, or a user's first
/// assignment to control.
struct Exposure {
    group: Group,
    user_id: String,
    at: i64,
    goal: String,
    window_ms: i64,
}

/// Conversions of `campaign` whose goal event falls in `[start, end)`, per group:
/// exposures before `end` followed by the goal event of the same user within the
/// attribution window, each counted once, at the goal event's time.
async fn conversions(
    db: &DatabaseConnection,
    workspace: &str,
    campaign: &str,
    start: i64,
    end: i64,
) -> Result<HashMap<Group, u64>, Error> {
    let rows = interaction::Entity::find()
        .filter(interaction::Column::WorkspaceId.eq(workspace))
        .filter(interaction::Column::CampaignId.eq(campaign))
        .filter(interaction::Column::Kind.is_in([SENT, IMPRESSION, CONTROL]))
        .filter(interaction::Column::OccurredAt.lt(end))
        .order_by_asc(interaction::Column::OccurredAt)
        .all(db)
        .await?;
    // The goal travels on SENT and ASSIGNED_CONTROL; an impression finds its message's
    // goal through the message id or the delivery key, else the campaign's latest goal.
    let mut goal_by_message: HashMap<&str, (&str, i64)> = HashMap::new();
    let mut goal_by_delivery: HashMap<&str, (&str, i64)> = HashMap::new();
    let mut campaign_goal: Option<(&str, i64)> = None;
    for row in rows.iter().filter(|r| !r.goal_event_name.is_empty()) {
        let goal = (row.goal_event_name.as_str(), row.attribution_window_ms);
        if !row.message_id.is_empty() {
            goal_by_message.insert(row.message_id.as_str(), goal);
        }
        if !row.delivery_key.is_empty() {
            goal_by_delivery.insert(row.delivery_key.as_str(), goal);
        }
        campaign_goal = Some(goal);
    }
    let mut seen = HashSet::new();
    let mut exposures = Vec::new();
    for row in &rows {
        let group = match row.kind {
            IMPRESSION => Group::Variant(row.variant_id.clone()),
            CONTROL => Group::Control,
            _ => continue,
        };
        // Rows come in time order: the first per message (or control user) is the exposure.
        let identity = match &group {
            Group::Variant(_) => row.message_key.as_str(),
            Group::Control => row.user_id.as_str(),
        };
        if !seen.insert((row.kind, identity)) {
            continue;
        }
        let own = (!row.goal_event_name.is_empty())
            .then_some((row.goal_event_name.as_str(), row.attribution_window_ms));
        let by_message = lookup(&goal_by_message, &row.message_id);
        let by_delivery = lookup(&goal_by_delivery, &row.delivery_key);
        if let Some((goal, window_ms)) = own.or(by_message).or(by_delivery).or(campaign_goal) {
            exposures.push(Exposure {
                group,
                user_id: row.user_id.clone(),
                at: row.occurred_at,
                goal: goal.to_owned(),
                window_ms,
            });
        }
    }
    if exposures.is_empty() {
        return Ok(HashMap::new());
    }

    let users: BTreeSet<&str> = exposures.iter().map(|e| e.user_id.as_str()).collect();
    let goals: BTreeSet<&str> = exposures.iter().map(|e| e.goal.as_str()).collect();
    let users: Vec<&str> = users.into_iter().collect();
    let mut goal_times: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for chunk in users.chunks(CHUNK) {
        let rows: Vec<(String, String, i64)> = event::Entity::find()
            .select_only()
            .column(event::Column::UserId)
            .column(event::Column::Name)
            .column(event::Column::OccurredAt)
            .filter(event::Column::WorkspaceId.eq(workspace))
            .filter(event::Column::UserId.is_in(chunk.iter().copied()))
            .filter(event::Column::Name.is_in(goals.iter().copied()))
            .filter(event::Column::OccurredAt.lt(end))
            .order_by_asc(event::Column::OccurredAt)
            .into_tuple()
            .all(db)
            .await?;
        for (user, name, at) in rows {
            goal_times.entry((user, name)).or_default().push(at);
        }
    }
    let mut result: HashMap<Group, u64> = HashMap::new();
    for exposure in exposures {
        let times = goal_times
            .get(&(exposure.user_id, exposure.goal))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(at) = stats::conversion_time(exposure.at, exposure.window_ms, times)
            && (start..end).contains(&at)
        {
            *result.entry(exposure.group).or_default() += 1;
        }
    }
    Ok(result)
}
