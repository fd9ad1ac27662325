//! The five services as separate `herald serve <service>` processes on loopback ports,
//! configured by environment variables only, and the database they share. Everything is
//! undone in `Drop`: children killed, the PostgreSQL database dropped, temp files removed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_runtime::Secret;
use herald_runtime::ServiceKind;
use herald_runtime::auth::{Scope, WorkspaceConfig, generate_api_key, random_token};
use herald_storage::testing::ScratchPostgres;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::args::Backend;

/// The workspace the bench acts in.
pub const WORKSPACE: &str = "bench";

/// The `herald` binary built next to this one (`target/release/herald`).
pub fn herald_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate the bench executable")?;
    let dir = me
        .parent()
        .context("the bench executable has no directory")?;
    let herald = dir.join("herald");
    if !herald.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release --bin herald` \
             (`just bench` does both)",
            herald.display()
        );
    }
    Ok(herald)
}

/// Is something listening on PostgreSQL's port on loopback?
pub fn postgres_answers() -> bool {
    std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], 5432)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Five running service processes and the credentials to call them.
pub struct Fleet {
    children: Vec<(ServiceKind, Child)>,
    /// When the processes were started, and how long each took to answer SERVING.
    started: Instant,
    ready: Vec<(ServiceKind, Duration)>,
    addrs: HashMap<ServiceKind, SocketAddr>,
    /// Server API key with the ingest and admin scopes.
    pub key: String,
    /// The key of service-to-service calls (e.g. Deliver).
    pub internal_key: String,
    /// The workspace and its user-token secret.
    pub workspace: WorkspaceConfig,
    /// Where the service logs (and SQLite files) are.
    dir: PathBuf,
    /// The shared PostgreSQL database, when on PostgreSQL.
    database_url: Option<String>,
    // Dropped after the children are killed (see `Drop`), in this order.
    _db: Option<ScratchPostgres>,
    _tempdir: tempfile::TempDir,
}

/// A free loopback port: bind `127.0.0.1:0`, read the port, release it.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

impl Fleet {
    /// Starts the five services and waits until each answers health SERVING.
    pub async fn start(backend: Backend, postgres_url: &str) -> anyhow::Result<Fleet> {
        let herald = herald_binary()?;
        let tempdir = tempfile::Builder::new()
            .prefix("herald-bench-")
            .tempdir()
            .context("create a temporary directory")?;
        let dir = tempdir.path().to_path_buf();
        let db = match backend {
            Backend::Postgres => Some(ScratchPostgres::create(postgres_url, "herald_bench").await?),
            Backend::Sqlite => None,
        };

        let (key, entry) = generate_api_key(WORKSPACE, &[Scope::Ingest, Scope::Admin]);
        let workspace = WorkspaceConfig {
            id: WORKSPACE.into(),
            user_token_secret: Secret::new(random_token()),
            time_zone: None,
            allow_user_identify: false,
        };
        let internal_key = random_token();

        let mut addrs = HashMap::new();
        for kind in ServiceKind::ALL {
            addrs.insert(kind, free_port()?);
        }
        let url = |k: ServiceKind| format!("http://{}", addrs[&k]);
        let mut fleet = Fleet {
            children: Vec::new(),
            started: Instant::now(),
            ready: Vec::new(),
            addrs: addrs.clone(),
            key: key.expose().to_owned(),
            internal_key: internal_key.clone(),
            workspace: workspace.clone(),
            dir: dir.clone(),
            database_url: None,
            _db: db,
            _tempdir: tempdir,
        };
        let api_keys = format!(
            r#"[{{workspace="{WORKSPACE}", scopes=["ingest","admin"], sha256="{}"}}]"#,
            entry.sha256
        );
        let workspaces = format!(
            r#"[{{id="{WORKSPACE}", user_token_secret="{}"}}]"#,
            workspace.user_token_secret.expose()
        );
        let database_url = fleet._db.as_ref().map(ScratchPostgres::url);
        fleet.database_url = database_url.clone();
        for kind in ServiceKind::ALL {
            let log = std::fs::File::create(dir.join(format!("{kind}.log")))?;
            let mut command = Command::new(&herald);
            command.arg("serve").arg(kind.name());
            // Only what the bench sets: no stray HERALD_* (e.g. HERALD_CONFIG) from the shell.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("HERALD_") {
                    command.env_remove(name);
                }
            }
            command
                .env("HERALD_LISTEN_ADDR", addrs[&kind].to_string())
                .env("HERALD_DATA_DIR", &dir)
                .env("HERALD_INGEST_URL", url(ServiceKind::Ingest))
                .env("HERALD_SEGMENTATION_URL", url(ServiceKind::Segmentation))
                .env("HERALD_TRIGGER_URL", url(ServiceKind::Trigger))
                .env("HERALD_DELIVERY_URL", url(ServiceKind::Delivery))
                .env("HERALD_ANALYTICS_URL", url(ServiceKind::Analytics))
                .env("HERALD_INTERNAL_KEY", &internal_key)
                .env("HERALD_API_KEYS", &api_keys)
                .env("HERALD_WORKSPACES", &workspaces)
                .env("HERALD_INSTANCE_ID", format!("bench-{kind}"))
                .env("HERALD_LOG", "warn")
                .env("HERALD_SHUTDOWN_GRACE_SECS", "2")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            if let Some(url) = &database_url {
                command.env("HERALD_DATABASE_URL", url);
            }
            let child = command
                .spawn()
                .with_context(|| format!("cannot start {} serve {kind}", herald.display()))?;
            fleet.children.push((kind, child));
        }
        fleet.wait_serving(Duration::from_secs(90)).await?;
        Ok(fleet)
    }

    /// Waits until every service answers `grpc.health.v1.Health/Check` with SERVING,
    /// noting how long after the start each one took (polled every 10 ms).
    async fn wait_serving(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = self.started + within;
        let mut waiting: Vec<ServiceKind> = ServiceKind::ALL.to_vec();
        while !waiting.is_empty() {
            self.check_alive()?;
            let mut still = Vec::new();
            for kind in waiting {
                if self.serving(kind).await {
                    self.ready.push((kind, self.started.elapsed()));
                } else {
                    still.push(kind);
                }
            }
            waiting = still;
            if let Some(kind) = waiting.first()
                && Instant::now() > deadline
            {
                bail!(
                    "{kind} did not report SERVING within {within:?}; its log:\n{}",
                    self.log_tail(*kind)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// A user token of the bench workspace for `user_id`, valid for an hour.
    pub fn user_token(&self, user_id: &str) -> anyhow::Result<String> {
        herald_runtime::auth::sign_user_token(
            &self.workspace,
            user_id,
            Duration::from_secs(3600),
            herald_runtime::Clock::system().now(),
        )
        .context("sign a user token")
    }

    /// The PostgreSQL database the services share; none on SQLite.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// How long after their start each service answered SERVING.
    pub fn ready(&self) -> &[(ServiceKind, Duration)] {
        &self.ready
    }

    async fn serving(&self, kind: ServiceKind) -> bool {
        let Ok(channel) = Endpoint::from_shared(self.url(kind))
            .expect("valid url")
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
        else {
            return false;
        };
        let mut client = HealthClient::new(channel);
        matches!(
            client.check(HealthCheckRequest { service: String::new() }).await,
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32
        )
    }

    /// Fails if a service process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for i in 0..self.children.len() {
            let (kind, child) = &mut self.children[i];
            let kind = *kind;
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{kind} exited ({status}); its log:\n{}",
                    self.log_tail(kind)
                );
            }
        }
        Ok(())
    }

    fn log_tail(&self, kind: ServiceKind) -> String {
        let text = std::fs::read_to_string(self.log_path(kind)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn log_path(&self, kind: ServiceKind) -> PathBuf {
        self.dir.join(format!("{kind}.log"))
    }

    /// The directory holding the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lines the services logged (at warn and above) during the run, per service.
    pub fn log_lines(&self) -> Vec<(ServiceKind, usize)> {
        ServiceKind::ALL
            .iter()
            .map(|k| {
                let n = std::fs::read_to_string(self.log_path(*k))
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                (*k, n)
            })
            .collect()
    }

    /// The first lines a service logged, to show when something went wrong.
    pub fn log_head(&self, kind: ServiceKind, n: usize) -> Vec<String> {
        std::fs::read_to_string(self.log_path(kind))
            .unwrap_or_default()
            .lines()
            .take(n)
            .map(str::to_owned)
            .collect()
    }

    /// `http://127.0.0.1:port` of `kind`.
    pub fn url(&self, kind: ServiceKind) -> String {
        format!("http://{}", self.addrs[&kind])
    }

    /// A new HTTP/2 connection to `kind`.
    pub async fn channel(&self, kind: ServiceKind) -> anyhow::Result<Channel> {
        Endpoint::from_shared(self.url(kind))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connect to {kind}"))
    }

    /// Process ids of the services, for CPU accounting.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.children
            .iter()
            .map(|(k, c)| (k.name(), c.id()))
            .collect()
    }
}

