//! Scratch databases. A fresh, empty database per test, on the backend named by
//! `HERALD_TEST_DATABASE`:
//! `sqlite` (the default: a temporary file) or `postgres` (a new database on the server
//! at `HERALD_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! dropped when the test ends).

use sea_orm::{ConnectionTrait, Database};

/// Which backend the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend chosen by `HERALD_TEST_DATABASE`.
    pub fn from_env() -> Backend {
        match std::env::var("HERALD_TEST_DATABASE").as_deref() {
            Ok("postgres") | Ok("postgresql") | Ok("pg") => Backend::Postgres,
            Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("HERALD_TEST_DATABASE={other:?}: expected sqlite or postgres"),
        }
    }
}

/// A database that exists for the life of this value.
pub struct TestDatabase {
    backend: Backend,
    dir: Option<tempfile::TempDir>,
    postgres: Option<ScratchPostgres>,
}

impl TestDatabase {
    /// Creates a fresh database on the backend chosen by the environment.
    pub async fn new() -> TestDatabase {
        let backend = Backend::from_env();
        match backend {
            Backend::Sqlite => TestDatabase {
                backend,
                dir: Some(tempfile::tempdir().expect("temporary directory")),
                postgres: None,
            },
            Backend::Postgres => {
                let admin_url = std::env::var("HERALD_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let postgres = ScratchPostgres::create(&admin_url, "herald_test")
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}"));
                TestDatabase {
                    backend,
                    dir: None,
                    postgres: Some(postgres),
                }
            }
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL of the database for `service`: on SQLite a file per service (as the
    /// embedded default does), on PostgreSQL one shared database (as production may).
    pub fn url(&self, service: &str) -> String {
        match (&self.dir, &self.postgres) {
            (_, Some(postgres)) => postgres.url(),
            (Some(dir), None) => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{service}.db")).display()
            ),
            (None, None) => {
                unreachable!("a test database has a directory or a PostgreSQL database")
            }
        }
    }
}

/// A PostgreSQL database created on the server of `admin_url` for the life of this value
/// (a test, a benchmark run) and dropped, connections and all, with it.
pub struct ScratchPostgres {
    admin_url: String,
    name: String,
}

impl ScratchPostgres {
    /// Creates `<prefix>_<random>` through the admin database at `admin_url`.
    pub async fn create(admin_url: &str, prefix: &str) -> anyhow::Result<ScratchPostgres> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach PostgreSQL at {}: {e}",
                crate::redact(admin_url)
            )
        })?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot create database {name}: {e}"))?;
        let _ = admin.close().await;
        Ok(ScratchPostgres {
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// The URL of the scratch database.
    pub fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&self.admin_url);
        format!("{base}/{}", self.name)
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime; do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let admin = Database::connect(&admin_url).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                let _ = admin.close().await;
                Ok::<_, anyhow::Error>(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop database {}: {error:#}", self.name),
            Err(_) => eprintln!("could not drop database {}", self.name),
        }
    }
}
