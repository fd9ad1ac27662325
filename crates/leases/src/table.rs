//! The statements on one leased table, written once for PostgreSQL and SQLite.

use std::time::Duration;

use herald_core::Clock;
use herald_storage::sql;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, TransactionTrait, Value,
};
use sea_orm_migration::prelude::{Alias, ColumnDef};

/// The `id` column of a leased table: an auto-incrementing 64-bit key (SQLite only
/// auto-increments an INTEGER PRIMARY KEY, which is 64-bit there).
pub fn id_column(backend: DbBackend) -> ColumnDef {
    let mut id = ColumnDef::new(Alias::new("id"));
    match backend {
        DbBackend::Sqlite => id.integer(),
        _ => id.big_integer(),
    };
    id.not_null().auto_increment().primary_key().to_owned()
}

/// The lease columns every leased table has (after its own `id` and payload columns):
/// `created_at`, `lease_owner`, `lease_until`, `attempts`, `failed_at`, `last_error`.
pub fn lease_columns() -> Vec<ColumnDef> {
    let col = |name: &str| ColumnDef::new(Alias::new(name));
    vec![
        col("created_at").big_integer().not_null().to_owned(),
        col("lease_owner").text().null().to_owned(),
        col("lease_until")
            .big_integer()
            .not_null()
            .default(0)
            .to_owned(),
        col("attempts").integer().not_null().default(0).to_owned(),
        col("failed_at").big_integer().null().to_owned(),
        col("last_error").text().null().to_owned(),
    ]
}

/// A leased table worked by this replica.
#[derive(Clone)]
pub struct LeasedTable {
    db: DatabaseConnection,
    table: String,
    owner: String,
    lease: Duration,
    clock: Clock,
}

/// Which rows a [`LeasedTable::claim`] takes.
#[derive(Debug, Clone, Default)]
pub struct Claim<'a> {
    /// Only rows whose column equals the value, e.g. `("destination", "trigger")`.
    pub only: Option<(&'a str, Value)>,
    /// Only rows whose column (milliseconds) is not after now, e.g. a timer's `due_at`.
    pub due: Option<&'a str>,
    /// The order rows are taken in, e.g. `id` or `due_at, id`.
    pub order_by: &'a str,
    /// At most this many rows.
    pub limit: usize,
    /// The columns to return, e.g. `id, payload`.
    pub returning: &'a str,
}

/// A parked row, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub id: i64,
    pub created_at: i64,
    pub failed_at: i64,
    pub attempts: i32,
    pub last_error: String,
}

impl LeasedTable {
    /// The leased table `table` of `db`, worked by the replica `owner`, which holds what it
    /// claims for `lease` on `clock`.
    ///
    /// # Panics
    /// When `table` is not an SQL identifier (table names come from code).
    pub fn new(
        db: DatabaseConnection,
        table: impl Into<String>,
        owner: impl Into<String>,
        lease: Duration,
        clock: Clock,
    ) -> LeasedTable {
        let table = table.into();
        sql::assert_identifier(&table);
        LeasedTable {
            db,
            table,
            owner: owner.into(),
            lease,
            clock,
        }
    }

    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// This replica's name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The clock leases are measured on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// How long a claim holds.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The backend, for statements.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Now, in milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// When a lease taken now runs out.
    pub fn lease_until(&self) -> i64 {
        self.now_ms()
            .saturating_add(herald_core::time::ms(self.lease))
    }

    fn p(&self, i: usize) -> String {
        sql::param(self.backend(), i)
    }

    fn ids(&self, first: usize, ids: &[i64]) -> (String, Vec<Value>) {
        (
            sql::params(self.backend(), first, ids.len()),
            ids.iter().map(|id| Value::from(*id)).collect(),
        )
    }

    async fn query(&self, sql: String, values: Vec<Value>) -> Result<Vec<QueryResult>, DbErr> {
        self.db
            .query_all_raw(sql::statement(self.backend(), sql, values))
            .await
    }

