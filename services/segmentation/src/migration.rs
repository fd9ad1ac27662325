//! Segmentation's tables and its own migration history (`segmentation_migrations`).

use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of segmentation.
pub const OUTBOX_TABLE: &str = "segmentation_outbox";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateUserState),
            Box::new(herald_outbox::migration(OUTBOX_TABLE)),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("segmentation_migrations").into_iden()
    }
}

struct CreateUserState;

impl MigrationName for CreateUserState {
    fn name(&self) -> &str {
        "m20261122_000001_create_user_state"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

#[async_trait::async_trait]
impl MigrationTrait for CreateUserState {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_processed"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("message_id").string_len(128).not_null())
                    .col(col("kind").small_integer().not_null())
                    .col(col("user_id").string_len(256).not_null())
                    .col(col("processed_at").big_integer().not_null())
                    // Idempotency is the primary key: one row per applied message_id.
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("message_id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_users"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("user_id").string_len(256).not_null())
                    // The merged traits as an encoded google.protobuf.Struct; empty for none.
                    .col(col("traits").blob().not_null())
                    .col(col("created_at").big_integer().not_null())
                    .col(col("updated_at").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("user_id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_event_counts"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("user_id").string_len(256).not_null())
                    .col(col("event_name").string_len(128).not_null())
                    .col(col("count").big_integer().not_null())
                    .col(col("first_at").big_integer().not_null())
                    .col(col("last_at").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("user_id"))
                            .col(Alias::new("event_name")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "segmentation_event_counts",
            "segmentation_users",
            "segmentation_processed",
        ] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
