//! The timers table: scheduling and cancelling in the caller's transaction, and firing
//! through the leased-row operations of [`herald_leases`].

use std::collections::HashMap;
use std::time::Duration;

use herald_core::Clock;
use herald_leases::{Claim, LeasedTable};
use herald_storage::sql;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};

use crate::Timer;

/// Rows per INSERT statement, under SQLite's bound-parameter limit.
const CHUNK: usize = 1_000;

/// A claimed timer and the version of it that was claimed.
pub(crate) struct Claimed {
    pub(crate) id: i64,
    pub(crate) generation: i64,
    pub(crate) timer: Timer,
}

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
    ) -> Store {
        Store {
            rows: LeasedTable::new(db, table, owner, lease, clock),
        }
    }

    fn table(&self) -> &str {
        self.rows.table()
    }

    /// Inserts or replaces `timers` (key, due, payload); the last of a repeated key wins.
    pub(crate) async fn schedule<C: ConnectionTrait>(
        &self,
        txn: &C,
        timers: &[(&str, i64, Vec<u8>)],
    ) -> Result<(), DbErr> {
        let backend = txn.get_database_backend();
        // One statement cannot touch a row twice: keep the last timer of each key.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, (key, _, _)) in timers.iter().enumerate() {
            last.insert(key, i);
        }
        let mut unique: Vec<&(&str, i64, Vec<u8>)> = timers
            .iter()
            .enumerate()
            .filter(|(i, (key, _, _))| last[key] == *i)
            .map(|(_, t)| t)
            .collect();
        // A fixed order, so concurrent schedulers lock rows in the same order.
        unique.sort_by_key(|(key, _, _)| *key);
        let now = self.rows.now_ms();
        let t = self.table();
        for chunk in unique.chunks(CHUNK) {
            let mut rows = Vec::with_capacity(chunk.len());
            let mut values = Vec::with_capacity(chunk.len() * 4);
            for (key, due, payload) in chunk {
                rows.push(format!(
                    "({}, 0, 0)",
                    sql::params(backend, values.len() + 1, 4)
                ));
                values.extend([
                    Value::from((*key).to_owned()),
                    Value::from(*due),
                    Value::from(payload.clone()),
                    Value::from(now),
                ]);
            }
            let statement = format!(
                "INSERT INTO {t} (timer_key, due_at, payload, created_at, generation, lease_until) \
                 VALUES {} ON CONFLICT (timer_key) DO UPDATE SET due_at = excluded.due_at, \
                 payload = excluded.payload, created_at = excluded.created_at, \
                 generation = {t}.generation + 1, lease_owner = NULL, lease_until = 0, \
                 attempts = 0, failed_at = NULL, last_error = NULL",
                rows.join(", ")
            );
            txn.execute_raw(sql::statement(backend, statement, values))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn cancel<C: ConnectionTrait>(
        &self,
        txn: &C,
        key: &str,
    ) -> Result<bool, DbErr> {
        let backend = txn.get_database_backend();
        let statement = format!(
            "DELETE FROM {} WHERE timer_key = {}",
            self.table(),
            sql::param(backend, 1)
        );
        let result = txn
            .execute_raw(sql::statement(
                backend,
                statement,
                vec![Value::from(key.to_owned())],
            ))
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// The due time of the next timer any replica could claim now, if there is one.
    pub(crate) async fn next_due(&self) -> Result<Option<i64>, DbErr> {
        let backend = self.rows.backend();
        let statement = format!(
            "SELECT due_at FROM {} WHERE failed_at IS NULL AND lease_until < {} \
             ORDER BY due_at LIMIT 1",
            self.table(),
            sql::param(backend, 1)
        );
        let row = self
            .rows
            .db()
            .query_one_raw(sql::statement(
                backend,
                statement,
                vec![Value::from(self.rows.now_ms())],
            ))
            .await?;
        row.map(|r| r.try_get::<i64>("", "due_at")).transpose()
    }

    /// Which timers a claim takes: due ones, earliest first, through the due-time index.
    fn due(limit: usize) -> Claim<'static> {
        Claim {
            only: None,
            due: Some("due_at"),
            order_by: "due_at, id",
            limit,
            returning: "id, generation, timer_key, due_at, payload, attempts",
        }
    }

    /// The database's plan for a claim of `limit` due timers.
    pub(crate) async fn explain_claim(&self, limit: usize) -> Result<String, DbErr> {
        self.rows.explain_claim(Store::due(limit)).await
    }

    /// Leases up to `limit` due timers, earliest first.
    pub(crate) async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, DbErr> {
        let rows = self.rows.claim(Store::due(limit)).await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.try_get("", "id")?,
                    generation: row.try_get("", "generation")?,
                    timer: Timer {
                        key: row.try_get("", "timer_key")?,
                        due_ms: row.try_get("", "due_at")?,
                        payload: row.try_get("", "payload")?,
                        attempts: u32::try_from(row.try_get::<i32>("", "attempts")?).unwrap_or(0),
                    },
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        claimed.sort_by_key(|c| (c.timer.due_ms, c.id));
        Ok(claimed)
    }

    /// Deletes the claimed versions of fired timers (a timer replaced meanwhile stays).
    pub(crate) async fn complete(&self, fired: &[(i64, i64)]) -> Result<(), DbErr> {
        let backend = self.rows.backend();
        // Three parameters a timer: chunks stay under SQLite's bound-parameter limit.
        for chunk in fired.chunks(CHUNK) {
            let mut values: Vec<Value> = chunk.iter().map(|(id, _)| Value::from(*id)).collect();
            let ids = sql::params(backend, 1, chunk.len());
            let mut pairs = Vec::with_capacity(chunk.len());
            for (id, generation) in chunk {
                pairs.push(format!("({})", sql::params(backend, values.len() + 1, 2)));
                values.extend([Value::from(*id), Value::from(*generation)]);
            }
            // `id IN (…)` probes the primary key once with the whole list (a row-value IN
            // alone is planned as one OR-ed probe per pair); the pairs then keep only the
            // claimed versions.
            let statement = format!(
                "DELETE FROM {} WHERE id IN ({ids}) AND (id, generation) IN ({})",
                self.table(),
                pairs.join(", ")
            );
            self.rows
                .db()
                .execute_raw(sql::statement(backend, statement, values))
                .await?;
        }
        Ok(())
    }

    /// Releases a claimed version to fire again at `retry_at`, recording `error`.
    pub(crate) async fn retry(
        &self,
        claimed: &Claimed,
        retry_at: i64,
        error: &str,
    ) -> Result<(), DbErr> {
        self.update_claimed(claimed, "due_at", Value::from(retry_at), error)
            .await
    }

    /// Parks a claimed version with `error`.
    pub(crate) async fn park(&self, claimed: &Claimed, error: &str) -> Result<(), DbErr> {
        self.update_claimed(claimed, "failed_at", Value::from(self.rows.now_ms()), error)
            .await
    }

    async fn update_claimed(
        &self,
        claimed: &Claimed,
        column: &str,
        value: Value,
        error: &str,
    ) -> Result<(), DbErr> {
        let backend = self.rows.backend();
        let p = |i| sql::param(backend, i);
        let statement = format!(
            "UPDATE {} SET {column} = {}, last_error = {}, lease_owner = NULL, lease_until = 0 \
             WHERE id = {} AND generation = {}",
            self.table(),
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let values = vec![
            value,
            Value::from(error.to_owned()),
            Value::from(claimed.id),
            Value::from(claimed.generation),
        ];
        self.rows
            .db()
            .execute_raw(sql::statement(backend, statement, values))
            .await?;
        Ok(())
    }
}
