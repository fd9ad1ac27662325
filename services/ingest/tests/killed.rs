//! Nothing acknowledged is lost when the ingest process is killed (SIGKILL, no shutdown)
//! while concurrent unary calls share group commits: every event answered OK is stored,
//! with its outbox items, and a retry after a restart is a duplicate.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use herald_proto::common::v1::Event;
use herald_proto::ingest::v1::TrackRequest;
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_runtime::{Config, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, Statement};
use herald_testkit::{Credentials, TestDatabase, authorized, wait_until_serving};

/// Acknowledgments after which the process is killed.
const KILL_AFTER: usize = 300;

/// A child process, killed when dropped (also when the test fails).
struct Process(Child);

impl Process {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `herald-ingest` on `addr`, configured like `config` through its environment only.
fn start(config: &Config, addr: SocketAddr) -> Process {
    let api_keys: Vec<String> = config
        .api_keys
        .iter()
        .map(|k| {
            let scopes: Vec<String> = k
                .scopes
                .iter()
                .map(|s| format!("{:?}", format!("{s:?}").to_lowercase()))
                .collect();
            format!(
                r#"{{workspace="{}", scopes=[{}], sha256="{}"}}"#,
                k.workspace,
                scopes.join(","),
                k.sha256
            )
        })
        .collect();
    let workspaces: Vec<String> = config
        .workspaces
        .iter()
        .map(|w| {
            format!(
                r#"{{id="{}", user_token_secret="{}"}}"#,
                w.id,
                w.user_token_secret.expose()
            )
        })
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald-ingest"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            command.env_remove(name);
        }
    }
    command
        .env("HERALD_LISTEN_ADDR", addr.to_string())
        .env("HERALD_DATABASE_URL", config.database_url.as_ref().unwrap())
        .env("HERALD_SEGMENTATION_URL", "http://127.0.0.1:1")
        .env("HERALD_ANALYTICS_URL", "http://127.0.0.1:1")
        .env(
            "HERALD_INTERNAL_KEY",
            config.internal_key.as_ref().unwrap().expose(),
        )
        .env("HERALD_API_KEYS", format!("[{}]", api_keys.join(",")))
        .env("HERALD_WORKSPACES", format!("[{}]", workspaces.join(",")))
        .env("HERALD_INSTANCE_ID", "killed-test")
        .env("HERALD_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .map(Process)
        .expect("start herald-ingest")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn event(id: &str) -> Event {
    Event {
        message_id: id.into(),
        user_id: format!("user-{id}"),
        name: "signed_up".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_when_killed_right_after_acknowledging() {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
    let key = credentials.ingest_key.expose().to_owned();
    let addr = free_addr();
    let child = Arc::new(Mutex::new(start(&config, addr)));
    wait_until_serving(addr).await;

    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let callers = (0..32).map(|caller| {
        let (child, acknowledged, key) = (child.clone(), acknowledged.clone(), key.clone());
        async move {
            let mut client = IngestServiceClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
            for n in 0.. {
                let id = format!("c{caller}-{n}");
                let request = authorized(
                    TrackRequest {
                        event: Some(event(&id)),
                    },
                    &key,
                );
                // Once killed, calls fail: this caller is done.
                if client.track(request).await.is_err() {
                    return;
                }
                let count = {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    acknowledged.insert(id);
                    acknowledged.len()
                };
                if count == KILL_AFTER {
                    child.lock().unwrap().kill();
                }
            }
        }
    });
    futures::future::join_all(callers).await;
    child.lock().unwrap().kill();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= KILL_AFTER);

    let store = herald_storage::connect(config.database_url.as_ref().unwrap())
        .await
        .unwrap();
    let ids = |sql: &str| {
        let store = &store;
        let statement = Statement::from_string(store.get_database_backend(), sql);
        async move {
            let rows = store.query_all_raw(statement).await.unwrap();
            rows.iter()
                .map(|r| r.try_get::<String>("", "id").unwrap())
                .collect::<BTreeSet<String>>()
        }
    };
    let stored = ids("SELECT message_id AS id FROM ingest_records").await;
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    // Every stored event, acknowledged or not, has its items for both destinations.
    let queued = |destination: &str| {
        format!("SELECT partition_key AS id FROM ingest_outbox WHERE destination = '{destination}'")
    };
    let users: BTreeSet<String> = stored.iter().map(|id| format!("user-{id}")).collect();
    assert_eq!(ids(&queued("segmentation")).await, users);
    assert_eq!(ids(&queued("analytics")).await, users);

    // Restarted, ingest answers a retry of an acknowledged event as a duplicate.
    let addr = free_addr();
    let mut child = start(&config, addr);
    wait_until_serving(addr).await;
    let mut client = IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let retried = acknowledged.iter().next_back().unwrap();
    let request = authorized(
        TrackRequest {
            event: Some(event(retried)),
        },
        &key,
    );
    assert!(client.track(request).await.unwrap().into_inner().duplicate);
    child.kill();
}