    async fn execute(&self, sql: String, values: Vec<Value>) -> Result<u64, DbErr> {
        Ok(self
            .db
            .execute_raw(sql::statement(self.backend(), sql, values))
            .await?
            .rows_affected())
    }

    /// Leases up to `claim.limit` live rows (not parked) that are this replica's or whose
    /// lease ran out, and that match `claim`; counts an attempt on each. Rows another
    /// replica is claiming at this moment are skipped, not waited for.
    pub async fn claim(&self, claim: Claim<'_>) -> Result<Vec<QueryResult>, DbErr> {
        let (sql, values) = self.claim_statement(&claim);
        self.run_claim(sql, values).await
    }

    /// The plan the database chooses for `claim`, under the settings a claim runs with
    /// (PostgreSQL's `EXPLAIN`, SQLite's `EXPLAIN QUERY PLAN`), one line per node: for
    /// tests and operators checking that a claim walks an index.
    pub async fn explain_claim(&self, claim: Claim<'_>) -> Result<String, DbErr> {
        let (sql, values) = self.claim_statement(&claim);
        let (prefix, column) = match self.backend() {
            DbBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
            _ => ("EXPLAIN QUERY PLAN", "detail"),
        };
        let rows = self.run_claim(format!("{prefix} {sql}"), values).await?;
        let lines = rows
            .iter()
            .map(|row| row.try_get::<String>("", column))
            .collect::<Result<Vec<_>, DbErr>>()?;
        Ok(lines.join("\n"))
    }

