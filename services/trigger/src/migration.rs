//! Trigger's tables and its own migration history (`trigger_migrations`).

use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of trigger.
pub const OUTBOX_TABLE: &str = "trigger_outbox";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(herald_outbox::migration(OUTBOX_TABLE)),
            Box::new(CreateCampaigns),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("trigger_migrations").into_iden()
    }
}

struct CreateCampaigns;

impl MigrationName for CreateCampaigns {
    fn name(&self) -> &str {
        "m20261121_000001_create_campaigns"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateCampaigns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let campaigns = Alias::new("trigger_campaigns");
        manager
            .create_table(
                Table::create()
                    .table(campaigns.clone())
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("workspace_id"))
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("id")).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Alias::new("status"))
                            .small_integer()
                            .not_null(),
                    )
                    // The event name of an event trigger; empty for other trigger kinds.
                    .col(
                        ColumnDef::new(Alias::new("trigger_event_name"))
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("create_time_ms"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("update_time_ms"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("body")).blob().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        // Matching an event: the workspace's ACTIVE campaigns triggered by that event name.
        manager
            .create_index(
                Index::create()
                    .name("trigger_campaigns_match")
                    .table(campaigns.clone())
                    .col(Alias::new("workspace_id"))
                    .col(Alias::new("status"))
                    .col(Alias::new("trigger_event_name"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // ListCampaigns: newest first, per workspace.
        manager
            .create_index(
                Index::create()
                    .name("trigger_campaigns_created")
                    .table(campaigns)
                    .col(Alias::new("workspace_id"))
                    .col(Alias::new("create_time_ms"))
                    .col(Alias::new("id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_handled_events"))
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
                        ColumnDef::new(Alias::new("handled_at"))
                            .big_integer()
                            .not_null(),
                    )
                    // Idempotency is the primary key: each event message_id is handled once.
                    .primary_key(
                        Index::create()
                            .col(Alias::new("workspace_id"))
                            .col(Alias::new("message_id")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("trigger_handled_events"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("trigger_campaigns"))
                    .to_owned(),
            )
            .await
    }
}
