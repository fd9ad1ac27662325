//! Browsers and apps call Track (and Identify, where the workspace allows it) with an
//! end-user token, over real gRPC and gRPC-Web, on a fresh database per test (SQLite by
//! default, PostgreSQL with `HERALD_TEST_DATABASE=postgres`) and a manual clock: a token
//! records only for its own user, within a size limit and a per-user rate, and every
//! other ingest RPC still needs a server API key. A refused call stores nothing.

use std::time::Duration;

use bytes::{Buf, Bytes};
use herald_proto::common::v1::{Event, Identity};
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{
    DeleteUserRequest, ExportUserRequest, IdentifyRequest, TrackBatchRequest, TrackRequest,
    TrackResponse, TrackStreamRequest,
};
use herald_runtime::{Clock, Config, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, Statement};
use herald_testkit::{Credentials, Running, TestDatabase, assert_refused, authorized, violations};
use http_body_util::{BodyExt, Full};
use prost::Message;
use prost_types::{Struct, Value, value::Kind};
use tonic::Code;
use tonic::transport::Channel;

const NOW: &str = "2026-06-01T12:00:00Z";

struct App {
    running: Running,
    credentials: Credentials,
    clock: Clock,
    db: TestDatabase,
}

/// Ingest with the default limits, its downstream services nowhere.
async fn spawn_app() -> App {
    spawn_app_with(|_| {}).await
}

/// Ingest with `configure` applied to its configuration.
async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> App {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
    config.segmentation_url = "http://127.0.0.1:1".into();
    config.analytics_url = "http://127.0.0.1:1".into();
    configure(&mut config);
    config.validate().expect("a valid test config");
    let clock = Clock::manual(NOW.parse().unwrap());
    let running = herald_testkit::spawn(config, clock.clone(), herald_ingest::serve).await;
    App {
        running,
        credentials,
        clock,
        db,
    }
}

/// One stored record: (message_id, user_id), and the user id inside its stored body.
type Stored = (String, String, String);

impl App {
    async fn client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::connect(self.running.url())
            .await
            .unwrap()
    }

    /// A token for `user`, valid for an hour on the test's clock.
    fn token(&self, user: &str) -> String {
        self.credentials
            .user_token_at(user, &self.clock, Duration::from_secs(3600))
    }

    fn key(&self) -> String {
        self.credentials.ingest_key.expose().to_owned()
    }

    async fn track(&self, event: Event, bearer: &str) -> Result<bool, tonic::Status> {
        let request = authorized(TrackRequest { event: Some(event) }, bearer);
        Ok(self
            .client()
            .await
            .track(request)
            .await?
            .into_inner()
            .duplicate)
    }

    async fn identify(&self, identity: Identity, bearer: &str) -> Result<bool, tonic::Status> {
        let request = authorized(
            IdentifyRequest {
                identity: Some(identity),
            },
            bearer,
        );
        Ok(self
            .client()
            .await
            .identify(request)
            .await?
            .into_inner()
            .duplicate)
    }

    /// Every stored record, by message_id, with the user id its stored body carries.
    async fn stored(&self) -> Vec<Stored> {
        let store = herald_storage::connect(&self.db.url("ingest"))
            .await
            .unwrap();
        let rows = store
            .query_all_raw(Statement::from_string(
                store.get_database_backend(),
                "SELECT message_id, user_id, kind, body FROM ingest_records ORDER BY message_id",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let body: Vec<u8> = r.try_get("", "body").unwrap();
                let kind: i16 = r.try_get("", "kind").unwrap();
                let body_user = match kind {
                    1 => Event::decode(body.as_slice()).unwrap().user_id,
                    _ => Identity::decode(body.as_slice()).unwrap().user_id,
                };
                (
                    r.try_get("", "message_id").unwrap(),
                    r.try_get("", "user_id").unwrap(),
                    body_user,
                )
            })
            .collect()
    }

    /// How many outbox items are waiting.
    async fn outbox_items(&self) -> i64 {
        let store = herald_storage::connect(&self.db.url("ingest"))
            .await
            .unwrap();
        let row = store
            .query_one_raw(Statement::from_string(
                store.get_database_backend(),
                "SELECT COUNT(*) AS n FROM ingest_outbox",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }
}

/// An event of `user` (empty: the token's user) named `page_viewed`.
fn event(id: &str, user: &str) -> Event {
    Event {
        message_id: id.into(),
        user_id: user.into(),
        name: "page_viewed".into(),
        ..Default::default()
    }
}

fn identity(id: &str, user: &str) -> Identity {
    Identity {
        message_id: id.into(),
        user_id: user.into(),
        traits: Some(Struct {
            fields: [("plan".to_owned(), text("pro"))].into(),
        }),
        ..Default::default()
    }
}

fn text(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.into())),
    }
}

