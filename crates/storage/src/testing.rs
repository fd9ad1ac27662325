//! A fresh, empty database per test, on the backend named by `HERALD_TEST_DATABASE`:
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
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh database on the backend chosen by the environment.
    pub async fn new() -> TestDatabase {
        let backend = Backend::from_env();
        let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => TestDatabase {
                backend,
                dir: Some(tempfile::tempdir().expect("temporary directory")),
                admin_url: String::new(),
                name,
            },
            Backend::Postgres => {
                let admin_url = std::env::var("HERALD_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let admin = Database::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                TestDatabase {
                    backend,
                    dir: None,
                    admin_url,
                    name,
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
        match self.backend {
            Backend::Sqlite => {
                let dir = self
                    .dir
                    .as_ref()
                    .expect("sqlite test database has a directory");
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("{service}.db")).display()
                )
            }
            Backend::Postgres => {
                let base = self
                    .admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&self.admin_url);
                format!("{base}/{}", self.name)
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
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
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}
