//! Ingest's tables and its own migration history (`ingest_migrations`).

use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of ingest.
pub const OUTBOX_TABLE: &str = "ingest_outbox";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateRecords),
            Box::new(herald_outbox::migration(OUTBOX_TABLE)),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("ingest_migrations").into_iden()
    }
}

struct CreateRecords;

impl MigrationName for CreateRecords {
    fn name(&self) -> &str {
        "m20261121_000001_create_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = Alias::new("ingest_records");
        manager
            .create_table(
                Table::create()
                    .table(t.clone())
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("workspace_id"))
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("message_id"))
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("kind"))
                            .small_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("user_id"))
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("name"))
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("occurred_at"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("received_at"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("body")).blob().not_null())
                    // Deduplication is the primary key: one record per client message_id.
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("message_id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ingest_records_user")
                    .table(t)
                    .col(Alias::new("workspace_id"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("occurred_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("ingest_records")).to_owned())
            .await
    }
}
