//! The outbox table, created by a migration the owning service adds to its own history.

use sea_orm_migration::prelude::*;

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
        let col = |name: &str| ColumnDef::new(Alias::new(name));
        let mut table = Table::create();
        table
            .table(Alias::new(self.table))
            .if_not_exists()
            .col(herald_leases::id_column(manager.get_database_backend()))
            .col(col("destination").string_len(64).not_null())
            .col(col("partition_key").text().not_null())
            .col(col("payload").blob().not_null())
            .col(col("traceparent").text().null());
        for column in herald_leases::lease_columns() {
            table.col(column);
        }
        manager.create_table(table.to_owned()).await?;
        manager
            .create_index(herald_storage::schema::index(
                self.table,
                &format!("{}_destination_id", self.table),
                &["destination", "id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        herald_storage::schema::drop_tables(manager, &[self.table]).await
    }
}
