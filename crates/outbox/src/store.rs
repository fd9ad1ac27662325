//! The outbox table: inserting items in the caller's transaction, and the leased-row
//! operations of [`herald_leases`] on it.

use std::time::Duration;

use herald_core::Clock;
use herald_leases::{Claim, LeasedTable};
use herald_storage::sql;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};

use crate::{Item, NewItem};

/// Rows per INSERT statement, well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

pub(crate) struct Store {
    pub(crate) rows: LeasedTable,
}

impl Store {
    pub(crate) fn new(
        db: DatabaseConnection,
        table: String,
        owner: String,
        lease: Duration,
        clock: Clock,
    ) -> Self {
        Store {
            rows: LeasedTable::new(db, table, owner, lease, clock),
        }
    }

    /// Inserts the items leased to this replica (it will send them from memory), returning
    /// their ids in order and their creation time.
    pub(crate) async fn insert<C: ConnectionTrait>(
        &self,
        txn: &C,
        items: &[NewItem],
    ) -> Result<(Vec<i64>, i64), DbErr> {
        let backend = txn.get_database_backend();
        let mut ids = Vec::with_capacity(items.len());
        let created = self.rows.now_ms();
        let until = self.rows.lease_until();
        for chunk in items.chunks(INSERT_CHUNK) {
            let mut rows = Vec::with_capacity(chunk.len());
            let mut values = Vec::with_capacity(chunk.len() * 7);
            for item in chunk {
                rows.push(format!("({})", sql::params(backend, values.len() + 1, 7)));
                values.extend([
                    Value::from(item.destination),
                    Value::from(item.key.clone()),
                    Value::from(item.payload.clone()),
                    Value::from(item.traceparent.clone()),
                    Value::from(created),
                    Value::from(self.rows.owner().to_owned()),
                    Value::from(until),
                ]);
            }
            let statement = format!(
                "INSERT INTO {} (destination, partition_key, payload, traceparent, created_at, lease_owner, lease_until) \
                 VALUES {} RETURNING id",
                self.rows.table(),
                rows.join(", ")
            );
            let mut chunk_ids = txn
                .query_all_raw(sql::statement(backend, statement, values))
                .await?
                .iter()
                .map(|row| row.try_get::<i64>("", "id"))
                .collect::<Result<Vec<_>, _>>()?;
            // Ids are assigned in VALUES order; RETURNING order is not promised.
            chunk_ids.sort_unstable();
            ids.extend(chunk_ids);
        }
        Ok((ids, created))
    }

    /// Leases up to `limit` sendable rows of `destination`, oldest first.
    pub(crate) async fn claim(&self, destination: &str, limit: usize) -> Result<Vec<Item>, DbErr> {
        let rows = self
            .rows
            .claim(Claim {
                only: Some(("destination", Value::from(destination.to_owned()))),
                due: None,
                order_by: "id",
                limit,
                returning: "id, partition_key, payload, traceparent, created_at, attempts",
            })
            .await?;
        let mut items = rows
            .iter()
            .map(|row| {
                Ok(Item {
                    id: row.try_get("", "id")?,
                    key: row.try_get("", "partition_key")?,
                    payload: row.try_get("", "payload")?,
                    traceparent: row.try_get("", "traceparent")?,
                    created_ms: row.try_get("", "created_at")?,
                    // The claim itself counted the attempt about to be made.
                    attempts: u32::try_from(row.try_get::<i32>("", "attempts")? - 1).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        items.sort_unstable_by_key(|i| i.id);
        Ok(items)
    }

    pub(crate) async fn count(&self, destination: &str) -> Result<u64, DbErr> {
        self.rows
            .count(Some(("destination", Value::from(destination.to_owned()))))
            .await
    }

    pub(crate) async fn count_parked(&self, destination: &str) -> Result<u64, DbErr> {
        self.rows
            .count_parked(Some(("destination", Value::from(destination.to_owned()))))
            .await
    }
}
