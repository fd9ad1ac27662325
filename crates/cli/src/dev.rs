//! `herald dev`: the embedded default. All five services in one process, each on its own
//! port, SQLite under a data directory, a demo workspace whose credentials are kept in
//! that directory so a restart keeps working with the same key and tokens.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use herald_runtime::auth::{Scope, WorkspaceConfig, random_token, sign_user_token};
use herald_runtime::{Clock, Config, Secret, ServiceKind};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// The demo workspace's id.
const WORKSPACE: &str = "demo";
/// File under the data directory holding the dev credentials (plaintext: dev only).
const CREDENTIALS_FILE: &str = "dev-credentials.toml";

/// The dev suite's credentials, created on first start.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevCredentials {
    workspace: String,
    /// Server API key with the ingest and admin scopes.
    server_key: String,
    /// Key the services present to each other.
    internal_key: String,
    /// Secret end-user tokens are signed with.
    user_token_secret: String,
}

impl DevCredentials {
    fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(CREDENTIALS_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            return toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        std::fs::create_dir_all(data_dir).map_err(|e| {
            anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display())
        })?;
        let credentials = DevCredentials {
            workspace: WORKSPACE.into(),
            server_key: format!("hk_{}", random_token()),
            internal_key: random_token(),
            user_token_secret: random_token(),
        };
        std::fs::write(&path, toml::to_string(&credentials)?)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(credentials)
    }

    fn workspace(&self) -> WorkspaceConfig {
        WorkspaceConfig {
            id: self.workspace.clone(),
            user_token_secret: Secret::new(self.user_token_secret.clone()),
            time_zone: None,
            // The demo app identifies its users from the browser.
            allow_user_identify: true,
        }
    }

    fn config(&self, kind: ServiceKind, data_dir: &Path) -> Config {
        let mut config = Config::defaults(kind);
        config.data_dir = data_dir.to_path_buf();
        config.instance_id = Some(format!("dev-{kind}"));
        config.log =
            std::env::var("HERALD_LOG").unwrap_or_else(|_| "info,sea_orm_migration=warn".into());
        config.internal_key = Some(Secret::new(self.internal_key.clone()));
        let sha256 = herald_runtime::auth::hash_key(&self.server_key);
        config.api_keys = vec![herald_runtime::auth::ApiKeyConfig {
            workspace: self.workspace.clone(),
            scopes: vec![Scope::Ingest, Scope::Admin],
            sha256,
            name: Some("dev server key".into()),
        }];
        config.workspaces = vec![self.workspace()];
        config
    }
}

/// The dev suite's command line.
struct DevArgs {
    data_dir: PathBuf,
    /// The port of the web server (demo app, dashboard, web SDK).
    web_port: u16,
}

