//! Ingest over real gRPC, on a fresh database per test (SQLite by default, PostgreSQL with
//! `HERALD_TEST_DATABASE=postgres`) and a manual clock: events and identities are stored
//! once per message_id (within a batch, across calls, and when concurrent calls race),
//! stamped with the clock's time when they bring none, refused when too far ahead of it,
//! and each new one leaves exactly its outbox items for segmentation and analytics.

use std::time::Duration;

use herald_proto::common::v1::{Event, Identity};
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{IdentifyRequest, TrackBatchRequest, TrackRequest};
use herald_runtime::{Clock, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use herald_testkit::{Credentials, Running, TestDatabase, assert_refused, authorized};
use tonic::Code;
use tonic::transport::Channel;

const NOW: &str = "2026-06-01T12:00:00Z";

struct App {
    running: Running,
    credentials: Credentials,
    clock: Clock,
    db: TestDatabase,
}

/// Ingest whose downstream services are nowhere: what it relays stays in its outbox.
async fn spawn_app() -> App {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
    config.segmentation_url = "http://127.0.0.1:1".into();
    config.analytics_url = "http://127.0.0.1:1".into();
    let clock = Clock::manual(NOW.parse().unwrap());
    let running = herald_testkit::spawn(config, clock.clone(), herald_ingest::serve).await;
    App {
        running,
        credentials,
        clock,
        db,
    }
}

impl App {
    async fn client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::connect(self.running.url())
            .await
            .unwrap()
    }

    fn key(&self) -> String {
        self.credentials.ingest_key.expose().to_owned()
    }

    async fn track(&self, event: Event) -> Result<bool, tonic::Status> {
        let request = authorized(TrackRequest { event: Some(event) }, &self.key());
        Ok(self
            .client()
            .await
            .track(request)
            .await?
            .into_inner()
            .duplicate)
    }

    async fn store(&self) -> DatabaseConnection {
        herald_storage::connect(&self.db.url("ingest"))
            .await
            .unwrap()
    }

    /// (destination, count) of the outbox rows, by destination.
    async fn outbox(&self) -> Vec<(String, i64)> {
        let store = self.store().await;
        let rows = store
            .query_all_raw(Statement::from_string(
                store.get_database_backend(),
                "SELECT destination, COUNT(*) AS n FROM ingest_outbox GROUP BY destination ORDER BY destination",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.try_get("", "destination").unwrap(),
                    r.try_get("", "n").unwrap(),
                )
            })
            .collect()
    }
}

fn event(id: &str) -> Event {
    Event {
        message_id: id.into(),
        user_id: "u1".into(),
        name: "signed_up".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn each_message_id_is_stored_once_and_relayed_once() {
    let app = spawn_app().await;
    assert!(!app.track(event("m1")).await.unwrap());
    assert!(
        app.track(event("m1")).await.unwrap(),
        "a repeat is a duplicate"
    );
    let batch = TrackBatchRequest {
        events: vec![event("m1"), event("m2"), event("m2"), event("m3")],
    };
    let response = app
        .client()
        .await
        .track_batch(authorized(batch, &app.key()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((response.accepted, response.duplicates), (2, 2));
    let identity = Identity {
        message_id: "i1".into(),
        user_id: "u1".into(),
        ..Default::default()
    };
    let mut client = app.client().await;
    for duplicate in [false, true] {
        let request = authorized(
            IdentifyRequest {
                identity: Some(identity.clone()),
            },
            &app.key(),
        );
        assert_eq!(
            client
                .identify(request)
                .await
                .unwrap()
                .into_inner()
                .duplicate,
            duplicate
        );
    }
    // Three new events and one identity: each event to both, the identity to segmentation.
    assert_eq!(
        app.outbox().await,
        [("analytics".to_owned(), 3), ("segmentation".to_owned(), 4)]
    );
    app.running.stop().await;
}

#[tokio::test]
async fn racing_calls_with_one_new_message_id_store_it_once() {
    let app = spawn_app().await;
    let calls = (0..16).map(|_| {
        let app = &app;
        async move { app.track(event("raced")).await.unwrap() }
    });
    let duplicates = futures::future::join_all(calls).await;
    assert_eq!(
        duplicates.iter().filter(|d| !**d).count(),
        1,
        "{duplicates:?}"
    );
    assert_eq!(
        app.outbox().await,
        [("analytics".to_owned(), 1), ("segmentation".to_owned(), 1)]
    );
    app.running.stop().await;
}

/// Concurrent unary calls share transactions (group commit); each is answered only after
/// its own record is committed, so a reader on another connection finds it at once.
#[tokio::test]
async fn concurrent_calls_are_each_acknowledged_after_their_own_commit() {
    let app = spawn_app().await;
    let store = app.store().await;
    let stored = |id: String| {
        let store = &store;
        async move {
            let statement = Statement::from_sql_and_values(
                store.get_database_backend(),
                match store.get_database_backend() {
                    herald_storage::sea_orm::DbBackend::Postgres => {
                        "SELECT COUNT(*) AS n FROM ingest_records WHERE message_id = $1"
                    }
                    _ => "SELECT COUNT(*) AS n FROM ingest_records WHERE message_id = ?",
                },
                [id.into()],
            );
            let row = store.query_one_raw(statement).await.unwrap().unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    let callers = (0..32).map(|caller| {
        let app = &app;
        let stored = &stored;
        async move {
            let mut client = app.client().await;
            for n in 0..5 {
                let id = format!("c{caller}-{n}");
                let request = authorized(
                    TrackRequest {
                        event: Some(event(&id)),
                    },
                    &app.key(),
                );
                let duplicate = client.track(request).await.unwrap().into_inner().duplicate;
                assert!(!duplicate, "{id} is new");
                assert_eq!(stored(id.clone()).await, 1, "{id} acknowledged, not stored");
            }
        }
    });
    futures::future::join_all(callers).await;
    assert_eq!(
        app.outbox().await,
        [
            ("analytics".to_owned(), 160),
            ("segmentation".to_owned(), 160)
        ]
    );
    app.running.stop().await;
}

#[tokio::test]
async fn timestamps_are_filled_and_bounded_by_the_clock() {
    let app = spawn_app().await;
    app.track(event("now")).await.unwrap();
    let store = app.store().await;
    let row = store
        .query_one_raw(Statement::from_string(
            store.get_database_backend(),
            "SELECT occurred_at FROM ingest_records WHERE message_id = 'now'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.try_get::<i64>("", "occurred_at").unwrap(),
        app.clock.now_ms()
    );

    let at = |id: &str, t: herald_core::Timestamp| Event {
        timestamp: Some(herald_core::time::proto(t)),
        ..event(id)
    };
    let hours = |n: u64| Duration::from_secs(n * 3600);
    let now = app.clock.now();
    assert!(
        !app.track(at("23h", herald_core::time::add(now, hours(23))))
            .await
            .unwrap()
    );
    let later = herald_core::time::add(now, hours(25));
    assert_refused(
        app.track(at("25h", later)).await,
        Code::InvalidArgument,
        "event.timestamp",
    );
    // Two hours later on the clock, the same instant is no longer too far ahead.
    app.clock.advance(hours(2));
    assert!(!app.track(at("25h", later)).await.unwrap());
    app.running.stop().await;
}
