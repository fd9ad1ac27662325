//! What every Herald server does the same way, checked on a real ingest server over
//! gRPC: health, credentials, bad input, deadlines, size limits, load shedding and the
//! graceful drain.

use std::time::Duration;

use herald_proto::common::v1::Event;
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{TrackRequest, TrackStreamRequest};
use herald_runtime::{Clock, Config, ServiceKind};
use herald_testkit::{Credentials, Running, TestDatabase, authorized};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Ingest {
    running: Running,
    credentials: Credentials,
    _db: TestDatabase,
}

async fn ingest_with(adjust: impl FnOnce(&mut Config)) -> Ingest {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
    adjust(&mut config);
    let running = herald_testkit::spawn(config, Clock::system(), herald_ingest::serve).await;
    Ingest {
        running,
        credentials,
        _db: db,
    }
}

impl Ingest {
    async fn client(&self) -> IngestServiceClient<tonic::transport::Channel> {
        IngestServiceClient::connect(self.running.url())
            .await
            .expect("connect")
    }

    fn key(&self) -> String {
        self.credentials.ingest_key.expose().to_owned()
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

fn track(id: &str, key: &str) -> tonic::Request<TrackRequest> {
    authorized(
        TrackRequest {
            event: Some(event(id)),
        },
        key,
    )
}

#[tokio::test]
async fn health_answers_serving_without_a_key() {
    let ingest = ingest_with(|_| {}).await;
    let channel = tonic::transport::Endpoint::from_shared(ingest.running.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "herald.ingest.v1.IngestService", "liveness"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn credentials_are_checked_per_scope() {
    let ingest = ingest_with(|_| {}).await;
    let mut client = ingest.client().await;

    let missing = client
        .track(TrackRequest {
            event: Some(event("m1")),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);

    let unknown = client.track(track("m1", "hk_not_a_key")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);

    let admin = ingest.credentials.admin_key.expose().to_owned();
    let wrong_scope = client.track(track("m1", &admin)).await.unwrap_err();
    assert_eq!(wrong_scope.code(), Code::PermissionDenied);

    let ok = client
        .track(track("m1", &ingest.key()))
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.duplicate);
    let again = client
        .track(track("m1", &ingest.key()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.duplicate,
        "a repeated message_id is acknowledged as a duplicate"
    );
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let ingest = ingest_with(|_| {}).await;
    let mut client = ingest.client().await;
    let batch = herald_proto::ingest::v1::TrackBatchRequest {
        events: vec![
            event("b1"),
            Event {
                name: String::new(),
                ..event("b2")
            },
        ],
    };
    let status = client
        .track_batch(authorized(batch, &ingest.key()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("events[1].name"),
        "{}",
        status.message()
    );
    let details =
        tonic_types::StatusExt::get_details_bad_request(&status).expect("BadRequest details");
    assert_eq!(details.field_violations[0].field, "events[1].name");

    // The valid event of the rejected batch was not stored.
    let first = client
        .track(track("b1", &ingest.key()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
}

#[tokio::test]
async fn an_expired_deadline_is_deadline_exceeded() {
    let ingest = ingest_with(|_| {}).await;
    // A bare HTTP/2 client: tonic's Channel would enforce grpc-timeout locally and answer
    // CANCELLED itself, hiding what the server does.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let mut client = IngestServiceClient::with_origin(http, ingest.running.url().parse().unwrap());
    // A client stream that never ends keeps the call open past its deadline.
    let (_tx, rx) = tokio::sync::mpsc::channel::<TrackStreamRequest>(1);
    let mut request = authorized(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        &ingest.key(),
    );
    request
        .metadata_mut()
        .insert("grpc-timeout", "200m".parse().unwrap());
    let started = std::time::Instant::now();
    let status = client.track_stream(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_cleanly() {
    let ingest = ingest_with(|c| c.max_request_bytes = 16 * 1024).await;
    let mut client = ingest.client().await;
    let mut big = event("big");
    let mut properties = prost_types::Struct::default();
    properties.fields.insert(
        "blob".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("x".repeat(20 * 1024))),
        },
    );
    big.properties = Some(properties);
    let status = client
        .track(authorized(TrackRequest { event: Some(big) }, &ingest.key()))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "oversized request answered {status:?}"
    );
    // The server is unharmed.
    assert!(client.track(track("small", &ingest.key())).await.is_ok());
}

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed() {
    let ingest = ingest_with(|c| c.max_concurrent_requests = 1).await;
    let mut holder = ingest.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<TrackStreamRequest>(1);
    let key = ingest.key();
    let held = tokio::spawn(async move {
        holder
            .track_stream(authorized(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &key,
            ))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = ingest.client().await;
    let shed = client.track(track("m2", &ingest.key())).await.unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted);
    // Health checks are never shed: an overloaded server must not look dead.
    let channel = tonic::transport::Endpoint::from_shared(ingest.running.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "liveness".into(),
        })
        .await;
    assert_eq!(
        health.unwrap().into_inner().status,
        ServingStatus::Serving as i32
    );
    drop(tx);
    assert!(held.await.unwrap().is_ok());
    assert!(
        client.track(track("m3", &ingest.key())).await.is_ok(),
        "capacity returns"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish_then_exits() {
    let ingest = ingest_with(|c| c.shutdown_grace_secs = 10).await;
    let mut client = ingest.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<TrackStreamRequest>(4);
    let key = ingest.key();
    let call = tokio::spawn(async move {
        client
            .track_stream(authorized(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &key,
            ))
            .await
    });
    tx.send(TrackStreamRequest {
        event: Some(event("s1")),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let Ingest { running, _db, .. } = ingest;
    running.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The in-flight call is still served after the signal.
    tx.send(TrackStreamRequest {
        event: Some(event("s2")),
    })
    .await
    .unwrap();
    drop(tx);
    let response = call
        .await
        .unwrap()
        .expect("in-flight call completes")
        .into_inner();
    assert_eq!(response.accepted, 2);
    let exited = tokio::time::timeout(Duration::from_secs(5), running.handle).await;
    assert!(
        matches!(exited, Ok(Ok(Ok(())))),
        "server exits once drained: {exited:?}"
    );
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    let ingest = ingest_with(|c| c.shutdown_grace_secs = 1).await;
    let mut client = ingest.client().await;
    let (_tx, rx) = tokio::sync::mpsc::channel::<TrackStreamRequest>(1);
    let key = ingest.key();
    let _stuck = tokio::spawn(async move {
        client
            .track_stream(authorized(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &key,
            ))
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let Ingest { running, _db, .. } = ingest;
    let started = std::time::Instant::now();
    running.shutdown.cancel();
    let exited = tokio::time::timeout(Duration::from_secs(5), running.handle).await;
    assert!(
        exited.is_ok(),
        "a stuck call cannot hold the process past the grace period"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}
