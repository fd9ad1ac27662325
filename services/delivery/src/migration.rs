//! Delivery's tables and its own migration history (`delivery_migrations`).

use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of delivery.
pub const OUTBOX_TABLE: &str = "delivery_outbox";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateTables),
            Box::new(herald_outbox::migration(OUTBOX_TABLE)),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("delivery_migrations").into_iden()
    }
}

struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20261122_000001_create_delivery_tables"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
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
                    .col(col("id").string_len(64).not_null().primary_key())
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("user_id").string_len(256).not_null())
                    .col(col("idempotency_key").string_len(128).not_null())
                    .col(col("campaign_id").string_len(128).not_null())
                    .col(col("variant_id").string_len(128).not_null())
                    .col(col("channel").small_integer().not_null())
                    .col(col("content").blob().not_null())
                    .col(col("address").string_len(512).not_null())
                    .col(col("state").small_integer().not_null())
                    .col(col("priority").integer().not_null())
                    .col(col("category").string_len(64).not_null())
                    .col(col("create_time").big_integer().not_null())
                    .col(col("update_time").big_integer().not_null())
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
            .create_index(
                Index::create()
                    .name("delivery_messages_inbox")
                    .table(messages)
                    .col(Alias::new("workspace_id"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("channel"))
                    .col(Alias::new("create_time"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The idempotency ledger: every processed key and its result, including the
        // deliveries that produced no message (opted out, expired, no address).
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("delivery_results"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("idempotency_key").string_len(128).not_null())
                    .col(col("message_id").string_len(64).not_null())
                    .col(col("outcome").small_integer().not_null())
                    .col(col("create_time").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("idempotency_key")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("delivery_preferences"))
                    .if_not_exists()
                    .col(col("workspace_id").string_len(128).not_null())
                    .col(col("user_id").string_len(256).not_null())
                    .col(col("body").blob().not_null())
                    .col(col("update_time").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("user_id")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "delivery_preferences",
            "delivery_results",
            "delivery_messages",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