/// The services that relay work downstream through an outbox table `<service>_outbox`.
const OUTBOXES: [ServiceKind; 4] = [
    ServiceKind::Ingest,
    ServiceKind::Segmentation,
    ServiceKind::Trigger,
    ServiceKind::Delivery,
];

/// Read-only connections to the services' databases, to count the work still queued in
/// their outboxes (rows are deleted once the next service acknowledged them, and each
/// receiver commits its own outbox rows before acknowledging, so zero everywhere means
/// the pipeline has caught up).
pub struct Backlog {
    dbs: Vec<(Vec<ServiceKind>, DatabaseConnection)>,
}

impl Backlog {
    pub async fn connect(fleet: &Fleet) -> anyhow::Result<Backlog> {
        let targets: Vec<(Vec<ServiceKind>, String)> = match &fleet.database_url {
            Some(url) => vec![(OUTBOXES.to_vec(), url.clone())],
            None => OUTBOXES
                .iter()
                .map(|k| {
                    let file = fleet.dir.join(format!("{k}.db"));
                    (vec![*k], format!("sqlite://{}?mode=ro", file.display()))
                })
                .collect(),
        };
        let mut dbs = Vec::new();
        for (kinds, url) in targets {
            let mut options = ConnectOptions::new(url.clone());
            options
                .max_connections(1)
                .min_connections(0)
                .sqlx_logging(false);
            let db = Database::connect(options)
                .await
                .with_context(|| format!("connect to {url} to watch the outboxes"))?;
            dbs.push((kinds, db));
        }
        Ok(Backlog { dbs })
    }

    /// Outbox rows not yet acknowledged downstream (dead-lettered rows excluded).
    pub async fn pending(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for (kinds, db) in &self.dbs {
            for kind in kinds {
                let sql =
                    format!("SELECT COUNT(*) AS n FROM {kind}_outbox WHERE failed_at IS NULL");
                let row = db
                    .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                    .await
                    .with_context(|| format!("count {kind}_outbox"))?
                    .context("COUNT returned no row")?;
                total += row.try_get::<i64>("", "n")? as u64;
            }
        }
        Ok(total)
    }

    pub async fn close(self) {
        for (_, db) in self.dbs {
            let _ = db.close().await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
        }
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }
}
