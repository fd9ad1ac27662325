//! Test helpers shared by every service's tests and the end-to-end suite: credentials for
//! one workspace, a config per service pointing at a fresh database, and a spawner that
//! runs a service's real `serve` on `127.0.0.1:0`.

#![forbid(unsafe_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use herald_runtime::auth::{
    Scope, WorkspaceConfig, generate_api_key, random_token, sign_user_token,
};
use herald_runtime::{CancellationToken, Clock, Config, Launch, Secret, ServiceKind};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use herald_storage::testing::{Backend, TestDatabase};
pub use proxy::Proxy;
pub use recorder::{HttpRecorder, Recorded};

mod proxy;
mod recorder;

/// The workspace every test uses.
pub const WORKSPACE: &str = "acme";

/// Keys and secrets of one test suite, shared by all its services.
#[derive(Clone)]
pub struct Credentials {
    /// A key with the admin scope.
    pub admin_key: Secret,
    /// A key with the ingest scope only.
    pub ingest_key: Secret,
    /// The key services present to each other.
    pub internal_key: Secret,
    /// The workspace and its user-token secret.
    pub workspace: WorkspaceConfig,
    entries: Vec<herald_runtime::auth::ApiKeyConfig>,
}

impl Credentials {
    /// Fresh random credentials for [`WORKSPACE`].
    pub fn new() -> Self {
        let (admin_key, admin) = generate_api_key(WORKSPACE, &[Scope::Admin]);
        let (ingest_key, ingest) = generate_api_key(WORKSPACE, &[Scope::Ingest]);
        Credentials {
            admin_key,
            ingest_key,
            internal_key: Secret::new(random_token()),
            workspace: WorkspaceConfig {
                id: WORKSPACE.into(),
                user_token_secret: Secret::new(random_token()),
                time_zone: None,
                allow_user_identify: false,
            },
            entries: vec![admin, ingest],
        }
    }

    /// A user token for `user_id`, valid for an hour from now on the system clock.
    pub fn user_token(&self, user_id: &str) -> String {
        self.user_token_at(user_id, &Clock::system(), Duration::from_secs(3600))
    }

    /// A user token for `user_id`, valid for `ttl` from now on `clock`.
    pub fn user_token_at(&self, user_id: &str, clock: &Clock, ttl: Duration) -> String {
        sign_user_token(&self.workspace, user_id, ttl, clock.now()).expect("sign user token")
    }

    /// Puts these credentials into `config`.
    pub fn apply(&self, config: &mut Config) {
        config.api_keys = self.entries.clone();
        config.internal_key = Some(self.internal_key.clone());
        config.workspaces = vec![self.workspace.clone()];
    }
}

impl Default for Credentials {
    fn default() -> Self {
        Self::new()
    }
}

/// The fields a status names in its `google.rpc.BadRequest` details, in order; empty when
/// it has none.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Asserts that `result` failed with `code` and that its message names `mention` (a
/// field, a resource), and returns the status.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    mention: &str,
) -> tonic::Status {
    let status = result.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(mention),
        "{:?} does not mention {mention:?}",
        status.message()
    );
    status
}

/// `authorization` metadata for `key` on `request`.
pub fn authorized<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii key"),
    );
    request
}

/// A test config for `kind`: its database on `db`, the credentials, a short drain.
pub fn config(kind: ServiceKind, db: &TestDatabase, credentials: &Credentials) -> Config {
    let mut config = Config::defaults(kind);
    config.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.database_url = Some(db.url(kind.name()));
    config.instance_id = Some(format!("test-{kind}"));
    config.shutdown_grace_secs = 5;
    credentials.apply(&mut config);
    config
}

/// A service running in the test's runtime.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// `http://addr`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the service and waits for it to exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

/// Binds `config.listen_addr` and runs `serve` with `config` and `clock`, once it serves.
pub async fn spawn<F, Fut>(config: Config, clock: Clock, serve: F) -> Running
where
    F: FnOnce(Launch) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    init_tracing();
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .expect("bind test listener");
    let running = spawn_on(listener, config, clock, serve);
    wait_until_serving(running.addr).await;
    running
}

/// Waits until the server at `addr` reports SERVING (its migrations have run and it
/// accepts calls), failing the test after 30 s.
pub async fn wait_until_serving(addr: SocketAddr) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("url");
    eventually(Duration::from_secs(30), &format!("{addr} to serve"), || {
        let endpoint = endpoint.clone();
        async move {
            let mut client = HealthClient::new(endpoint.connect().await.ok()?);
            let status = client
                .check(HealthCheckRequest::default())
                .await
                .ok()?
                .into_inner()
                .status;
            (status == ServingStatus::Serving as i32).then_some(())
        }
    })
    .await;
}

/// Runs `serve` on an already bound listener.
pub fn spawn_on<F, Fut>(listener: TcpListener, config: Config, clock: Clock, serve: F) -> Running
where
    F: FnOnce(Launch) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(serve(Launch {
        config,
        clock,
        listener,
        shutdown: shutdown.clone(),
    }));
    Running {
        addr,
        shutdown,
        handle,
    }
}

/// Logs stay silent unless `HERALD_TEST_LOG` holds a filter, e.g. `debug`.
pub fn init_tracing() {
    if let Ok(filter) = std::env::var("HERALD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` (every 20 ms) until it is true, failing the test after 30 s.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(Duration::from_secs(30), what, || {
        let next = check();
        async move { next.await.then_some(()) }
    })
    .await
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
