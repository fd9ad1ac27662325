//! The timers table, created by a migration the owning service adds to its own history.

use sea_orm_migration::prelude::*;

/// Creates the timers table `table` (e.g. `trigger_timers`).
pub fn migration(table: &'static str) -> TimersMigration {
    TimersMigration { table }
}

/// See [`migration`].
pub struct TimersMigration {
    table: &'static str,
}

impl MigrationName for TimersMigration {
    fn name(&self) -> &str {
        "m20261130_000000_timers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for TimersMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use herald_storage::schema::{blob, index, int64, text};
        let mut table = Table::create();
        table
            .table(Alias::new(self.table))
            .if_not_exists()
            .col(herald_leases::id_column(manager.get_database_backend()))
            .col(text("timer_key", 512).unique_key().to_owned())
            .col(int64("due_at"))
            // Bumped on every replace: only the version a runner claimed is deleted.
            .col(int64("generation"))
            .col(blob("payload"));
        for column in herald_leases::lease_columns() {
            table.col(column);
        }
        manager.create_table(table.to_owned()).await?;
        // Due timers are found through this index, never by a scan: a claim rules out
        // sorting, so the planner walks it even before the table has statistics.
        manager
            .create_index(index(
                self.table,
                &format!("{}_due", self.table),
                &["due_at", "id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        herald_storage::schema::drop_tables(manager, &[self.table]).await
    }
}