    fn claim_statement(&self, claim: &Claim<'_>) -> (String, Vec<Value>) {
        let now = self.now_ms();
        let mut values = vec![
            Value::from(self.owner.clone()),
            Value::from(self.lease_until()),
            Value::from(self.owner.clone()),
            Value::from(now),
        ];
        let mut filter = String::new();
        if let Some((column, value)) = &claim.only {
            sql::assert_identifier(column);
            values.push(value.clone());
            filter.push_str(&format!(" AND {column} = {}", self.p(values.len())));
        }
        if let Some(column) = claim.due {
            sql::assert_identifier(column);
            values.push(Value::from(now));
            filter.push_str(&format!(" AND {column} <= {}", self.p(values.len())));
        }
        let lock = match self.backend() {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE {t} SET lease_owner = {p1}, lease_until = {p2}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM {t} WHERE failed_at IS NULL \
             AND (lease_owner = {p3} OR lease_until < {p4}){filter} \
             ORDER BY {order} LIMIT {limit}{lock}) RETURNING {returning}",
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
            p3 = self.p(3),
            p4 = self.p(4),
            order = claim.order_by,
            limit = claim.limit,
            returning = claim.returning,
        );
        (sql, values)
    }

    async fn run_claim(&self, sql: String, values: Vec<Value>) -> Result<Vec<QueryResult>, DbErr> {
        if self.backend() != DbBackend::Postgres {
            return self.query(sql, values).await;
        }
        // A claim takes rows in an order an index of the table gives (the table's migration
        // creates it). Without statistics (a new table, or a bulk load autovacuum has not
        // analyzed yet) PostgreSQL guesses that few rows match and plans a scan and sort of
        // the whole table instead: ~120 ms a claim at a million rows, not ~5 ms. Ruling the
        // sort out leaves the index walk, whatever the statistics say.
        let txn = self.db.begin().await?;
        txn.execute_unprepared("SET LOCAL enable_sort = off")
            .await?;
        let rows = txn
            .query_all_raw(sql::statement(self.backend(), sql, values))
            .await?;
        txn.commit().await?;
        Ok(rows)
    }

    /// Extends this replica's lease on `ids`; returns the ids it still holds (a row that
    /// another replica took over after the lease ran out is no longer ours).
    pub async fn renew(&self, ids: &[i64]) -> Result<Vec<i64>, DbErr> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (list, mut values) = self.ids(3, ids);
        values.splice(
            0..0,
            [
                Value::from(self.lease_until()),
                Value::from(self.owner.clone()),
            ],
        );
        let sql = format!(
            "UPDATE {} SET lease_until = {} WHERE lease_owner = {} AND id IN ({list}) RETURNING id",
            self.table,
            self.p(1),
            self.p(2)
        );
        self.query(sql, values)
            .await?
            .iter()
            .map(|row| row.try_get::<i64>("", "id"))
            .collect()
    }

    /// Deletes finished rows.
    pub async fn complete(&self, ids: &[i64]) -> Result<(), DbErr> {
        if ids.is_empty() {
            return Ok(());
        }
        let (list, values) = self.ids(1, ids);
        self.execute(
            format!("DELETE FROM {} WHERE id IN ({list})", self.table),
            values,
        )
        .await?;
        Ok(())
    }

    /// Parks `ids`: they are kept with `error` and never claimed again until replayed.
    pub async fn park(&self, ids: &[i64], error: &str) -> Result<(), DbErr> {
        if ids.is_empty() {
            return Ok(());
        }
        let (list, mut values) = self.ids(3, ids);
        values.splice(
            0..0,
            [Value::from(self.now_ms()), Value::from(error.to_owned())],
        );
        let sql = format!(
            "UPDATE {} SET failed_at = {}, last_error = {}, lease_owner = NULL, lease_until = 0 \
             WHERE id IN ({list})",
            self.table,
            self.p(1),
            self.p(2)
        );
        self.execute(sql, values).await?;
        Ok(())
    }

    /// Live rows (optionally only those whose `column` equals `value`).
    pub async fn count(&self, only: Option<(&str, Value)>) -> Result<u64, DbErr> {
        self.count_where("failed_at IS NULL", only).await
    }

    /// Parked rows (optionally only those whose `column` equals `value`).
    pub async fn count_parked(&self, only: Option<(&str, Value)>) -> Result<u64, DbErr> {
        self.count_where("failed_at IS NOT NULL", only).await
    }

    async fn count_where(&self, state: &str, only: Option<(&str, Value)>) -> Result<u64, DbErr> {
        let mut values = Vec::new();
        let mut filter = String::new();
        if let Some((column, value)) = only {
            sql::assert_identifier(column);
            values.push(value);
            filter = format!(" AND {column} = {}", self.p(1));
        }
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE {state}{filter}",
            self.table
        );
        let rows = self.query(sql, values).await?;
        let n = match rows.first() {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` parked rows, oldest first.
    pub async fn parked(&self, limit: usize) -> Result<Vec<Parked>, DbErr> {
        let sql = format!(
            "SELECT id, created_at, failed_at, attempts, last_error FROM {} \
             WHERE failed_at IS NOT NULL ORDER BY id LIMIT {limit}",
            self.table
        );
        self.query(sql, Vec::new())
            .await?
            .iter()
            .map(|row| {
                Ok(Parked {
                    id: row.try_get("", "id")?,
                    created_at: row.try_get("", "created_at")?,
                    failed_at: row.try_get("", "failed_at")?,
                    attempts: row.try_get("", "attempts")?,
                    last_error: row
                        .try_get::<Option<String>>("", "last_error")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Puts parked rows back to work: `ids`, or every parked row when `ids` is `None`.
    /// Their attempts and age start over. Returns how many were replayed.
    pub async fn replay(&self, ids: Option<&[i64]>) -> Result<u64, DbErr> {
        let mut values = vec![Value::from(self.now_ms())];
        let filter = match ids {
            Some([]) => return Ok(0),
            Some(ids) => {
                let (list, more) = self.ids(2, ids);
                values.extend(more);
                format!(" AND id IN ({list})")
            }
            None => String::new(),
        };
        let sql = format!(
            "UPDATE {} SET failed_at = NULL, last_error = NULL, attempts = 0, created_at = {}, \
             lease_owner = NULL, lease_until = 0 WHERE failed_at IS NOT NULL{filter}",
            self.table,
            self.p(1)
        );
        self.execute(sql, values).await
    }
}