fn stored(id: &str, user: &str) -> Stored {
    (id.into(), user.into(), user.into())
}

#[tokio::test]
async fn a_user_token_tracks_its_own_users_events() {
    let app = spawn_app().await;
    let alice = app.token("alice");
    // No user id: the token's user is filled in, in the row and in what goes downstream.
    assert!(!app.track(event("m1", ""), &alice).await.unwrap());
    // The token's own user id is accepted as it is.
    assert!(!app.track(event("m2", "alice"), &alice).await.unwrap());
    // A repeat is a duplicate, as with a server key.
    assert!(app.track(event("m2", "alice"), &alice).await.unwrap());
    assert_eq!(
        app.stored().await,
        [stored("m1", "alice"), stored("m2", "alice")]
    );
    // Each new event has its items for segmentation and analytics.
    assert_eq!(app.outbox_items().await, 4);
    app.running.stop().await;
}

#[tokio::test]
async fn a_user_token_cannot_record_for_another_user() {
    let app = spawn_app_with(|config| config.workspaces[0].allow_user_identify = true).await;
    let alice = app.token("alice");
    let refused = assert_refused(
        app.track(event("m1", "bob"), &alice).await,
        Code::PermissionDenied,
        "\"bob\"",
    );
    assert!(refused.message().contains("\"alice\""), "{refused:?}");
    let refused = assert_refused(
        app.identify(identity("i1", "bob"), &alice).await,
        Code::PermissionDenied,
        "\"bob\"",
    );
    assert!(refused.message().contains("\"alice\""), "{refused:?}");
    assert_eq!(app.stored().await, []);
    assert_eq!(app.outbox_items().await, 0);
    // The server key may still record for anyone.
    assert!(!app.track(event("m1", "bob"), &app.key()).await.unwrap());
    assert_eq!(app.stored().await, [stored("m1", "bob")]);
    app.running.stop().await;
}

#[tokio::test]
async fn an_oversized_event_from_a_user_token_is_invalid_and_server_keys_keep_their_limits() {
    let app = spawn_app().await;
    let alice = app.token("alice");
    // About 9 KiB of properties: over the 8 KiB a user token may send, well under the
    // 32 KiB of properties a server key may.
    let big = Event {
        properties: Some(Struct {
            fields: [("note".to_owned(), text(&"x".repeat(9 * 1024)))].into(),
        }),
        ..event("big", "")
    };
    let status = assert_refused(
        app.track(big.clone(), &alice).await,
        Code::InvalidArgument,
        "8192",
    );
    assert_eq!(violations(&status), ["event"]);
    assert_eq!(app.stored().await, []);
    // Field violations of the event itself are named as with a server key.
    let unnamed = Event {
        name: String::new(),
        ..event("unnamed", "")
    };
    let status = assert_refused(
        app.track(unnamed, &alice).await,
        Code::InvalidArgument,
        "event.name",
    );
    assert_eq!(violations(&status), ["event.name"]);
    assert_eq!(app.stored().await, []);
    // The same big event with a user id, sent with the server key, is accepted.
    let big = Event {
        user_id: "alice".into(),
        ..big
    };
    assert!(!app.track(big, &app.key()).await.unwrap());
    assert_eq!(app.stored().await, [stored("big", "alice")]);
    app.running.stop().await;
}

