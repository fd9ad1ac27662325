//! Helpers for the migrations every service writes: column kinds as Herald uses them
//! (text ids with a length, instants as milliseconds, protobuf blobs), and the
//! [`migrator!`](crate::migrator) macro that gives a service its own migration history.

use sea_orm_migration::prelude::*;

/// A column named `name`.
pub fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

/// A required text column of at most `len` characters (ids, names).
pub fn text(name: &str, len: u32) -> ColumnDef {
    col(name).string_len(len).not_null().to_owned()
}

/// A required 64-bit integer (instants in milliseconds, counters).
pub fn int64(name: &str) -> ColumnDef {
    col(name).big_integer().not_null().to_owned()
}

/// A required 16-bit integer (enum numbers).
pub fn int16(name: &str) -> ColumnDef {
    col(name).small_integer().not_null().to_owned()
}

/// A required blob (encoded protobuf).
pub fn blob(name: &str) -> ColumnDef {
    col(name).blob().not_null().to_owned()
}

/// A primary key over `columns`.
pub fn primary_key(columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    for c in columns {
        index.col(Alias::new(*c));
    }
    index.to_owned()
}

/// The index `name` of `table` over `columns`.
pub fn index(table: &str, name: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Alias::new(table)).if_not_exists();
    for c in columns {
        index.col(Alias::new(*c));
    }
    index.to_owned()
}

/// Drops `tables` if they exist.
pub async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    for table in tables {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new(*table))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Declares `$name`, a migrator running `$migrations` in order and recording them in its
/// own history table `$history`, so services sharing one PostgreSQL database never see
/// each other's migrations.
#[macro_export]
macro_rules! migrator {
    ($(#[$meta:meta])* $name:ident, $history:literal, [$($migration:expr),* $(,)?]) => {
        $(#[$meta])*
        pub struct $name;

        #[$crate::sea_orm_migration::async_trait::async_trait]
        impl $crate::sea_orm_migration::MigratorTrait for $name {
            fn migrations() -> Vec<Box<dyn $crate::sea_orm_migration::MigrationTrait>> {
                vec![$(Box::new($migration)),*]
            }

            fn migration_table_name() -> $crate::sea_orm_migration::sea_orm::DynIden {
                use $crate::sea_orm_migration::prelude::IntoIden;
                $crate::sea_orm_migration::prelude::Alias::new($history).into_iden()
            }
        }
    };
}
