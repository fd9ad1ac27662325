//! PostgreSQL's own count of the work a phase caused: commits, and per table the rows
//! written and how it was read (sequential scans and the rows they read, index scans),
//! divided by the events the phase acknowledged. Read from `pg_stat_database` and
//! `pg_stat_user_tables` of the bench database, so it counts every service's statements
//! without touching their code. PostgreSQL publishes a session's counters when it has
//! been idle for up to 10 s, so a snapshot waits that long after the pipeline drained.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// How long after the last statement every session's counters are published.
pub const PUBLISHED_AFTER: Duration = Duration::from_secs(11);

/// Counters of one table: inserted, updated, deleted rows; sequential scans, rows they
/// read; index scans.
type Counters = [i64; 6];
const COLUMNS: [&str; 6] = [
    "n_tup_ins",
    "n_tup_upd",
    "n_tup_del",
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
];

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    commits: i64,
    tables: BTreeMap<String, Counters>,
}

/// Work per acknowledged event between two snapshots.
#[derive(Debug, Clone)]
pub struct Work {
    pub events: u64,
    pub commits: f64,
    /// Per table with any change: the six counters per event.
    pub tables: Vec<(String, [f64; 6])>,
}

pub struct Counter {
    db: DatabaseConnection,
}

impl Counter {
    pub async fn connect(url: &str) -> anyhow::Result<Counter> {
        let db = Database::connect(url)
            .await
            .context("connect to the bench database to read its statistics")?;
        Ok(Counter { db })
    }

    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT xact_commit::bigint AS n FROM pg_stat_database WHERE datname = current_database()",
            ))
            .await?
            .context("no pg_stat_database row")?;
        let commits = row.try_get::<i64>("", "n")?;
        let sql = format!(
            "SELECT relname::text AS name, {} FROM pg_stat_user_tables",
            COLUMNS
                .map(|c| format!("COALESCE({c}, 0)::bigint AS {c}"))
                .join(", ")
        );
        let mut tables = BTreeMap::new();
        for row in self
            .db
            .query_all_raw(Statement::from_string(backend, sql))
            .await?
        {
            let mut counters = [0i64; 6];
            for (value, column) in counters.iter_mut().zip(COLUMNS) {
                *value = row.try_get("", column)?;
            }
            tables.insert(row.try_get::<String>("", "name")?, counters);
        }
        Ok(Snapshot { commits, tables })
    }
}

/// What happened between `before` and `after`, per event of `events`. The counter's own
/// snapshot queries commit too; they are few and left in.
pub fn per_event(before: &Snapshot, after: &Snapshot, events: u64) -> Work {
    let n = events.max(1) as f64;
    let tables = after
        .tables
        .iter()
        .filter_map(|(name, a)| {
            let b = before.tables.get(name).copied().unwrap_or_default();
            let delta: [f64; 6] = std::array::from_fn(|i| (a[i] - b[i]) as f64 / n);
            delta
                .iter()
                .any(|d| *d > 0.0)
                .then(|| (name.clone(), delta))
        })
        .collect();
    Work {
        events,
        commits: (after.commits - before.commits) as f64 / n,
        tables,
    }
}

/// The work as a table, one line per table.
pub fn render(work: &Work) -> String {
    let mut out = format!(
        "  per event ({} events): {:.2} commits\n  {:<28} {:>8} {:>8} {:>8} {:>9} {:>12} {:>9}\n",
        work.events,
        work.commits,
        "table",
        "inserted",
        "updated",
        "deleted",
        "seq scans",
        "rows seq-read",
        "idx scans"
    );
    for (name, d) in &work.tables {
        out.push_str(&format!(
            "  {:<28} {:>8.2} {:>8.2} {:>8.2} {:>9.3} {:>12.1} {:>9.2}\n",
            name, d[0], d[1], d[2], d[3], d[4], d[5]
        ));
    }
    out
}