#[tokio::test]
async fn a_user_tokens_calls_are_rate_limited_per_user_on_the_clock() {
    let app = spawn_app_with(|config| {
        config.user_token_events_per_minute = 60;
        config.user_token_event_burst = 3;
        config.workspaces[0].allow_user_identify = true;
    })
    .await;
    let alice = app.token("alice");
    for n in 0..3 {
        app.track(event(&format!("a{n}"), ""), &alice)
            .await
            .unwrap();
    }
    // The burst + 1-th call: refused naming the limit, and not stored.
    let refused = assert_refused(
        app.track(event("a3", ""), &alice).await,
        Code::ResourceExhausted,
        "60 calls per minute",
    );
    assert!(refused.message().contains("bursts of 3"), "{refused:?}");
    // Identify shares the bucket.
    assert_refused(
        app.identify(identity("i1", ""), &alice).await,
        Code::ResourceExhausted,
        "60 calls per minute",
    );
    // Another user has a bucket of their own, and the server key is not limited.
    app.track(event("b0", ""), &app.token("bob")).await.unwrap();
    for n in 0..5 {
        app.track(event(&format!("k{n}"), "alice"), &app.key())
            .await
            .unwrap();
    }
    // One call per second refills: a second later exactly one more is accepted.
    app.clock.advance(Duration::from_secs(1));
    app.track(event("a3", ""), &alice).await.unwrap();
    assert_refused(
        app.track(event("a4", ""), &alice).await,
        Code::ResourceExhausted,
        "60 calls per minute",
    );
    let alices: Vec<String> = app
        .stored()
        .await
        .into_iter()
        .filter(|(id, user, _)| user == "alice" && id.starts_with('a'))
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(alices, ["a0", "a1", "a2", "a3"]);
    app.running.stop().await;
}

#[tokio::test]
async fn identify_with_a_user_token_needs_the_workspace_setting() {
    let app = spawn_app().await;
    let alice = app.token("alice");
    assert_refused(
        app.identify(identity("i1", ""), &alice).await,
        Code::PermissionDenied,
        "allow_user_identify",
    );
    assert_eq!(app.stored().await, []);
    app.running.stop().await;

    let app = spawn_app_with(|config| config.workspaces[0].allow_user_identify = true).await;
    let alice = app.token("alice");
    assert!(!app.identify(identity("i1", ""), &alice).await.unwrap());
    assert!(!app.identify(identity("i2", "alice"), &alice).await.unwrap());
    assert_refused(
        app.identify(identity("i3", "bob"), &alice).await,
        Code::PermissionDenied,
        "\"bob\"",
    );
    let big = Identity {
        traits: Some(Struct {
            fields: [("bio".to_owned(), text(&"x".repeat(9 * 1024)))].into(),
        }),
        ..identity("i4", "")
    };
    let status = assert_refused(
        app.identify(big, &alice).await,
        Code::InvalidArgument,
        "8192",
    );
    assert_eq!(violations(&status), ["identity"]);
    assert_eq!(
        app.stored().await,
        [stored("i1", "alice"), stored("i2", "alice")]
    );
    app.running.stop().await;
}

#[tokio::test]
async fn every_other_ingest_rpc_refuses_a_user_token() {
    let app = spawn_app().await;
    let alice = app.token("alice");
    let mut client = app.client().await;
    let needs_a_key = "needs a server API key with the ingest scope, not a user token";
    let batch = TrackBatchRequest {
        events: vec![event("m1", "alice")],
    };
    assert_refused(
        client.track_batch(authorized(batch, &alice)).await,
        Code::PermissionDenied,
        needs_a_key,
    );
    let stream = futures::stream::iter(vec![TrackStreamRequest {
        event: Some(event("m2", "alice")),
    }]);
    assert_refused(
        client.track_stream(authorized(stream, &alice)).await,
        Code::PermissionDenied,
        needs_a_key,
    );
    let delete = DeleteUserRequest {
        user_id: "alice".into(),
    };
    assert_refused(
        client.delete_user(authorized(delete, &alice)).await,
        Code::PermissionDenied,
        needs_a_key,
    );
    let export = ExportUserRequest {
        user_id: "alice".into(),
        ..Default::default()
    };
    assert_refused(
        client.export_user(authorized(export, &alice)).await,
        Code::PermissionDenied,
        needs_a_key,
    );
    assert_eq!(app.stored().await, []);
    app.running.stop().await;
}

