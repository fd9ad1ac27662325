//! Delivery's tables and its own migration history (`delivery_migrations`).

use herald_storage::schema::{blob, col, drop_tables, index, int16, int64, primary_key, text};
use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of delivery.
pub const OUTBOX_TABLE: &str = "delivery_outbox";

/// The timers of pushes held by their user's quiet hours (one per message).
pub const TIMERS_TABLE: &str = "delivery_timers";

herald_storage::migrator!(
    /// Delivery's migrations, in order.
    Migrator,
    "delivery_migrations",
    [
        CreateTables,
        herald_outbox::migration(OUTBOX_TABLE),
        herald_timers::migration(TIMERS_TABLE),
    ]
);

struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20261122_000001_create_delivery_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let messages = Alias::new("delivery_messages");
        manager
            .create_table(
                Table::create()
                    .table(messages.clone())
                    .if_not_exists()
                    .col(text("id", 64).primary_key().to_owned())
                    .col(text("workspace_id", 128))
                    .col(text("user_id", 256))
                    .col(text("idempotency_key", 128))
                    .col(text("campaign_id", 128))
                    .col(text("variant_id", 128))
                    .col(int16("channel"))
                    .col(blob("content"))
                    .col(text("address", 512))
                    .col(int16("state"))
                    .col(col("priority").integer().not_null())
                    .col(text("category", 64))
                    .col(int64("create_time"))
                    .col(int64("update_time"))
                    .col(col("expire_time").big_integer().null())
                    .col(col("display_time").big_integer().null())
                    .col(col("click_time").big_integer().null())
                    .col(col("dismiss_time").big_integer().null())
                    .col(col("read_time").big_integer().null())
                    .col(col("archive_time").big_integer().null())
                    .to_owned(),
            )
            .await?;
        // One message per idempotency key and workspace, whatever races the ledger loses.
        manager
            .create_index(
                Index::create()
                    .name("delivery_messages_idempotency")
                    .table(messages.clone())
                    .col(Alias::new("workspace_id"))
                    .col(Alias::new("idempotency_key"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The inbox (newest first), replay and unread counts all read one user's channel.
        manager
            .create_index(index(
                "delivery_messages",
                "delivery_messages_inbox",
                &["workspace_id", "user_id", "channel", "create_time"],
            ))
            .await?;
        // The idempotency ledger: every processed key and its result, including the
        // deliveries that produced no message (opted out, expired, no address).
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("delivery_results"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("idempotency_key", 128))
                    .col(text("message_id", 64))
                    .col(int16("outcome"))
                    .col(int64("create_time"))
                    .primary_key(&mut primary_key(&["workspace_id", "idempotency_key"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("delivery_preferences"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("user_id", 256))
                    .col(blob("body"))
                    .col(int64("update_time"))
                    .primary_key(&mut primary_key(&["workspace_id", "user_id"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "delivery_preferences",
                "delivery_results",
                "delivery_messages",
            ],
        )
        .await
    }
}
