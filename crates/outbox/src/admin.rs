//! What an operator does with parked items: list them and put them back to work. Used by
//! `herald outbox list|replay`, which opens the service's database directly.

use std::time::Duration;

use herald_core::Clock;
use herald_leases::{LeasedTable, Parked};
use sea_orm::{DatabaseConnection, DbErr};

fn table(db: &DatabaseConnection, table: &str, clock: Clock) -> LeasedTable {
    LeasedTable::new(
        db.clone(),
        table,
        "herald-outbox-admin",
        Duration::ZERO,
        clock,
    )
}

/// Up to `limit` parked items of the outbox `outbox_table`, oldest first.
pub async fn list_parked(
    db: &DatabaseConnection,
    outbox_table: &str,
    limit: usize,
    clock: Clock,
) -> Result<Vec<Parked>, DbErr> {
    table(db, outbox_table, clock).parked(limit).await
}

/// Puts parked items of `outbox_table` back in line (`ids`, or all when `None`); the
/// running relays take them at their next recovery scan (within one lease, 30 s).
/// Returns how many were replayed.
pub async fn replay(
    db: &DatabaseConnection,
    outbox_table: &str,
    ids: Option<&[i64]>,
    clock: Clock,
) -> Result<u64, DbErr> {
    table(db, outbox_table, clock).replay(ids).await
}