#[tokio::test]
async fn an_expired_or_foreign_user_token_is_unauthenticated() {
    let app = spawn_app().await;
    let alice = app
        .credentials
        .user_token_at("alice", &app.clock, Duration::from_secs(60));
    app.track(event("m1", ""), &alice).await.unwrap();
    app.clock.advance(Duration::from_secs(120));
    assert_refused(
        app.track(event("m2", ""), &alice).await,
        Code::Unauthenticated,
        "expired",
    );
    // A token signed with a secret this server does not know.
    let foreign = Credentials::new().user_token_at("alice", &app.clock, Duration::from_secs(60));
    assert_refused(
        app.track(event("m3", ""), &foreign).await,
        Code::Unauthenticated,
        "invalid user token",
    );
    assert_eq!(app.stored().await, [stored("m1", "alice")]);
    app.running.stop().await;
}

/// What a gRPC-Web call answered: the HTTP response head, the messages, and the status
/// (from the trailer frame, or from the headers of a trailers-only answer).
struct WebAnswer {
    head: http::response::Parts,
    messages: Vec<Bytes>,
    grpc_status: String,
    grpc_message: String,
}

/// Calls `path` as a browser's gRPC-Web client does: one HTTP/1.1 POST of
/// `application/grpc-web+proto` with a length-prefixed message, from another origin.
async fn grpc_web(app: &App, path: &str, message: &impl Message, bearer: &str) -> WebAnswer {
    let tcp = tokio::net::TcpStream::connect(app.running.addr)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let message = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let request = http::Request::post(format!("http://{}{path}", app.running.addr))
        .version(http::Version::HTTP_11)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-user-agent", "grpc-web-javascript/0.1")
        .header("origin", "http://app.example.com")
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (head, body) = response.into_parts();
    let mut body = body.collect().await.unwrap().to_bytes();
    let header = |name: &str| {
        head.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let mut grpc_status = header("grpc-status");
    let mut grpc_message = header("grpc-message");
    let mut messages = Vec::new();
    while body.has_remaining() {
        let flags = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flags & 0x80 == 0 {
            messages.push(payload);
            continue;
        }
        for line in std::str::from_utf8(&payload).unwrap().split("\r\n") {
            match line.split_once(':') {
                Some(("grpc-status", v)) => grpc_status = Some(v.trim().to_owned()),
                Some(("grpc-message", v)) => grpc_message = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    WebAnswer {
        head,
        messages,
        grpc_status: grpc_status.expect("a grpc-status"),
        grpc_message: grpc_message.unwrap_or_default(),
    }
}

#[tokio::test]
async fn a_browser_tracks_with_a_user_token_over_grpc_web() {
    let app = spawn_app().await;
    let alice = app.token("alice");
    let path = "/herald.ingest.v1.IngestService/Track";
    let track = |id: &str, user: &str| TrackRequest {
        event: Some(event(id, user)),
    };

    let answer = grpc_web(&app, path, &track("web-1", ""), &alice).await;
    assert_eq!(answer.head.status, http::StatusCode::OK);
    assert_eq!(answer.head.version, http::Version::HTTP_11);
    let content_type = answer.head.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/grpc-web"),
        "{content_type}"
    );
    // The browser may read the answer from another origin.
    assert_eq!(
        answer.head.headers["access-control-allow-origin"],
        "http://app.example.com"
    );
    assert_eq!(answer.grpc_status, "0", "{}", answer.grpc_message);
    let [response] = answer.messages.as_slice() else {
        panic!("one response message, got {}", answer.messages.len())
    };
    assert!(!TrackResponse::decode(response.clone()).unwrap().duplicate);

    // The same call again is a duplicate, and another user's event is refused.
    let again = grpc_web(&app, path, &track("web-1", ""), &alice).await;
    assert_eq!(again.grpc_status, "0");
    assert!(
        TrackResponse::decode(again.messages[0].clone())
            .unwrap()
            .duplicate
    );
    let refused = grpc_web(&app, path, &track("web-2", "bob"), &alice).await;
    assert_eq!(
        refused.grpc_status,
        (Code::PermissionDenied as i32).to_string()
    );
    assert!(refused.messages.is_empty());

    assert_eq!(app.stored().await, [stored("web-1", "alice")]);
    app.running.stop().await;
}
