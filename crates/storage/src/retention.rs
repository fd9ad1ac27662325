//! Retention of dedupe ledgers: the ids a service has already processed are kept for
//! `ledger_retention_secs` and then deleted by a periodic cleanup that asks the clock
//! what time it is. Deletes go in bounded batches through an index on the time column,
//! so a cleanup never holds a long lock.

use std::time::Duration;

use herald_core::Clock;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};
use tokio_util::sync::CancellationToken;

use crate::sql;

/// A ledger table and the column holding when each entry was written (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    pub table: &'static str,
    pub time_column: &'static str,
}

/// Rows deleted per statement.
const BATCH: usize = 5_000;

/// How often the cleanup runs.
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes the entries of `ledger` written before `before_ms`; returns how many.
pub async fn purge(db: &DatabaseConnection, ledger: Ledger, before_ms: i64) -> Result<u64, DbErr> {
    sql::assert_identifier(ledger.table);
    sql::assert_identifier(ledger.time_column);
    let backend = db.get_database_backend();
    let row_id = sql::row_id(backend);
    let statement = format!(
        "DELETE FROM {t} WHERE {row_id} IN (SELECT {row_id} FROM {t} WHERE {c} < {p} LIMIT {BATCH})",
        t = ledger.table,
        c = ledger.time_column,
        p = sql::param(backend, 1),
    );
    let mut total = 0;
    loop {
        let deleted = db
            .execute_raw(sql::statement(
                backend,
                statement.clone(),
                vec![Value::from(before_ms)],
            ))
            .await?
            .rows_affected();
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Purges `ledgers` of `db` of entries older than the configured retention, now and then
/// every hour on the service's clock, until it shuts down.
pub fn spawn_cleanup(
    launch: &herald_runtime::Launch,
    db: &DatabaseConnection,
    ledgers: Vec<Ledger>,
) {
    spawn_cleanup_on(
        db.clone(),
        ledgers,
        launch.config.ledger_retention(),
        launch.clock.clone(),
        launch.shutdown.clone(),
    );
}

/// Purges `ledgers` of entries older than `retention` on `clock`, now and then every
/// hour, until `shutdown`.
pub fn spawn_cleanup_on(
    db: DatabaseConnection,
    ledgers: Vec<Ledger>,
    retention: Duration,
    clock: Clock,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            // The next run is an hour after this one started, however long it took.
            let started = clock.now();
            let cutoff = started
                .as_millisecond()
                .saturating_sub(herald_core::time::ms(retention));
            for ledger in &ledgers {
                match purge(&db, *ledger, cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        table = ledger.table,
                        deleted = n,
                        "ledger entries past retention deleted"
                    ),
                    Err(error) => {
                        tracing::warn!(table = ledger.table, %error, "ledger cleanup failed, will retry")
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = clock.sleep_until(herald_core::time::add(started, EVERY)) => {}
            }
        }
    });
}
