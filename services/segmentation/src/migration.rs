//! Segmentation's tables and its own migration history (`segmentation_migrations`).

use herald_storage::schema::{blob, col, drop_tables, index, int16, int64, primary_key, text};
use herald_storage::sea_orm_migration::prelude::*;

/// The outbox table of segmentation.
pub const OUTBOX_TABLE: &str = "segmentation_outbox";

/// The users' timers (one per user, at their next change by time).
pub const TIMERS_TABLE: &str = "segmentation_timers";

herald_storage::migrator!(
    /// Segmentation's migrations, in order.
    Migrator,
    "segmentation_migrations",
    [
        CreateUserState,
        herald_outbox::migration(OUTBOX_TABLE),
        TraitVersionsAndLedgerRetention,
        CreateSegments,
        UserProfiles,
        herald_timers::migration(TIMERS_TABLE),
    ]
);

struct CreateUserState;

impl MigrationName for CreateUserState {
    fn name(&self) -> &str {
        "m20261122_000001_create_user_state"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateUserState {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_processed"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("message_id", 128))
                    .col(int16("kind"))
                    .col(text("user_id", 256))
                    .col(int64("processed_at"))
                    // Idempotency is the primary key: one row per applied message_id.
                    .primary_key(&mut primary_key(&["workspace_id", "message_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_users"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("user_id", 256))
                    // The merged traits as an encoded google.protobuf.Struct; empty for none.
                    .col(blob("traits"))
                    .col(int64("created_at"))
                    .col(int64("updated_at"))
                    .primary_key(&mut primary_key(&["workspace_id", "user_id"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_event_counts"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("user_id", 256))
                    .col(text("event_name", 128))
                    .col(int64("count"))
                    .col(int64("first_at"))
                    .col(int64("last_at"))
                    .primary_key(&mut primary_key(&["workspace_id", "user_id", "event_name"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "segmentation_event_counts",
                "segmentation_users",
                "segmentation_processed",
            ],
        )
        .await
    }
}

/// Per-trait versions, so trait updates merge last-writer-wins whatever order they
/// arrive in; and the index the ledger's retention cleanup deletes by.
struct TraitVersionsAndLedgerRetention;

impl MigrationName for TraitVersionsAndLedgerRetention {
    fn name(&self) -> &str {
        "m20261130_000001_trait_versions_and_ledger_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for TraitVersionsAndLedgerRetention {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("segmentation_users"))
                    .add_column(col("trait_versions").blob().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "segmentation_processed",
                "segmentation_processed_at",
                &["processed_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("segmentation_processed_at")
                    .table(Alias::new("segmentation_processed"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("segmentation_users"))
                    .drop_column(Alias::new("trait_versions"))
                    .to_owned(),
            )
            .await
    }
}

/// Segment definitions with their backfill progress, memberships, and the per-workspace
/// version that every create, rule change and delete of a segment moves.
struct CreateSegments;

impl MigrationName for CreateSegments {
    fn name(&self) -> &str {
        "m20261203_000001_create_segments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSegments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_segments"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("segment_id", 128))
                    .col(text("name", 128))
                    .col(text("description", 1024))
                    // The encoded herald.segmentation.v1.Rule, in normal form.
                    .col(blob("rule"))
                    // The rule's canonical text; at most 16 KiB, so unbounded here.
                    .col(col("rule_text").text().not_null())
                    .col(int64("created_at"))
                    .col(int64("updated_at"))
                    .col(int64("rule_version"))
                    .col(int16("backfill_state"))
                    .col(int64("backfill_total"))
                    .col(int64("backfill_done"))
                    .col(text("backfill_cursor", 256))
                    .col(int64("backfill_started_at"))
                    .col(col("backfill_finished_at").big_integer().null())
                    .primary_key(&mut primary_key(&["workspace_id", "segment_id"]))
                    .to_owned(),
            )
            .await?;
        // ListSegments: newest first, in pages.
        manager
            .create_index(index(
                "segmentation_segments",
                "segmentation_segments_by_created",
                &["workspace_id", "created_at", "segment_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_members"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(text("segment_id", 128))
                    .col(text("user_id", 256))
                    .col(int64("entered_at"))
                    .primary_key(&mut primary_key(&["workspace_id", "segment_id", "user_id"]))
                    .to_owned(),
            )
            .await?;
        // GetUserSegments: a user's segments without scanning every segment's members.
        manager
            .create_index(index(
                "segmentation_members",
                "segmentation_members_by_user",
                &["workspace_id", "user_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("segmentation_segment_versions"))
                    .if_not_exists()
                    .col(text("workspace_id", 128))
                    .col(int64("version"))
                    .primary_key(&mut primary_key(&["workspace_id"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "segmentation_segment_versions",
                "segmentation_members",
                "segmentation_segments",
            ],
        )
        .await
    }
}

/// The evaluation profile of each user (series and memberships); null until the user is
/// next touched, when the old event counters seed it.
struct UserProfiles;

impl MigrationName for UserProfiles {
    fn name(&self) -> &str {
        "m20261203_000002_user_profiles"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for UserProfiles {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("segmentation_users"))
                    .add_column(col("profile").blob().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("segmentation_users"))
                    .drop_column(Alias::new("profile"))
                    .to_owned(),
            )
            .await
    }
}
