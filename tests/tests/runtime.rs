//! What every Herald server does the same way, checked on a real ingest server over
//! gRPC: health and readiness, credentials, bad input, deadlines, size limits, load
//! shedding, a panicking handler, and the graceful drain. No test waits a fixed time for
//! something to happen: each waits for a signal, or polls within a bound.

use std::time::Duration;

use herald_proto::common::v1::Event;
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{TrackBatchRequest, TrackRequest, TrackStreamRequest};
use herald_runtime::{Clock, Config, ServiceKind};
use herald_testkit::{Credentials, Running, TestDatabase, authorized, eventually};
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

    /// Waits until the event `message_id` is committed (a Track of it is a duplicate).
    async fn wait_until_stored(&self, message_id: &str) {
        let client = self.client().await;
        eventually(
            Duration::from_secs(30),
            &format!("{message_id} to be stored"),
            || {
                let mut client = client.clone();
                let request = track(message_id, &self.key());
                async move {
                    client
                        .track(request)
                        .await
                        .ok()?
                        .into_inner()
                        .duplicate
                        .then_some(())
                }
            },
        )
        .await;
    }

    async fn health(&self) -> HealthClient<tonic::transport::Channel> {
        health_client(&self.running).await
    }
}

async fn health_client(running: &Running) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(running.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

/// Waits until `health` reports NOT_SERVING or stops answering: the drain has begun.
async fn wait_until_draining(health: &mut HealthClient<tonic::transport::Channel>) {
    eventually(Duration::from_secs(30), "the drain to begin", || {
        let mut health = health.clone();
        async move {
            match health.check(HealthCheckRequest::default()).await {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => None,
                _ => Some(()),
            }
        }
    })
    .await;
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
    // Once the held stream occupies the one slot, the next call is shed.
    let mut client = ingest.client().await;
    let mut n = 0;
    eventually(Duration::from_secs(30), "a call to be shed", || {
        n += 1;
        let mut client = client.clone();
        let request = track(&format!("probe-{n}"), &ingest.key());
        async move {
            let status = client.track(request).await.err()?;
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            Some(())
        }
    })
    .await;
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
    ingest.wait_until_stored("s1").await;
    let mut health = ingest.health().await;

    let Ingest { running, _db, .. } = ingest;
    running.shutdown.cancel();
    wait_until_draining(&mut health).await;
    // The in-flight call is still served after the drain began.
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
    // `wait_until_stored` probes with a Track of s1, which stores it when it gets there
    // before the stream's commit; s1 then counts as a duplicate. s2 is never probed: it was
    // accepted by the in-flight call after the drain began.
    assert_eq!(response.accepted + response.duplicates, 2, "{response:?}");
    assert!(response.accepted >= 1, "{response:?}");
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
    let (tx, rx) = tokio::sync::mpsc::channel::<TrackStreamRequest>(1);
    let key = ingest.key();
    let _stuck = tokio::spawn(async move {
        client
            .track_stream(authorized(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &key,
            ))
            .await
    });
    // The call is in flight once its first event is stored; it never ends by itself.
    tx.send(TrackStreamRequest {
        event: Some(event("stuck-1")),
    })
    .await
    .unwrap();
    ingest.wait_until_stored("stuck-1").await;
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

/// Ingest's contract, every RPC a panic but TrackBatch.
struct Panicking;

#[tonic::async_trait]
impl herald_proto::ingest::v1::ingest_service_server::IngestService for Panicking {
    async fn track(
        &self,
        _: tonic::Request<TrackRequest>,
    ) -> Result<tonic::Response<herald_proto::ingest::v1::TrackResponse>, tonic::Status> {
        panic!("a bug in a handler")
    }

    async fn track_batch(
        &self,
        _: tonic::Request<TrackBatchRequest>,
    ) -> Result<tonic::Response<herald_proto::ingest::v1::TrackBatchResponse>, tonic::Status> {
        Ok(tonic::Response::new(Default::default()))
    }

    async fn track_stream(
        &self,
        _: tonic::Request<tonic::Streaming<TrackStreamRequest>>,
    ) -> Result<tonic::Response<herald_proto::ingest::v1::TrackStreamResponse>, tonic::Status> {
        panic!("a bug in a handler")
    }

    async fn identify(
        &self,
        _: tonic::Request<herald_proto::ingest::v1::IdentifyRequest>,
    ) -> Result<tonic::Response<herald_proto::ingest::v1::IdentifyResponse>, tonic::Status> {
        panic!("a bug in a handler")
    }

    async fn delete_user(
        &self,
        _: tonic::Request<herald_proto::ingest::v1::DeleteUserRequest>,
    ) -> Result<tonic::Response<herald_proto::ingest::v1::DeleteUserResponse>, tonic::Status> {
        panic!("a bug in a handler")
    }

    async fn export_user(
        &self,
        _: tonic::Request<herald_proto::ingest::v1::ExportUserRequest>,
    ) -> Result<tonic::Response<herald_proto::ingest::v1::ExportUserResponse>, tonic::Status> {
        panic!("a bug in a handler")
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_the_connection_lives_on() {
    use herald_proto::ingest::v1::ingest_service_server::IngestServiceServer;
    use herald_runtime::{Access, Scope, ServiceSpec};
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
    let running = herald_testkit::spawn(config, Clock::system(), |launch| {
        let spec = ServiceSpec::new(
            ServiceKind::Ingest,
            herald_proto::ingest::v1::FILE_DESCRIPTOR_SET,
        )
        .serve(
            IngestServiceServer::new(Panicking),
            Access::Scope(Scope::Ingest),
        );
        launch.serve(spec)
    })
    .await;
    // One connection for every call below.
    let channel = tonic::transport::Endpoint::from_shared(running.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = IngestServiceClient::new(channel);
    let key = credentials.ingest_key.expose().to_owned();
    for _ in 0..3 {
        let status = client.track(track("m1", &key)).await.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert_eq!(status.message(), "internal error");
        client
            .track_batch(authorized(TrackBatchRequest::default(), &key))
            .await
            .expect("the other calls on the connection are unharmed");
    }
    running.stop().await;
}

#[tokio::test]
async fn readiness_follows_the_database_without_a_restart() {
    let db = TestDatabase::new().await;
    if db.backend() != herald_testkit::Backend::Postgres {
        eprintln!(
            "skipped: an embedded SQLite file cannot become unreachable; run with HERALD_TEST_DATABASE=postgres"
        );
        return;
    }
    let url = db.url("ingest");
    let target = {
        let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(&url);
        let host = rest.split('/').next().unwrap_or(rest);
        tokio::net::lookup_host(host).await.unwrap().next().unwrap()
    };
    let proxy = herald_testkit::Proxy::start(target).await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
    config.database_url = Some(proxy.database_url(&url));
    let running = herald_testkit::spawn(config, Clock::system(), herald_ingest::serve).await;
    let mut health = health_client(&running).await;
    let status = |service: &'static str| {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .ok()
        }
    };
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(status("").await, Some(serving));

    proxy.cut();
    eventually(
        Duration::from_secs(30),
        "NOT_SERVING while the database is unreachable",
        || async { (status("").await == Some(not_serving)).then_some(()) },
    )
    .await;
    // Liveness ignores the database: the process is fine, only its dependency is not.
    assert_eq!(status("liveness").await, Some(serving));

    proxy.forward(target);
    eventually(
        Duration::from_secs(30),
        "SERVING once the database is back",
        || async { (status("").await == Some(serving)).then_some(()) },
    )
    .await;
    let mut client = IngestServiceClient::connect(running.url()).await.unwrap();
    client
        .track(track("after-outage", credentials.ingest_key.expose()))
        .await
        .expect("stores again without a restart");
    let _ = health.check(HealthCheckRequest::default()).await;
    running.stop().await;
}