fn dev_args(args: &[String]) -> Result<DevArgs, String> {
    let mut parsed = DevArgs {
        data_dir: std::env::var("HERALD_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("data")),
        web_port: crate::web::DEFAULT_PORT,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--data-dir", Some(d)) => parsed.data_dir = PathBuf::from(d),
            ("--web-port", Some(p)) => {
                parsed.web_port = p
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("--web-port must be a port number, not {p:?}"))?;
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(parsed)
}

fn data_dir(args: &[String]) -> Result<PathBuf, String> {
    dev_args(args).map(|a| a.data_dir)
}

/// `herald dev [--data-dir DIR] [--web-port PORT]`.
pub fn run(args: &[String]) -> ExitCode {
    let args = match dev_args(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("herald dev: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald dev: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_suite(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald dev: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_suite(args: &DevArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.as_path();
    let credentials = DevCredentials::load_or_create(dir)?;
    let configs: Vec<Config> = ServiceKind::ALL
        .iter()
        .map(|k| credentials.config(*k, dir))
        .collect();
    for config in &configs {
        config.validate()?;
    }
    let _telemetry = herald_runtime::telemetry::init("dev", &configs[0].log, None)?;
    // Bind every port before starting anything, so a taken port fails cleanly.
    let mut listeners = Vec::new();
    for config in &configs {
        let listener = TcpListener::bind(config.listen_addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} ({e}); is another Herald already running?",
                config.listen_addr
            )
        })?;
        listeners.push(listener);
    }
    let web_addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.web_port));
    let web_listener = TcpListener::bind(web_addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {web_addr} ({e}); pick another with --web-port")
    })?;
    let shutdown = herald_runtime::shutdown::on_signal();
    let mut tasks = tokio::task::JoinSet::new();
    for ((kind, config), listener) in ServiceKind::ALL.into_iter().zip(configs).zip(listeners) {
        let launch = herald_runtime::Launch {
            config,
            clock: Clock::system(),
            listener,
            shutdown: shutdown.clone(),
        };
        tasks.spawn(async move {
            let result = match kind {
                ServiceKind::Ingest => herald_ingest::serve(launch).await,
                ServiceKind::Segmentation => herald_segmentation::serve(launch).await,
                ServiceKind::Trigger => herald_trigger::serve(launch).await,
                ServiceKind::Delivery => herald_delivery::serve(launch).await,
                ServiceKind::Analytics => herald_analytics::serve(launch).await,
            };
            (kind.name(), result)
        });
    }
    let site = crate::web::Site {
        workspace: credentials.workspace(),
        host: "127.0.0.1".into(),
    };
    let web_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let result = crate::web::serve(web_listener, site, web_shutdown).await;
        ("web server", result)
    });
    // Give the servers a moment to run their migrations before printing the banner.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trigger_url = format!("http://127.0.0.1:{}", ServiceKind::Trigger.default_port());
    let seeded = seed_demo(&trigger_url, &credentials).await;
    print_banner(&credentials, dir, web_addr)?;
    match seeded {
        Ok(0) => {}
        Ok(n) => println!("Created {n} demo campaign(s) for the demo app.\n"),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "the demo campaigns were not created"),
    }

    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((kind, Err(e))) => {
                tracing::error!(service = %kind, error = %format!("{e:#}"), "service failed, stopping the suite");
                failure.get_or_insert_with(|| anyhow::anyhow!("{kind} failed: {e:#}"));
                shutdown.cancel();
            }
            Err(e) => {
                failure.get_or_insert_with(|| anyhow::anyhow!("a service panicked: {e}"));
                shutdown.cancel();
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Creates the demo app's campaigns, retrying while trigger finishes starting.
async fn seed_demo(trigger_url: &str, credentials: &DevCredentials) -> anyhow::Result<usize> {
    let key = Secret::new(credentials.server_key.clone());
    let mut attempt = 0;
    loop {
        match crate::demo::seed(trigger_url, key.clone()).await {
            Ok(n) => return Ok(n),
            Err(e) if attempt >= 20 => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// The README walkthrough, ready to paste (after the two `export` lines).
const WALKTHROUGH: &str = r#"Walkthrough (README.md explains each step):

# 1. an active campaign that welcomes users when they sign up
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"campaign": {"name": "Welcome", "status": "CAMPAIGN_STATUS_ACTIVE", "trigger": {"event": {"event_name": "signed_up"}}, "variants": [{"id": "a", "name": "A", "weight": 1, "contents": [{"in_app": {"format": "IN_APP_FORMAT_MODAL", "title": "Welcome, {{ user.first_name }}!", "body": "Your {{ event.properties.plan }} plan is ready.", "actions": [{"id": "tour", "label": "Take the tour", "kind": "ACTION_KIND_URL", "url": "https://example.com/tour"}]}}]}]}}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/CreateCampaign

# 2. in a second terminal (export HERALD_TOKEN there too): alice's live stream
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d '{}' 127.0.0.1:50054 herald.delivery.v1.DeliveryService/Subscribe

# 3. who alice is, and that she just signed up: the message appears on the stream
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"identity": {"message_id": "walkthrough-identify-1", "user_id": "alice", "traits": {"first_name": "Alice", "plan": "pro", "signed_up_at": "2026-01-05T09:00:00Z"}}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Identify
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"event": {"message_id": "walkthrough-signup-1", "user_id": "alice", "name": "signed_up", "properties": {"plan": "pro"}}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Track

# 4. alice clicks it (MSG_ID from the stream)
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d '{"message_id": "MSG_ID", "state": "MESSAGE_STATE_DISPLAYED"}' 127.0.0.1:50054 herald.delivery.v1.DeliveryService/UpdateMessageState
grpcurl -plaintext -H "authorization: Bearer $HERALD_TOKEN" -d '{"message_id": "MSG_ID", "state": "MESSAGE_STATE_CLICKED", "action_id": "tour"}' 127.0.0.1:50054 herald.delivery.v1.DeliveryService/UpdateMessageState

# 5. the campaign's numbers (CMP_ID from step 1)
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"campaign_id": "CMP_ID"}' 127.0.0.1:50055 herald.analytics.v1.AnalyticsService/GetCampaignStats
cargo run --release --bin herald -- stats CMP_ID

# 6. a segment alice is in (SEG_ID from CreateSegment), until she connects an integration
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"segment": {"name": "Needs an integration", "rule_text": "plan == \"pro\" and days_since(signed_up_at) >= 5 and not performed(\"integration_connected\")"}}' 127.0.0.1:50052 herald.segmentation.v1.SegmentationService/CreateSegment
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"user_id": "alice"}' 127.0.0.1:50052 herald.segmentation.v1.SegmentationService/GetUserSegments
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"event": {"message_id": "walkthrough-integration-1", "user_id": "alice", "name": "integration_connected"}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Track

