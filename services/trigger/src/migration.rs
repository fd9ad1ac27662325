//! Trigger's tables and its own migration history (`trigger_migrations`).

use herald_storage::schema::{blob, drop_tables, index, int16, int64, primary_key, text};
use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of trigger.
pub const OUTBOX_TABLE: &str = "trigger_outbox";
/// The timers of delay and inactivity triggers and quiet-hours releases.
pub const TIMERS_TABLE: &str = "trigger_timers";

herald_storage::migrator!(
    /// Trigger's migrations, in order.
    Migrator,
    "trigger_migrations",
    [
        herald_outbox::migration(OUTBOX_TABLE),
        CreateCampaigns,
        LedgerRetention,
        CampaignVersions,
        HandledTransitions,
        herald_timers::migration(TIMERS_TABLE),
        Targeting,
    ]
);

struct CreateCampaigns;

impl MigrationName for CreateCampaigns {
    fn name(&self) -> &str {
        "m20261121_000001_create_campaigns"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateCampaigns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_campaigns"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("id", 64))
                    .col(int16("status"))
                    // The event name of an event trigger; empty for other trigger kinds.
                    .col(text("trigger_event_name", 128))
                    .col(int64("create_time_ms"))
                    .col(int64("update_time_ms"))
                    .col(blob("body"))
                    .primary_key(&mut primary_key(&["workspace_id", "id"]))
                    .to_owned(),
            )
            .await?;
        // Matching an event: the workspace's ACTIVE campaigns triggered by that event name.
        manager
            .create_index(index(
                "trigger_campaigns",
                "trigger_campaigns_match",
                &["workspace_id", "status", "trigger_event_name"],
            ))
            .await?;
        // ListCampaigns: newest first, per workspace.
        manager
            .create_index(index(
                "trigger_campaigns",
                "trigger_campaigns_created",
                &["workspace_id", "create_time_ms", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_handled_events"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("message_id", 128))
                    .col(int64("handled_at"))
                    // Idempotency is the primary key: each event message_id is handled once.
                    .primary_key(&mut primary_key(&["workspace_id", "message_id"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["trigger_handled_events", "trigger_campaigns"]).await
    }
}

/// The index the handled-events ledger's retention cleanup deletes by.
struct LedgerRetention;

impl MigrationName for LedgerRetention {
    fn name(&self) -> &str {
        "m20261130_000001_ledger_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for LedgerRetention {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index(
                "trigger_handled_events",
                "trigger_handled_events_at",
                &["handled_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("trigger_handled_events_at")
                    .table(Alias::new("trigger_handled_events"))
                    .to_owned(),
            )
            .await
    }
}

/// Each workspace's campaign version, moved by every campaign write, so every replica's
/// in-memory campaigns notice a change with one primary-key read.
struct CampaignVersions;

impl MigrationName for CampaignVersions {
    fn name(&self) -> &str {
        "m20261202_000001_campaign_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CampaignVersions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_campaign_versions"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(int64("version"))
                    .primary_key(&mut primary_key(&["workspace_id"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["trigger_campaign_versions"]).await
    }
}

/// The ledger of handled segment transition ids, and the index its retention cleanup
/// deletes by.
struct HandledTransitions;

impl MigrationName for HandledTransitions {
    fn name(&self) -> &str {
        "m20261215_000001_handled_transitions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for HandledTransitions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_handled_transitions"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("transition_id", 128))
                    .col(int64("handled_at"))
                    // Idempotency is the primary key: each transition id is handled once.
                    .primary_key(&mut primary_key(&["workspace_id", "transition_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "trigger_handled_transitions",
                "trigger_handled_transitions_at",
                &["handled_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["trigger_handled_transitions"]).await
    }
}

/// What targeting keeps: the workspace's cap rules and settings, each user's attention
/// ledger (recent messages, entries, assignments, pending timers), and the decisions
/// ExplainDecision reads.
struct Targeting;

impl MigrationName for Targeting {
    fn name(&self) -> &str {
        "m20261203_000001_targeting"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Targeting {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_cap_rules"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("id", 64))
                    .col(int64("create_time_ms"))
                    .col(int64("update_time_ms"))
                    // The protobuf-encoded `CapRule`, with its id and times.
                    .col(blob("body"))
                    .primary_key(&mut primary_key(&["workspace_id", "id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_settings"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(int64("update_time_ms"))
                    // The protobuf-encoded `TriggerSettings`.
                    .col(blob("body"))
                    .primary_key(&mut primary_key(&["workspace_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_users"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("user_id", 256))
                    .col(int64("updated_at"))
                    // The encoded ledger of the user (`herald_campaigns::Ledger`); its row
                    // is locked for the length of a decision, so budget is reserved
                    // atomically across replicas.
                    .col(blob("ledger"))
                    .primary_key(&mut primary_key(&["workspace_id", "user_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("trigger_decisions"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("id", 64))
                    .col(text("campaign_id", 64))
                    .col(text("user_id", 256))
                    .col(int64("decide_ms"))
                    // The protobuf-encoded `Decision`.
                    .col(blob("body"))
                    .primary_key(&mut primary_key(&["workspace_id", "id"]))
                    .to_owned(),
            )
            .await?;
        // ExplainDecision: one user's decisions for one campaign, newest first.
        manager
            .create_index(index(
                "trigger_decisions",
                "trigger_decisions_explain",
                &["workspace_id", "campaign_id", "user_id", "decide_ms", "id"],
            ))
            .await?;
        // Retention deletes by age.
        manager
            .create_index(index(
                "trigger_decisions",
                "trigger_decisions_at",
                &["decide_ms"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "trigger_decisions",
                "trigger_users",
                "trigger_settings",
                "trigger_cap_rules",
            ],
        )
        .await
    }
}
