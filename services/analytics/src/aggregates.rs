//! The maintained aggregates statistics are read from, and the per-user facts that keep
//! them idempotent:
//! - `analytics_counts`: per campaign, arm (a variant id, or empty for control), goal
//!   version (0 for the counts no goal concerns), metric and hour (UTC), plus one
//!   lifetime row ([`LIFETIME`]), a total and a number of unique users;
//! - `analytics_firsts`: the first time a message (`m:` key) or a user (`u:` id) counted
//!   for a campaign's metric, so a second report counts nothing;
//! - `analytics_exposures`: a user's first exposure per campaign and goal version, and
//!   when they converted (0 until then);
//! - `analytics_goals`: the goal versions of each campaign (goal event, window and
//!   experiment).
//!
//! Counts only grow, by upserts that add (`total = total + excluded.total`), so two
//! writers never lose each other's counts.

use std::collections::BTreeMap;

use herald_proto::analytics::v1::Metric;
use herald_runtime::Error;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ConnectionTrait, EntityTrait};

/// The bucket of the lifetime row.
pub const LIFETIME: i64 = -1;
const HOUR_MS: i64 = 3_600_000;

/// The start of the UTC hour holding `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The arm of control in the tables.
pub const CONTROL: &str = "";

pub mod count {
    //! One aggregate: a metric's total and unique users in one arm, goal version and
    //! bucket.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "analytics_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        /// A variant id; empty for control.
        #[sea_orm(primary_key, auto_increment = false)]
        pub arm: String,
        /// The goal version for EXPOSED and CONVERSIONS; 0 otherwise.
        #[sea_orm(primary_key, auto_increment = false)]
        pub goal_version: i32,
        /// The `Metric` number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub metric: i16,
        /// The start of the UTC hour in ms, or `LIFETIME`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub bucket: i64,
        pub total: i64,
        pub users: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod first {
    //! The first time a message or a user counted for a campaign's metric.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "analytics_firsts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub metric: i16,
        /// `m:` and the message key, or `u:` and the user id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        pub arm: String,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod exposure {
    //! A user's first exposure to a campaign under a goal version.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "analytics_exposures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub goal_version: i32,
        pub goal_event_name: String,
        pub window_ms: i64,
        /// The arm of the first exposure.
        pub arm: String,
        pub first_at: i64,
        /// When the user converted; 0 until then.
        pub converted_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod goal {
    //! A campaign's goal version: an event name, attribution window and experiment.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "analytics_goals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i32,
        pub event_name: String,
        pub window_ms: i64,
        /// The encoded `Experiment` (tuning 0 written as 5000); empty for none.
        pub experiment: Vec<u8>,
        pub first_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Where a count goes: campaign, arm, goal version, metric.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub campaign_id: String,
    pub arm: String,
    pub goal_version: i32,
    pub metric: Metric,
}

/// Counts to add, gathered over a batch and written at once, in key order (so two
/// writers lock rows in the same order).
#[derive(Debug, Default)]
pub struct Deltas(BTreeMap<(Cell, i64), (i64, i64)>);

impl Deltas {
    /// Adds `total` and `users` to `cell` at the hour of `at_ms` and for its lifetime.
    pub fn add(&mut self, cell: Cell, at_ms: i64, total: i64, users: i64) {
        if total == 0 && users == 0 {
            return;
        }
        for bucket in [LIFETIME, hour_of(at_ms)] {
            let entry = self.0.entry((cell.clone(), bucket)).or_default();
            entry.0 += total;
            entry.1 += users;
        }
    }

    /// Writes the deltas of `workspace` with `db` (a transaction).
    pub async fn write(self, db: &impl ConnectionTrait, workspace: &str) -> Result<(), Error> {
        let rows: Vec<count::ActiveModel> = self
            .0
            .into_iter()
            .map(|((cell, bucket), (total, users))| {
                count::ActiveModel::from(count::Model {
                    workspace_id: workspace.to_owned(),
                    campaign_id: cell.campaign_id,
                    arm: cell.arm,
                    goal_version: cell.goal_version,
                    metric: cell.metric as i16,
                    bucket,
                    total,
                    users,
                })
            })
            .collect();
        let excluded = |c: count::Column| Expr::col((Alias::new("excluded"), c));
        let own = |c: count::Column| Expr::col((count::Entity, c));
        // 8 columns a row: far under both backends' parameter limits.
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<count::ActiveModel> = rows.by_ref().take(2_000).collect();
            count::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([
                        count::Column::WorkspaceId,
                        count::Column::CampaignId,
                        count::Column::Arm,
                        count::Column::GoalVersion,
                        count::Column::Metric,
                        count::Column::Bucket,
                    ])
                    .value(
                        count::Column::Total,
                        own(count::Column::Total).add(excluded(count::Column::Total)),
                    )
                    .value(
                        count::Column::Users,
                        own(count::Column::Users).add(excluded(count::Column::Users)),
                    )
                    .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_counts_in_its_hour_and_the_lifetime() {
        let mut deltas = Deltas::default();
        let cell = Cell {
            campaign_id: "c".into(),
            arm: "v1".into(),
            goal_version: 0,
            metric: Metric::Sent,
        };
        deltas.add(cell.clone(), 7_200_001, 1, 1);
        deltas.add(cell.clone(), 10_799_999, 1, 0);
        deltas.add(cell.clone(), 10_800_000, 0, 0);
        let rows: Vec<(i64, (i64, i64))> = deltas.0.into_iter().map(|((_, b), v)| (b, v)).collect();
        assert_eq!(rows, [(LIFETIME, (2, 1)), (7_200_000, (2, 1))]);
        assert_eq!(hour_of(-1), -HOUR_MS);
    }
}
