//! The outbox table: SQL for inserting, leasing, renewing, deleting and parking items,
//! written once for both PostgreSQL and SQLite.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};

use crate::{Item, NewItem};

/// Rows per INSERT statement, well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

pub(crate) struct Store {
    db: DatabaseConnection,
    table: String,
    owner: String,
    lease: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

impl Store {
    pub(crate) fn new(
        db: DatabaseConnection,
        table: String,
        owner: String,
        lease: Duration,
    ) -> Self {
        assert!(
            !table.is_empty() && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "outbox table name must be an SQL identifier"
        );
        Store {
            db,
            table,
            owner,
            lease,
        }
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    fn lease_until(&self) -> i64 {
        now_ms() + self.lease.as_millis() as i64
    }

    /// `n` placeholders starting at parameter `first` (1-based), comma separated.
    fn params(&self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| match self.backend() {
                DbBackend::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn statement(&self, sql: String, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// Inserts the items leased to this replica (it will send them from memory), returning
    /// their ids in order.
    pub(crate) async fn insert<C: ConnectionTrait>(
        &self,
        txn: &C,
        items: &[NewItem],
    ) -> Result<Vec<i64>, DbErr> {
        let mut ids = Vec::with_capacity(items.len());
        let created = now_ms();
        let until = self.lease_until();
        for chunk in items.chunks(INSERT_CHUNK) {
            let mut rows = Vec::with_capacity(chunk.len());
            let mut values = Vec::with_capacity(chunk.len() * 7);
            for item in chunk {
                rows.push(format!("({})", self.params(values.len() + 1, 7)));
                values.extend([
                    Value::from(item.destination),
                    Value::from(item.key.clone()),
                    Value::from(item.payload.clone()),
                    Value::from(item.traceparent.clone()),
                    Value::from(created),
                    Value::from(self.owner.clone()),
                    Value::from(until),
                ]);
            }
            let sql = format!(
                "INSERT INTO {} (destination, partition_key, payload, traceparent, created_at, lease_owner, lease_until) \
                 VALUES {} RETURNING id",
                self.table,
                rows.join(", ")
            );
            let mut chunk_ids = txn
                .query_all_raw(self.statement(sql, values))
                .await?
                .iter()
                .map(|row| row.try_get::<i64>("", "id"))
                .collect::<Result<Vec<_>, _>>()?;
            // Ids are assigned in VALUES order; RETURNING order is not promised.
            chunk_ids.sort_unstable();
            ids.extend(chunk_ids);
        }
        Ok(ids)
    }

    /// Leases up to `limit` sendable rows of `destination` that are this replica's or
    /// whose lease ran out, oldest first. On PostgreSQL, rows another replica is claiming
    /// at this moment are skipped rather than waited for.
    pub(crate) async fn claim(&self, destination: &str, limit: usize) -> Result<Vec<Item>, DbErr> {
        let lock = match self.backend() {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let p = |i: usize| self.params(i, 1);
        let sql = format!(
            "UPDATE {t} SET lease_owner = {owner}, lease_until = {until}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM {t} WHERE destination = {dest} AND failed_at IS NULL \
             AND (lease_owner = {owner2} OR lease_until < {now}) ORDER BY id LIMIT {limit}{lock}) \
             RETURNING id, partition_key, payload, traceparent",
            t = self.table,
            owner = p(1),
            until = p(2),
            dest = p(3),
            owner2 = p(4),
            now = p(5),
            limit = p(6),
        );
        let values = vec![
            Value::from(self.owner.clone()),
            Value::from(self.lease_until()),
            Value::from(destination.to_owned()),
            Value::from(self.owner.clone()),
            Value::from(now_ms()),
            Value::from(limit as i64),
        ];
        let mut items = self
            .db
            .query_all_raw(self.statement(sql, values))
            .await?
            .iter()
            .map(|row| {
                Ok(Item {
                    id: row.try_get("", "id")?,
                    key: row.try_get("", "partition_key")?,
                    payload: row.try_get("", "payload")?,
                    traceparent: row.try_get("", "traceparent")?,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        items.sort_unstable_by_key(|i| i.id);
        Ok(items)
    }

    /// Extends this replica's lease on `ids`; returns the ids it still holds (a row that
    /// another replica took over after the lease ran out is no longer ours to send).
    pub(crate) async fn renew(&self, ids: &[i64]) -> Result<Vec<i64>, DbErr> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE {} SET lease_until = {} WHERE lease_owner = {} AND id IN ({}) RETURNING id",
            self.table,
            self.params(1, 1),
            self.params(2, 1),
            self.params(3, ids.len())
        );
        let mut values = vec![
            Value::from(self.lease_until()),
            Value::from(self.owner.clone()),
        ];
        values.extend(ids.iter().map(|id| Value::from(*id)));
        self.db
            .query_all_raw(self.statement(sql, values))
            .await?
            .iter()
            .map(|row| row.try_get::<i64>("", "id"))
            .collect()
    }

    /// Deletes sent items.
    pub(crate) async fn delete(&self, ids: &[i64]) -> Result<(), DbErr> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM {} WHERE id IN ({})",
            self.table,
            self.params(1, ids.len())
        );
        let values = ids.iter().map(|id| Value::from(*id)).collect();
        self.db.execute_raw(self.statement(sql, values)).await?;
        Ok(())
    }

    /// Parks an item the downstream rejected, keeping it for inspection.
    pub(crate) async fn fail(&self, id: i64, error: &str) -> Result<(), DbErr> {
        let sql = format!(
            "UPDATE {} SET failed_at = {}, last_error = {}, lease_owner = NULL WHERE id = {}",
            self.table,
            self.params(1, 1),
            self.params(2, 1),
            self.params(3, 1)
        );
        let values = vec![
            Value::from(now_ms()),
            Value::from(error.to_owned()),
            Value::from(id),
        ];
        self.db.execute_raw(self.statement(sql, values)).await?;
        Ok(())
    }

    async fn count_where(&self, destination: &str, failed: bool) -> Result<u64, DbErr> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE destination = {} AND failed_at IS {}NULL",
            self.table,
            self.params(1, 1),
            if failed { "NOT " } else { "" }
        );
        let row = self
            .db
            .query_one_raw(self.statement(sql, vec![Value::from(destination.to_owned())]))
            .await?
            .ok_or_else(|| DbErr::Custom("count returned no row".into()))?;
        Ok(row.try_get::<i64>("", "n")? as u64)
    }

    pub(crate) async fn count(&self, destination: &str) -> Result<u64, DbErr> {
        self.count_where(destination, false).await
    }

    pub(crate) async fn count_failed(&self, destination: &str) -> Result<u64, DbErr> {
        self.count_where(destination, true).await
    }
}
