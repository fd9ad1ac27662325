//! Analytics' tables and its own migration history (`analytics_migrations`).

use herald_storage::sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateRecords)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("analytics_migrations").into_iden()
    }
}

struct CreateRecords;

impl MigrationName for CreateRecords {
    fn name(&self) -> &str {
        "m20261122_000001_create_records"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

fn index(name: &str, table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Alias::new(table)).if_not_exists();
    for c in columns {
        index.col(Alias::new(*c));
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_interactions"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("id").string_len(128).not_null())
                    .col(col("campaign_id").string_len(128).not_null())
                    .col(col("variant_id").string_len(128).not_null())
                    .col(col("user_id").string_len(256).not_null())
                    .col(col("kind").small_integer().not_null())
                    .col(col("message_id").string_len(128).not_null())
                    // What counts as "one message" for this kind: the message id, else the
                    // delivery idempotency key (for a SENT recorded without one), else the id.
                    .col(col("message_key").string_len(256).not_null())
                    .col(col("action_id").string_len(64).not_null())
                    .col(col("delivery_key").string_len(256).not_null())
                    .col(col("goal_event_name").string_len(128).not_null())
                    .col(col("attribution_window_ms").big_integer().not_null())
                    .col(col("occurred_at").big_integer().not_null())
                    .col(col("recorded_at").big_integer().not_null())
                    // Idempotency is the primary key: one row per interaction id.
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "analytics_interactions_campaign",
                "analytics_interactions",
                &["workspace_id", "campaign_id", "kind", "occurred_at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("analytics_events"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("message_id").string_len(128).not_null())
                    .col(col("user_id").string_len(256).not_null())
                    .col(col("name").string_len(128).not_null())
                    .col(col("occurred_at").big_integer().not_null())
                    .col(col("recorded_at").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("message_id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "analytics_events_user_name",
                "analytics_events",
                &["workspace_id", "user_id", "name", "occurred_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["analytics_events", "analytics_interactions"] {
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
