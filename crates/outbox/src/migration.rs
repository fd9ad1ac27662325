//! The outbox table, created by a migration the owning service adds to its own history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Creates the outbox table `table` (e.g. `ingest_outbox`).
pub fn migration(table: &'static str) -> OutboxMigration {
    OutboxMigration { table }
}

/// See [`migration`].
pub struct OutboxMigration {
    table: &'static str,
}

impl MigrationName for OutboxMigration {
    fn name(&self) -> &str {
        "m20261121_000000_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Alias::new(self.table);
        let mut id = ColumnDef::new(Alias::new("id"));
        // SQLite only auto-increments an INTEGER PRIMARY KEY.
        match manager.get_database_backend() {
            DbBackend::Sqlite => id.integer(),
            _ => id.big_integer(),
        };
        id.not_null().auto_increment().primary_key();
        manager
            .create_table(
                Table::create()
                    .table(table.clone())
                    .if_not_exists()
                    .col(&mut id)
                    .col(
                        ColumnDef::new(Alias::new("destination"))
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("partition_key"))
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("payload")).blob().not_null())
                    .col(ColumnDef::new(Alias::new("traceparent")).text().null())
                    .col(
                        ColumnDef::new(Alias::new("created_at"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("lease_owner")).text().null())
                    .col(
                        ColumnDef::new(Alias::new("lease_until"))
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Alias::new("attempts"))
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Alias::new("failed_at")).big_integer().null())
                    .col(ColumnDef::new(Alias::new("last_error")).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(format!("{}_destination_id", self.table))
                    .table(table)
                    .col(Alias::new("destination"))
                    .col(Alias::new("id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new(self.table)).to_owned())
            .await
    }
}