# 7. a campaign that fires once per user on entering a segment (SEG_ID from CreateSegment, CMP_ID
#    from CreateCampaign); carol enters, ExplainDecision shows SENT; she leaves and re-enters: SUPPRESSED
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"segment": {"name": "On a trial", "rule_text": "plan == \"trial\""}}' 127.0.0.1:50052 herald.segmentation.v1.SegmentationService/CreateSegment
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"campaign": {"name": "Trial tips", "status": "CAMPAIGN_STATUS_ACTIVE", "trigger": {"segment_entry": {"segment_id": "SEG_ID"}}, "entry": {"policy": "ENTRY_POLICY_ONCE"}, "variants": [{"id": "a", "name": "A", "weight": 1, "contents": [{"in_app": {"format": "IN_APP_FORMAT_BANNER", "title": "Tips for your trial, {{ user.first_name | default: \"there\" }}", "body": "Connect an integration to see your own data."}}]}]}}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/CreateCampaign
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"identity": {"message_id": "walkthrough-identify-carol-1", "user_id": "carol", "traits": {"first_name": "Carol", "plan": "trial"}}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Identify
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"campaign_id": "CMP_ID", "user_id": "carol"}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/ExplainDecision
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"identity": {"message_id": "walkthrough-identify-carol-2", "user_id": "carol", "traits": {"plan": "pro"}}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Identify
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"identity": {"message_id": "walkthrough-identify-carol-3", "user_id": "carol", "traits": {"plan": "trial"}}}' 127.0.0.1:50051 herald.ingest.v1.IngestService/Identify
grpcurl -plaintext -H "authorization: Bearer $HERALD_KEY" -d '{"campaign_id": "CMP_ID", "user_id": "carol"}' 127.0.0.1:50053 herald.trigger.v1.TriggerService/ExplainDecision
"#;

fn print_banner(
    credentials: &DevCredentials,
    dir: &Path,
    web: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let token = sign_user_token(
        &credentials.workspace(),
        "alice",
        Duration::from_secs(24 * 3600),
        Clock::system().now(),
    )?;
    let port = |k: ServiceKind| k.default_port();
    println!(
        r#"
Herald is running (workspace "{ws}", data in {dir}).

  ingest        127.0.0.1:{i}
  segmentation  127.0.0.1:{s}
  trigger       127.0.0.1:{t}
  delivery      127.0.0.1:{d}   (gRPC and gRPC-Web)
  analytics     127.0.0.1:{a}

  demo app      http://{web}/
  dashboard     http://{web}/dashboard/   (sign in with the server API key below)

Server API key (scopes ingest, admin) and an end-user token for user "alice" (24 h):

  export HERALD_KEY={key}
  export HERALD_TOKEN={token}

Mint a token for another user:  cargo run --release --bin herald -- token --user bob --data-dir {dir}
{walkthrough}
Stop with Ctrl-C; state is kept under {dir}.
"#,
        walkthrough = WALKTHROUGH,
        ws = credentials.workspace,
        dir = dir.display(),
        i = port(ServiceKind::Ingest),
        s = port(ServiceKind::Segmentation),
        t = port(ServiceKind::Trigger),
        d = port(ServiceKind::Delivery),
        a = port(ServiceKind::Analytics),
        key = credentials.server_key,
    );
    Ok(())
}

/// `herald token --user ID [--ttl-hours N] [--data-dir DIR]`.
pub fn token(args: &[String]) -> ExitCode {
    let mut user = None;
    let mut ttl_hours: u64 = 24;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--user", Some(u)) => user = Some(u.clone()),
            ("--ttl-hours", Some(h)) => match h.parse() {
                Ok(h) => ttl_hours = h,
                Err(_) => {
                    eprintln!("herald token: --ttl-hours must be a whole number");
                    return ExitCode::from(2);
                }
            },
            (flag, Some(value)) => rest.extend([flag.to_owned(), value.clone()]),
            (flag, None) => rest.push(flag.to_owned()),
        }
    }
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        eprintln!("herald token: --user ID is required");
        return ExitCode::from(2);
    };
    // The dev suite runs with the default max_user_token_lifetime_secs.
    let max_hours = Config::defaults(ServiceKind::Delivery).max_user_token_lifetime_secs / 3600;
    if ttl_hours == 0 || ttl_hours > max_hours {
        eprintln!(
            "herald token: --ttl-hours must be 1..={max_hours} (max_user_token_lifetime_secs)"
        );
        return ExitCode::from(2);
    }
    let dir = match data_dir(&rest) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("herald token: {e}");
            return ExitCode::from(2);
        }
    };
    let path = dir.join(CREDENTIALS_FILE);
    if !path.exists() {
        eprintln!(
            "herald token: {} not found; start `herald dev` once first",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let result = DevCredentials::load_or_create(&dir).and_then(|c| {
        Ok(sign_user_token(
            &c.workspace(),
            &user,
            Duration::from_secs(ttl_hours.saturating_mul(3600)),
            Clock::system().now(),
        )?)
    });
    match result {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald token: {e:#}");
            ExitCode::FAILURE
        }
    }
}
