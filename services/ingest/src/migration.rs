//! Ingest's tables and its own migration history (`ingest_migrations`).

use herald_storage::schema::{blob, drop_tables, index, int16, int64, primary_key, text};
use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of ingest.
pub const OUTBOX_TABLE: &str = "ingest_outbox";

herald_storage::migrator!(
    /// Ingest's migrations, in order.
    Migrator,
    "ingest_migrations",
    [CreateRecords, herald_outbox::migration(OUTBOX_TABLE)]
);

struct CreateRecords;

impl MigrationName for CreateRecords {
    fn name(&self) -> &str {
        "m20261121_000001_create_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("ingest_records"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("message_id", 128))
                    .col(int16("kind"))
                    .col(text("user_id", 256))
                    .col(text("name", 128))
                    .col(int64("occurred_at"))
                    .col(int64("received_at"))
                    .col(blob("body"))
                    // Deduplication is the primary key: one record per client message_id.
                    .primary_key(&mut primary_key(&["workspace_id", "message_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ingest_records",
                "ingest_records_user",
                &["workspace_id", "user_id", "occurred_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["ingest_records"]).await
    }
}
