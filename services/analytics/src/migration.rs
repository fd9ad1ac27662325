//! Analytics' tables and its own migration history (`analytics_migrations`).

use herald_storage::schema::{blob, col, drop_tables, index, int16, int64, primary_key, text};
use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of analytics: conversions relayed to segmentation.
pub const OUTBOX_TABLE: &str = "analytics_outbox";

herald_storage::migrator!(
    /// Analytics' migrations, in order.
    Migrator,
    "analytics_migrations",
    [
        CreateInteractionsAndEvents,
        CreateAggregates,
        herald_outbox::migration(OUTBOX_TABLE),
    ]
);

/// A required 32-bit integer (versions).
fn int32(name: &str) -> ColumnDef {
    col(name).integer().not_null().to_owned()
}

struct CreateInteractionsAndEvents;

impl MigrationName for CreateInteractionsAndEvents {
    fn name(&self) -> &str {
        "m20261122_000001_create_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateInteractionsAndEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_interactions"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("id", 128))
                    .col(text("campaign_id", 128))
                    .col(text("variant_id", 128))
                    .col(text("user_id", 256))
                    .col(int16("kind"))
                    .col(text("message_id", 128))
                    // What counts as "one message" for this kind: the message id, else the
                    // delivery idempotency key (for a SENT recorded without one), else the id.
                    .col(text("message_key", 256))
                    .col(text("action_id", 64))
                    .col(text("delivery_key", 256))
                    .col(text("goal_event_name", 128))
                    .col(int64("attribution_window_ms"))
                    .col(int64("occurred_at"))
                    .col(int64("recorded_at"))
                    // Idempotency is the primary key: one row per interaction id.
                    .primary_key(&mut primary_key(&["workspace_id", "id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "analytics_interactions",
                "analytics_interactions_campaign",
                &["workspace_id", "campaign_id", "kind", "occurred_at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_events"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("message_id", 128))
                    .col(text("user_id", 256))
                    .col(text("name", 128))
                    .col(int64("occurred_at"))
                    .col(int64("recorded_at"))
                    .primary_key(&mut primary_key(&["workspace_id", "message_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "analytics_events",
                "analytics_events_user_name",
                &["workspace_id", "user_id", "name", "occurred_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["analytics_events", "analytics_interactions"]).await
    }
}

/// The maintained aggregates (see `aggregates.rs`). Interactions recorded before this
/// migration are not counted in them.
struct CreateAggregates;

impl MigrationName for CreateAggregates {
    fn name(&self) -> &str {
        "m20261203_000001_create_aggregates"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAggregates {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_counts"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("campaign_id", 128))
                    .col(text("arm", 128))
                    .col(int32("goal_version"))
                    .col(int16("metric"))
                    .col(int64("bucket"))
                    .col(int64("total"))
                    .col(int64("users"))
                    .primary_key(&mut primary_key(&[
                        "workspace_id",
                        "campaign_id",
                        "arm",
                        "goal_version",
                        "metric",
                        "bucket",
                    ]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_firsts"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("campaign_id", 128))
                    .col(int16("metric"))
                    .col(text("subject", 260))
                    .col(text("arm", 128))
                    .col(int64("at"))
                    .primary_key(&mut primary_key(&[
                        "workspace_id",
                        "campaign_id",
                        "metric",
                        "subject",
                    ]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_exposures"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("user_id", 256))
                    .col(text("campaign_id", 128))
                    .col(int32("goal_version"))
                    .col(text("goal_event_name", 128))
                    .col(int64("window_ms"))
                    .col(text("arm", 128))
                    .col(int64("first_at"))
                    .col(int64("converted_at"))
                    // A goal event finds its user's exposures by the key's prefix.
                    .primary_key(&mut primary_key(&[
                        "workspace_id",
                        "user_id",
                        "campaign_id",
                        "goal_version",
                    ]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_goals"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("campaign_id", 128))
                    // Two writers numbering a campaign's new version at once: one fails on
                    // the key and is retried by its sender.
                    .col(int32("version"))
                    .col(text("event_name", 128))
                    .col(int64("window_ms"))
                    // The encoded `Experiment` (allocation, tuning); empty for none.
                    .col(blob("experiment"))
                    .col(int64("first_at"))
                    .primary_key(&mut primary_key(&[
                        "workspace_id",
                        "campaign_id",
                        "version",
                    ]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "analytics_goals",
                "analytics_exposures",
                "analytics_firsts",
                "analytics_counts",
            ],
        )
        .await
    }
}
