//! Storage shared by every Herald service: connecting to SQLite (the embedded default,
//! in WAL mode) or PostgreSQL (production), running a service's own migrations, the one
//! dedupe primitive, ledger retention, and a fresh database per test on either backend.

#![forbid(unsafe_code)]

pub mod dedupe;
pub mod retention;
pub mod schema;
pub mod sql;
pub mod testing;

pub use dedupe::insert_fresh;

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

pub use sea_orm;
pub use sea_orm_migration;

/// PostgreSQL connections of a pool opened by [`connect`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Opens `url` (`sqlite://path?mode=rwc` or `postgres://…`).
///
/// SQLite gets one connection: writes are serialised by SQLite anyway, and a single
/// connection rules out the deadlocks of concurrent deferred transactions. PostgreSQL
/// gets a pool of up to [`DEFAULT_MAX_CONNECTIONS`].
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    connect_pooled(url, DEFAULT_MAX_CONNECTIONS).await
}

/// [`connect`] with a pool of up to `max_connections` on PostgreSQL. Each connection
/// keeps sqlx's cache of prepared statements (100), which holds every statement a
/// service issues, so the hot path parses nothing.
pub async fn connect_pooled(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let is_sqlite = url.starts_with("sqlite:");
    if is_sqlite {
        create_sqlite_parent(url)?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    if is_sqlite {
        options.max_connections(1).min_connections(1);
    } else {
        options.max_connections(max_connections).min_connections(1);
    }
    let db = Database::connect(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", redact(url)))?;
    if db.get_database_backend() == DbBackend::Sqlite {
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA busy_timeout = 5000",
            "PRAGMA foreign_keys = ON",
        ] {
            db.execute_unprepared(pragma).await?;
        }
    }
    Ok(db)
}

/// Connects and brings the schema of the service owning `M` up to date.
pub async fn connect_and_migrate<M: MigratorTrait>(
    url: &str,
) -> anyhow::Result<DatabaseConnection> {
    migrate::<M>(connect(url).await?).await
}

async fn migrate<M: MigratorTrait>(db: DatabaseConnection) -> anyhow::Result<DatabaseConnection> {
    M::up(&db, None)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    Ok(db)
}

/// Opens the database `config` names for `service` and brings its schema up to date.
pub async fn open<M: MigratorTrait>(
    config: &herald_runtime::Config,
    service: herald_runtime::ServiceKind,
) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url(service);
    migrate::<M>(connect_pooled(&url, config.database_max_connections).await?).await
}

/// A readiness probe: true while the database answers.
pub async fn is_reachable(db: &DatabaseConnection) -> bool {
    tokio::time::timeout(Duration::from_secs(2), db.ping())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Readiness that follows the database, for the server's health service.
pub fn readiness(
    db: &DatabaseConnection,
) -> std::sync::Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync> {
    let db = db.clone();
    std::sync::Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { is_reachable(&db).await })
    })
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn create_sqlite_parent(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            anyhow::anyhow!("cannot create data directory {}: {e}", parent.display())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
