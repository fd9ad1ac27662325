//! Analytics' tables and its own migration history (`analytics_migrations`).

use herald_storage::schema::{drop_tables, index, int16, int64, primary_key, text};
use herald_storage::sea_orm_migration::prelude::*;

herald_storage::migrator!(
    /// Analytics' migrations, in order.
    Migrator,
    "analytics_migrations",
    [CreateInteractionsAndEvents]
);

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
