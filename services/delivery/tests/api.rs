//! Delivery over real gRPC: the service on 127.0.0.1:0 with a fresh database (SQLite, or
//! PostgreSQL with `HERALD_TEST_DATABASE=postgres`), and a fake analytics and a fake
//! segmentation that record the interactions relayed to them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::analytics::v1::analytics_internal_service_server::{
    AnalyticsInternalService, AnalyticsInternalServiceServer,
};
use herald_proto::analytics::v1::{self as analytics, Interaction, InteractionKind};
use herald_proto::common::v1::{
    Action, Channel, EmailContent, InAppContent, MessageContent, MessageState, message_content,
};
use herald_proto::delivery::v1::delivery_internal_service_client::DeliveryInternalServiceClient;
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::delivery::v1::subscribe_response::Kind;
use herald_proto::delivery::v1::*;
use herald_proto::segmentation::v1::segmentation_internal_service_server::{
    SegmentationInternalService, SegmentationInternalServiceServer,
};
use herald_proto::segmentation::v1::{self as segmentation};
use herald_runtime::ServiceKind;
use herald_testkit::{Credentials, Running, TestDatabase, authorized, eventually};
use tonic::transport::Channel as GrpcChannel;
use tonic::{Code, Request, Response, Status, Streaming};

const WAIT: Duration = Duration::from_secs(10);

/// Analytics stand-in: records every interaction it is sent.
#[derive(Clone, Default)]
struct FakeAnalytics {
    interactions: Arc<Mutex<Vec<Interaction>>>,
}

#[tonic::async_trait]
impl AnalyticsInternalService for FakeAnalytics {
    async fn record_interactions(
        &self,
        request: Request<analytics::RecordInteractionsRequest>,
    ) -> Result<Response<analytics::RecordInteractionsResponse>, Status> {
        let request = request.into_inner();
        assert_eq!(request.workspace_id, herald_testkit::WORKSPACE);
        let recorded = request.interactions.len() as u32;
        self.interactions
            .lock()
            .unwrap()
            .extend(request.interactions);
        Ok(Response::new(analytics::RecordInteractionsResponse {
            recorded,
            duplicates: 0,
        }))
    }

    async fn record_events(
        &self,
        _: Request<analytics::RecordEventsRequest>,
    ) -> Result<Response<analytics::RecordEventsResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }

    async fn forget_user(
        &self,
        _: Request<analytics::ForgetUserRequest>,
    ) -> Result<Response<analytics::ForgetUserResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }
}

/// Segmentation stand-in: records every interaction it is sent, or, while
/// `unimplemented` is set, answers ApplyInteractions with UNIMPLEMENTED (as segmentation
/// did before it learnt the RPC) and only counts the calls.
#[derive(Clone, Default)]
struct FakeSegmentation {
    interactions: Arc<Mutex<Vec<Interaction>>>,
    unimplemented: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl SegmentationInternalService for FakeSegmentation {
    async fn apply_interactions(
        &self,
        request: Request<segmentation::ApplyInteractionsRequest>,
    ) -> Result<Response<segmentation::ApplyInteractionsResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.unimplemented.load(Ordering::SeqCst) {
            return Err(Status::unimplemented(
                "SegmentationInternalService.ApplyInteractions",
            ));
        }
        let request = request.into_inner();
        assert_eq!(request.workspace_id, herald_testkit::WORKSPACE);
        let applied = request.interactions.len() as u32;
        self.interactions
            .lock()
            .unwrap()
            .extend(request.interactions);
        Ok(Response::new(segmentation::ApplyInteractionsResponse {
            applied,
            duplicates: 0,
        }))
    }

    async fn apply_events(
        &self,
        _: Request<segmentation::ApplyEventsRequest>,
    ) -> Result<Response<segmentation::ApplyEventsResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }

    async fn apply_identities(
        &self,
        _: Request<segmentation::ApplyIdentitiesRequest>,
    ) -> Result<Response<segmentation::ApplyIdentitiesResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }

    async fn forget_user(
        &self,
        _: Request<segmentation::ForgetUserRequest>,
    ) -> Result<Response<segmentation::ForgetUserResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }
    async fn get_user_state(
        &self,
        _: Request<segmentation::GetUserStateRequest>,
    ) -> Result<Response<segmentation::GetUserStateResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }

    async fn list_segment_users(
        &self,
        _: Request<segmentation::ListSegmentUsersRequest>,
    ) -> Result<Response<segmentation::ListSegmentUsersResponse>, Status> {
        Err(Status::unimplemented("not used by delivery"))
    }
}

struct App {
    running: Running,
    credentials: Credentials,
    analytics: FakeAnalytics,
    segmentation: FakeSegmentation,
    db: TestDatabase,
}

async fn spawn_app() -> App {
    spawn_app_with(herald_runtime::Clock::system()).await
}

async fn spawn_app_with(clock: herald_runtime::Clock) -> App {
    spawn_app_configured(clock, |_| {}).await
}

async fn spawn_app_configured(
    clock: herald_runtime::Clock,
    configure: impl FnOnce(&mut herald_runtime::Config),
) -> App {
    spawn_app_downstream_of(clock, FakeSegmentation::default(), configure).await
}

/// Delivery relaying to a fake analytics and to `segmentation`, both served on one
/// listener.
async fn spawn_app_downstream_of(
    clock: herald_runtime::Clock,
    segmentation: FakeSegmentation,
    configure: impl FnOnce(&mut herald_runtime::Config),
) -> App {
    let analytics = FakeAnalytics::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AnalyticsInternalServiceServer::new(analytics.clone()))
            .add_service(SegmentationInternalServiceServer::new(segmentation.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Delivery, &db, &credentials);
    config.analytics_url = downstream_url.clone();
    config.segmentation_url = downstream_url;
    configure(&mut config);
    let running = herald_testkit::spawn(config, clock, herald_delivery::serve).await;
    App {
        running,
        credentials,
        analytics,
        segmentation,
        db,
    }
}

impl App {
    async fn channel(&self) -> GrpcChannel {
        let url = self.running.url();
        eventually(WAIT, "delivery to accept connections", || {
            let url = url.clone();
            async move { GrpcChannel::from_shared(url).unwrap().connect().await.ok() }
        })
        .await
    }

    async fn public(&self) -> DeliveryServiceClient<GrpcChannel> {
        DeliveryServiceClient::new(self.channel().await)
    }

    fn as_user<T>(&self, user_id: &str, message: T) -> Request<T> {
        authorized(message, &self.credentials.user_token(user_id))
    }

    async fn try_deliver(&self, deliveries: Vec<Delivery>) -> Result<DeliverResponse, Status> {
        let mut client = DeliveryInternalServiceClient::new(self.channel().await);
        let request = DeliverRequest {
            workspace_id: herald_testkit::WORKSPACE.into(),
            deliveries,
        };
        client
            .deliver(authorized(request, self.credentials.internal_key.expose()))
            .await
            .map(Response::into_inner)
    }

    async fn deliver(&self, deliveries: Vec<Delivery>) -> Vec<DeliveryResult> {
        self.try_deliver(deliveries).await.expect("deliver").results
    }

    /// Delivers one in-app message and returns its id.
    async fn deliver_one(&self, delivery: Delivery) -> String {
        let results = self.deliver(vec![delivery]).await;
        assert_eq!(
            results[0].outcome(),
            DeliveryOutcome::Accepted,
            "{results:?}"
        );
        results[0].message_id.clone()
    }

    async fn inbox_is_empty(&self, user_id: &str) -> bool {
        let inbox = self.inbox(user_id, ListInboxRequest::default()).await;
        inbox.expect("list inbox").messages.is_empty()
    }

    async fn subscribe(&self, user_id: &str) -> Streaming<SubscribeResponse> {
        self.try_subscribe(user_id).await.expect("subscribe")
    }

    async fn try_subscribe(&self, user_id: &str) -> Result<Streaming<SubscribeResponse>, Status> {
        let request = self.as_user(
            user_id,
            SubscribeRequest {
                session_id: "s1".into(),
                user_id: String::new(),
            },
        );
        self.public()
            .await
            .subscribe(request)
            .await
            .map(Response::into_inner)
    }

    async fn inbox(
        &self,
        user_id: &str,
        request: ListInboxRequest,
    ) -> Result<ListInboxResponse, Status> {
        self.public()
            .await
            .list_inbox(self.as_user(user_id, request))
            .await
            .map(Response::into_inner)
    }

    async fn update(
        &self,
        user_id: &str,
        message_id: &str,
        state: MessageState,
        action_id: &str,
    ) -> Result<Message, Status> {
        let request = UpdateMessageStateRequest {
            message_id: message_id.into(),
            state: state as i32,
            action_id: action_id.into(),
        };
        let response = self
            .public()
            .await
            .update_message_state(self.as_user(user_id, request))
            .await?;
        Ok(response.into_inner().message.expect("message"))
    }

    /// Waits until analytics has every interaction of `expected`, and checks that none
    /// arrived twice; returns all it has.
    async fn analytics_received(&self, expected: &[String]) -> Vec<Interaction> {
        received(&self.analytics.interactions, "analytics", expected).await
    }

    /// [`App::analytics_received`] at segmentation.
    async fn segmentation_received(&self, expected: &[String]) -> Vec<Interaction> {
        received(&self.segmentation.interactions, "segmentation", expected).await
    }

    /// Outbox rows for `destination` that are parked (`failed_at` set), read from
    /// delivery's database.
    async fn parked(&self, destination: &str) -> i64 {
        use herald_storage::sql;
        use sea_orm::ConnectionTrait;
        let db = herald_storage::connect(&self.db.url("delivery"))
            .await
            .unwrap();
        let backend = db.get_database_backend();
        let row = db
            .query_one_raw(sql::statement(
                backend,
                format!(
                    "SELECT COUNT(*) AS n FROM delivery_outbox \
                     WHERE failed_at IS NOT NULL AND destination = {}",
                    sql::param(backend, 1)
                ),
                vec![destination.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        let parked = row.try_get("", "n").unwrap();
        let _ = db.close().await;
        parked
    }
}

/// Waits until `interactions` (a fake's record, named `at`) holds every id of `expected`,
/// and checks that none arrived twice; returns all it holds.
async fn received(
    interactions: &Arc<Mutex<Vec<Interaction>>>,
    at: &str,
    expected: &[String],
) -> Vec<Interaction> {
    let got = eventually(WAIT, &format!("interactions at {at}"), || {
        let interactions = interactions.clone();
        async move {
            let got = interactions.lock().unwrap().clone();
            expected
                .iter()
                .all(|id| got.iter().any(|i| &i.id == id))
                .then_some(got)
        }
    })
    .await;
    let mut ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(
        ids.len(),
        before,
        "an interaction was recorded twice at {at}"
    );
    got
}

fn in_app(key: &str, user_id: &str, priority: i32) -> Delivery {
    Delivery {
        idempotency_key: key.into(),
        user_id: user_id.into(),
        campaign_id: "cmp_1".into(),
        variant_id: "var_a".into(),
        channel: Channel::InApp as i32,
        content: Some(MessageContent {
            body: Some(message_content::Body::InApp(InAppContent {
                title: format!("hello {key}"),
                actions: vec![Action {
                    id: "go".into(),
                    label: "Go".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        }),
        priority,
        ..Default::default()
    }
}

/// The next message on the stream, skipping heartbeats.
async fn next_message(stream: &mut Streaming<SubscribeResponse>) -> Message {
    loop {
        let item = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("a message within the wait")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Kind::Message(message)) = item.kind {
            return message;
        }
    }
}

/// Asserts that nothing else is on its way to `user_id`'s `stream`: a marker delivered
/// now is the next message (a user's messages reach a stream in the order they were
/// stored), so no fixed wait is needed to show that something did not arrive.
async fn assert_nothing_before_a_marker(
    app: &App,
    stream: &mut Streaming<SubscribeResponse>,
    user_id: &str,
) {
    static MARKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MARKERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let marker = app
        .deliver_one(in_app(&format!("marker-{n}"), user_id, 0))
        .await;
    assert_eq!(
        next_message(stream).await.id,
        marker,
        "something came before the marker"
    );
}

#[tokio::test]
async fn a_subscriber_receives_new_in_app_messages_live() {
    let app = spawn_app().await;
    let mut stream = app.subscribe("u1").await;
    let first = app.deliver_one(in_app("k1", "u1", 0)).await;
    let received = next_message(&mut stream).await;
    assert_eq!(received.id, first);
    assert_eq!(
        received.state(),
        MessageState::Delivered,
        "writing to a stream delivers the message"
    );
    // The replay has run by now, so this one can only come live.
    let second = app.deliver_one(in_app("k2", "u1", 0)).await;
    let received = next_message(&mut stream).await;
    assert_eq!(received.id, second);
    assert_eq!(received.campaign_id, "cmp_1");
    match received.content.and_then(|c| c.body) {
        Some(message_content::Body::InApp(content)) => assert_eq!(content.title, "hello k2"),
        other => panic!("expected in-app content, got {other:?}"),
    }
    // Another user's message does not reach this stream, and nothing comes twice.
    app.deliver_one(in_app("k3", "u2", 0)).await;
    assert_nothing_before_a_marker(&app, &mut stream, "u1").await;

    // A live message is marked DELIVERED right after it is written.
    eventually(WAIT, "every message written marked DELIVERED", || async {
        let inbox = app.inbox("u1", ListInboxRequest::default()).await.unwrap();
        inbox
            .messages
            .iter()
            .all(|m| m.state() == MessageState::Delivered)
            .then_some(())
    })
    .await;
    let interactions = app
        .analytics_received(&[
            format!("{first}:sent"),
            format!("{first}:delivered"),
            format!("{second}:sent"),
            format!("{second}:delivered"),
            format!(
                "{}:sent",
                app.inbox("u2", ListInboxRequest::default())
                    .await
                    .unwrap()
                    .messages[0]
                    .id
            ),
        ])
        .await;
    let delivered = interactions
        .iter()
        .find(|i| i.id == format!("{first}:delivered"))
        .unwrap();
    assert_eq!(delivered.kind(), InteractionKind::Delivered);
    assert_eq!(
        (
            delivered.campaign_id.as_str(),
            delivered.variant_id.as_str()
        ),
        ("cmp_1", "var_a")
    );
    assert_eq!(
        (delivered.user_id.as_str(), delivered.message_id.as_str()),
        ("u1", first.as_str())
    );
    assert_eq!(delivered.delivery_idempotency_key, "k1");
    // Segmentation is sent the same DELIVERED interactions, payload for payload.
    let at_segmentation = app
        .segmentation_received(&[format!("{first}:delivered"), format!("{second}:delivered")])
        .await;
    assert_eq!(
        at_segmentation
            .iter()
            .find(|i| i.id == format!("{first}:delivered")),
        Some(delivered)
    );
    app.running.stop().await;
}

#[tokio::test]
async fn a_late_subscriber_gets_undisplayed_messages_by_replay_in_priority_order() {
    let app = spawn_app().await;
    let low = app.deliver_one(in_app("low", "u1", 1)).await;
    let high = app.deliver_one(in_app("high", "u1", 5)).await;
    let later_low = app.deliver_one(in_app("later-low", "u1", 1)).await;
    let email = Delivery {
        idempotency_key: "mail".into(),
        user_id: "u1".into(),
        campaign_id: "cmp_1".into(),
        variant_id: "var_a".into(),
        channel: Channel::Email as i32,
        address: "u1@example.com".into(),
        content: Some(MessageContent {
            body: Some(message_content::Body::Email(EmailContent {
                subject: "hi".into(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    app.deliver_one(email).await;

    let mut stream = app.subscribe("u1").await;
    let order = [
        next_message(&mut stream).await.id,
        next_message(&mut stream).await.id,
        next_message(&mut stream).await.id,
    ];
    assert_eq!(
        order,
        [high.clone(), low.clone(), later_low.clone()],
        "highest priority first, then oldest"
    );
    // The email is not an in-app message.
    assert_nothing_before_a_marker(&app, &mut stream, "u1").await;
    drop(stream);

    // A reconnect replays what is still undisplayed (DELIVERED included), not the rest.
    app.update("u1", &high, MessageState::Displayed, "")
        .await
        .unwrap();
    let mut stream = app.subscribe("u1").await;
    assert_eq!(next_message(&mut stream).await.id, low);
    assert_eq!(next_message(&mut stream).await.id, later_low);
    // The first marker, delivered and still undisplayed, is replayed too (priority 0).
    next_message(&mut stream).await;
    assert_nothing_before_a_marker(&app, &mut stream, "u1").await;
    app.running.stop().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_a_duplicate_and_delivers_nothing_new() {
    let app = spawn_app().await;
    let mut stream = app.subscribe("u1").await;
    let first = app.deliver(vec![in_app("k1", "u1", 0)]).await;
    assert!(!first[0].duplicate);
    assert_eq!(next_message(&mut stream).await.id, first[0].message_id);

    // Again later, and twice within one batch.
    let again = app
        .deliver(vec![
            in_app("k1", "u1", 0),
            in_app("k2", "u1", 0),
            in_app("k2", "u1", 0),
        ])
        .await;
    assert_eq!(
        again[0],
        DeliveryResult {
            duplicate: true,
            ..first[0].clone()
        }
    );
    assert!(!again[1].duplicate);
    assert_eq!(
        again[2],
        DeliveryResult {
            duplicate: true,
            ..again[1].clone()
        }
    );
    assert_eq!(next_message(&mut stream).await.id, again[1].message_id);
    assert_nothing_before_a_marker(&app, &mut stream, "u1").await;

    let inbox = app.inbox("u1", ListInboxRequest::default()).await.unwrap();
    assert_eq!(inbox.messages.len(), 3, "k1, k2 and the marker");
    assert_eq!(inbox.unread_count, 3);
    app.running.stop().await;
}

#[tokio::test]
async fn refusals_are_results_and_are_idempotent_too() {
    let app = spawn_app().await;
    let expired = Delivery {
        expire_time: Some(prost_types::Timestamp {
            seconds: 1_000,
            nanos: 0,
        }),
        ..in_app("old", "u1", 0)
    };
    let no_address = Delivery {
        channel: Channel::Email as i32,
        content: Some(MessageContent {
            body: Some(message_content::Body::Email(EmailContent {
                subject: "hi".into(),
                ..Default::default()
            })),
        }),
        ..in_app("mail", "u1", 0)
    };
    let results = app.deliver(vec![expired.clone(), no_address.clone()]).await;
    let outcomes: Vec<_> = results
        .iter()
        .map(|r| (r.outcome(), r.message_id.as_str(), r.duplicate))
        .collect();
    assert_eq!(
        outcomes,
        [
            (DeliveryOutcome::Expired, "", false),
            (DeliveryOutcome::NoAddress, "", false)
        ]
    );
    let again = app.deliver(vec![expired, no_address]).await;
    assert!(
        again.iter().all(|r| r.duplicate) && again[0].outcome() == DeliveryOutcome::Expired,
        "{again:?}"
    );
    assert!(app.inbox_is_empty("u1").await);
    app.running.stop().await;
}

#[tokio::test]
async fn an_invalid_delivery_rejects_the_whole_batch() {
    let app = spawn_app().await;
    let mismatched = Delivery {
        channel: Channel::Sms as i32,
        ..in_app("bad", "u1", 0)
    };
    let status = app
        .try_deliver(vec![in_app("good", "u1", 0), mismatched])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("deliveries[1].content"),
        "{}",
        status.message()
    );
    let empty = app.try_deliver(vec![]).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(app.inbox_is_empty("u1").await);
    app.running.stop().await;
}

#[tokio::test]
async fn a_token_valid_for_ever_is_refused_and_harms_nothing() {
    let app = spawn_app().await;
    let clock = herald_runtime::Clock::system();
    for ttl in [Duration::MAX, Duration::from_secs(400 * 24 * 3600)] {
        let token = herald_runtime::auth::sign_user_token(
            &app.credentials.workspace,
            "u1",
            ttl,
            clock.now(),
        )
        .unwrap();
        let status = app
            .public()
            .await
            .list_inbox(authorized(ListInboxRequest::default(), &token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // The server is unharmed: a token within the maximum lifetime works.
    assert!(app.inbox_is_empty("u1").await);
    app.running.stop().await;
}

#[tokio::test]
async fn a_token_cannot_reach_another_users_stream_inbox_or_messages() {
    let app = spawn_app().await;
    let theirs = app.deliver_one(in_app("k1", "B", 0)).await;
    let mut client = app.public().await;

    let subscribe = SubscribeRequest {
        session_id: String::new(),
        user_id: "B".into(),
    };
    let status = client
        .subscribe(app.as_user("A", subscribe))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let list = ListInboxRequest {
        user_id: "B".into(),
        ..Default::default()
    };
    assert_eq!(
        app.inbox("A", list).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // Naming oneself is fine.
    let own = ListInboxRequest {
        user_id: "A".into(),
        ..Default::default()
    };
    assert!(app.inbox("A", own).await.unwrap().messages.is_empty());

    for state in [
        MessageState::Displayed,
        MessageState::Clicked,
        MessageState::Archived,
    ] {
        let status = app.update("A", &theirs, state, "").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{state:?}");
    }
    let status = app
        .update("A", "msg_does_not_exist", MessageState::Read, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // B's message is untouched.
    let inbox = app.inbox("B", ListInboxRequest::default()).await.unwrap();
    assert_eq!(inbox.messages[0].state(), MessageState::Pending);
    assert_eq!(inbox.unread_count, 1);
    app.running.stop().await;
}

#[tokio::test]
async fn a_click_updates_the_inbox_and_is_recorded_once() {
    let app = spawn_app().await;
    let id = app.deliver_one(in_app("k1", "u1", 0)).await;
    assert_eq!(
        app.inbox("u1", ListInboxRequest::default())
            .await
            .unwrap()
            .unread_count,
        1
    );

    let status = app
        .update("u1", &id, MessageState::Clicked, "nope")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("action_id"),
        "{}",
        status.message()
    );

    let clicked = app
        .update("u1", &id, MessageState::Clicked, "go")
        .await
        .unwrap();
    assert_eq!(clicked.state(), MessageState::Clicked);
    assert!(clicked.click_time.is_some() && clicked.read_time.is_some());
    assert!(clicked.display_time.is_none());
    // Repeating changes nothing; an earlier state is still recorded but does not go back.
    let repeated = app
        .update("u1", &id, MessageState::Clicked, "go")
        .await
        .unwrap();
    assert_eq!(repeated, clicked);
    let displayed = app
        .update("u1", &id, MessageState::Displayed, "")
        .await
        .unwrap();
    assert_eq!(displayed.state(), MessageState::Clicked);
    assert!(displayed.display_time.is_some());
    assert_eq!(displayed.click_time, clicked.click_time);

    let inbox = app.inbox("u1", ListInboxRequest::default()).await.unwrap();
    assert_eq!(inbox.messages.len(), 1);
    assert_eq!(inbox.messages[0], displayed);
    assert_eq!(inbox.unread_count, 0, "a click marks the message read");

    let interactions = app
        .analytics_received(&[
            format!("{id}:sent"),
            format!("{id}:click"),
            format!("{id}:impression"),
        ])
        .await;
    let click = interactions
        .iter()
        .find(|i| i.kind() == InteractionKind::Click)
        .unwrap();
    assert_eq!(click.action_id, "go");
    assert_eq!(click.message_id, id);
    // Recorded once at segmentation too: the repeated click staged nothing.
    let at_segmentation = app
        .segmentation_received(&[format!("{id}:click"), format!("{id}:impression")])
        .await;
    assert_eq!(
        at_segmentation
            .iter()
            .filter(|i| i.kind() == InteractionKind::Click)
            .collect::<Vec<_>>(),
        [click]
    );
    app.running.stop().await;
}

#[tokio::test]
async fn a_click_is_relayed_to_segmentation_with_its_campaign_and_kind_and_a_send_is_not() {
    let app = spawn_app().await;
    let id = app
        .deliver_one(Delivery {
            campaign_id: "cmp_x".into(),
            ..in_app("k1", "u1", 0)
        })
        .await;
    app.update("u1", &id, MessageState::Clicked, "go")
        .await
        .unwrap();

    let at_segmentation = app.segmentation_received(&[format!("{id}:click")]).await;
    // The SENT was staged before the click; one relay sends a destination's items in the
    // order they were staged, so had it been staged for segmentation it would be here by
    // now.
    let kinds: Vec<(&str, InteractionKind)> = at_segmentation
        .iter()
        .map(|i| (i.id.as_str(), i.kind()))
        .collect();
    assert_eq!(
        kinds,
        [(format!("{id}:click").as_str(), InteractionKind::Click)],
        "the click and nothing else"
    );
    let click = &at_segmentation[0];
    assert_eq!(
        (
            click.campaign_id.as_str(),
            click.variant_id.as_str(),
            click.user_id.as_str(),
            click.message_id.as_str(),
            click.action_id.as_str(),
        ),
        ("cmp_x", "var_a", "u1", id.as_str(), "go")
    );
    assert!(click.time.is_some());
    // Analytics has both, the same click among them.
    let at_analytics = app
        .analytics_received(&[format!("{id}:sent"), format!("{id}:click")])
        .await;
    assert!(at_analytics.contains(click));
    app.running.stop().await;
}

#[tokio::test]
async fn while_segmentation_answers_unimplemented_nothing_waits_for_it() {
    let segmentation = FakeSegmentation::default();
    segmentation.unimplemented.store(true, Ordering::SeqCst);
    let app = spawn_app_downstream_of(herald_runtime::Clock::system(), segmentation, |_| {}).await;
    let id = tokio::time::timeout(WAIT, async {
        let mut stream = app.subscribe("u1").await;
        let id = app.deliver_one(in_app("k1", "u1", 0)).await;
        assert_eq!(next_message(&mut stream).await.id, id);
        app.update("u1", &id, MessageState::Clicked, "go")
            .await
            .unwrap();
        app.update("u1", &id, MessageState::Dismissed, "")
            .await
            .unwrap();
        id
    })
    .await
    .expect("deliver, the stream, and the state updates answer without segmentation");

    // Analytics' hop is not held up by segmentation's.
    app.analytics_received(&[
        format!("{id}:sent"),
        format!("{id}:delivered"),
        format!("{id}:click"),
        format!("{id}:dismissal"),
    ])
    .await;
    // Segmentation's items (DELIVERED, CLICK, DISMISSAL) are parked at once, for
    // `herald outbox replay` once segmentation implements the RPC, not retried forever.
    eventually(WAIT, "segmentation's items parked", || async {
        (app.parked("segmentation").await == 3).then_some(())
    })
    .await;
    assert_eq!(app.parked("analytics").await, 0);
    assert!(app.segmentation.calls.load(Ordering::SeqCst) >= 3);
    assert!(app.segmentation.interactions.lock().unwrap().is_empty());
    tokio::time::timeout(WAIT, app.running.stop())
        .await
        .expect("delivery stops promptly");
}

#[tokio::test]
async fn states_a_user_cannot_report_are_invalid() {
    let app = spawn_app().await;
    let id = app.deliver_one(in_app("k1", "u1", 0)).await;
    for state in [
        0,
        MessageState::Pending as i32,
        MessageState::Delivered as i32,
        99,
    ] {
        let request = UpdateMessageStateRequest {
            message_id: id.clone(),
            state,
            action_id: String::new(),
        };
        let status = app
            .public()
            .await
            .update_message_state(app.as_user("u1", request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "state {state}");
        assert!(status.message().contains("state"), "{}", status.message());
    }
    app.running.stop().await;
}

#[tokio::test]
async fn dismissed_read_and_archived_messages_leave_the_inbox_as_the_contract_says() {
    let app = spawn_app().await;
    let a = app.deliver_one(in_app("a", "u1", 0)).await;
    let b = app.deliver_one(in_app("b", "u1", 0)).await;
    let dismissed = app
        .update("u1", &a, MessageState::Dismissed, "")
        .await
        .unwrap();
    assert_eq!(dismissed.state(), MessageState::Dismissed);
    assert!(
        dismissed.read_time.is_none(),
        "a dismissal does not read the message"
    );
    app.update("u1", &b, MessageState::Read, "").await.unwrap();
    let archived = app
        .update("u1", &b, MessageState::Archived, "")
        .await
        .unwrap();
    assert!(archived.archive_time.is_some() && archived.read_time.is_some());

    let inbox = app.inbox("u1", ListInboxRequest::default()).await.unwrap();
    assert_eq!(
        inbox
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [a.as_str()]
    );
    assert_eq!(inbox.unread_count, 1);
    let all = app
        .inbox(
            "u1",
            ListInboxRequest {
                include_archived: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.messages.len(), 2);
    app.analytics_received(&[
        format!("{a}:sent"),
        format!("{b}:sent"),
        format!("{a}:dismissal"),
    ])
    .await;
    app.segmentation_received(&[format!("{a}:dismissal")]).await;
    app.running.stop().await;
}

#[tokio::test]
async fn the_inbox_pages_newest_first() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.deliver_one(in_app(&format!("k{i}"), "u1", 0)).await);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListInboxRequest {
            page_size: 2,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = app.inbox("u1", request).await.unwrap();
        assert!(page.messages.len() <= 2);
        assert_eq!(page.unread_count, 5);
        seen.extend(page.messages.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);

    let negative = app
        .inbox(
            "u1",
            ListInboxRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    let forged = ListInboxRequest {
        page_token: "garbage".into(),
        ..Default::default()
    };
    assert_eq!(
        app.inbox("u1", forged).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let clamped = app
        .inbox(
            "u1",
            ListInboxRequest {
                page_size: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(clamped.messages.len(), 5);
    app.running.stop().await;
}

#[tokio::test]
async fn calls_without_the_right_credential_are_unauthenticated() {
    let app = spawn_app().await;
    let mut client = app.public().await;
    let status = client
        .list_inbox(ListInboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // A server key is not a user token, and a user token is not the internal key.
    let status = client
        .list_inbox(authorized(
            ListInboxRequest::default(),
            app.credentials.internal_key.expose(),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut internal = DeliveryInternalServiceClient::new(app.channel().await);
    let request = DeliverRequest {
        workspace_id: herald_testkit::WORKSPACE.into(),
        deliveries: vec![in_app("k", "u1", 0)],
    };
    let status = internal
        .deliver(app.as_user("u1", request))
        .await
        .unwrap_err();
    // Told so, rather than "unknown API key".
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("not a user token"), "{status:?}");
    app.running.stop().await;
}

#[tokio::test]
async fn a_stream_closes_when_its_token_expires_on_the_clock() {
    let clock = herald_runtime::Clock::manual("2026-06-01T12:00:00Z".parse().unwrap());
    let app = spawn_app_with(clock.clone()).await;
    let token = app
        .credentials
        .user_token_at("u1", &clock, Duration::from_secs(3600));
    let request = authorized(SubscribeRequest::default(), &token);
    let mut stream = app
        .public()
        .await
        .subscribe(request)
        .await
        .unwrap()
        .into_inner();
    // Open for as long as the token is valid on the service's clock…
    let id = app.deliver_one(in_app("k-expiry", "u1", 0)).await;
    assert_eq!(next_message(&mut stream).await.id, id);
    // …and closed the moment it is not.
    clock.advance(Duration::from_secs(3600));
    let status = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("closed in time")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    app.running.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_streams_promptly() {
    let app = spawn_app().await;
    let mut stream = app.subscribe("u1").await;
    let id = app.deliver_one(in_app("k1", "u1", 0)).await;
    assert_eq!(next_message(&mut stream).await.id, id);
    let started = std::time::Instant::now();
    app.running.shutdown.cancel();
    let end = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the stream ends");
    assert!(
        matches!(&end, Err(s) if s.code() == Code::Unavailable) || matches!(end, Ok(None)),
        "{end:?}"
    );
    tokio::time::timeout(WAIT, app.running.handle)
        .await
        .expect("server exits")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "drained in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn preferences_default_update_by_mask_and_are_enforced() {
    let app = spawn_app().await;
    let mut client = app.public().await;
    let defaults = client
        .get_preferences(app.as_user("u1", GetPreferencesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(defaults.preferences, Some(Preferences::default()));

    let update = UpdatePreferencesRequest {
        preferences: Some(Preferences {
            opted_out_categories: vec!["news".into()],
            channels: vec![ChannelPreference {
                channel: Channel::Email as i32,
                enabled: false,
            }],
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["opted_out_categories".into()],
        }),
    };
    let updated = client
        .update_preferences(app.as_user("u1", update))
        .await
        .unwrap()
        .into_inner();
    let updated = updated.preferences.unwrap();
    assert_eq!(updated.opted_out_categories, ["news"]);
    assert!(
        updated.channels.is_empty(),
        "fields outside the mask are kept"
    );
    assert!(updated.update_time.is_some());
    let read = client
        .get_preferences(app.as_user("u1", GetPreferencesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.preferences, Some(updated));

    let bad = UpdatePreferencesRequest {
        preferences: Some(Preferences::default()),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["everything".into()],
        }),
    };
    let status = client
        .update_preferences(app.as_user("u1", bad))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let news = Delivery {
        category: "news".into(),
        ..in_app("k1", "u1", 0)
    };
    let elsewhere = Delivery {
        category: "news".into(),
        ..in_app("k2", "u2", 0)
    };
    let results = app.deliver(vec![news, elsewhere]).await;
    assert_eq!(results[0].outcome(), DeliveryOutcome::CategoryOptedOut);
    assert_eq!(
        results[1].outcome(),
        DeliveryOutcome::Accepted,
        "preferences are per user"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn streams_beyond_a_cap_are_resource_exhausted_until_one_closes() {
    let app = spawn_app_configured(herald_runtime::Clock::system(), |config| {
        config.max_streams_per_user = 2;
        config.max_streams = 3;
    })
    .await;
    let first = app.subscribe("u1").await;
    let _second = app.subscribe("u1").await;
    let refused = app
        .try_subscribe("u1")
        .await
        .expect_err("a third stream of u1");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("max_streams_per_user"),
        "{refused:?}"
    );
    let _other = app.subscribe("u2").await;
    let refused = app
        .try_subscribe("u3")
        .await
        .expect_err("a fourth stream in all");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("(max_streams)"), "{refused:?}");

    // Once the client drops a stream, the server lets a new one open.
    drop(first);
    eventually(WAIT, "a closed stream to free its place", || async {
        app.try_subscribe("u1").await.ok()
    })
    .await;
    app.running.stop().await;
}

#[tokio::test]
async fn a_replay_of_many_pending_messages_delivers_each_once_and_records_each_delivery() {
    let app = spawn_app().await;
    let deliveries: Vec<Delivery> = (0..100)
        .map(|i| in_app(&format!("k{i}"), "u1", 0))
        .collect();
    let ids: Vec<String> = app
        .deliver(deliveries)
        .await
        .into_iter()
        .map(|r| r.message_id)
        .collect();

    let mut stream = app.subscribe("u1").await;
    let mut replayed = Vec::new();
    for _ in 0..100 {
        let message = next_message(&mut stream).await;
        assert_eq!(message.state(), MessageState::Delivered, "{}", message.id);
        replayed.push(message.id);
    }
    replayed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(replayed, expected, "each pending message once");
    assert_nothing_before_a_marker(&app, &mut stream, "u1").await;
    drop(stream);

    let delivered = |interactions: &Mutex<Vec<Interaction>>| {
        interactions
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.kind() == InteractionKind::Delivered)
            .map(|i| i.id.clone())
            .collect::<Vec<_>>()
    };
    // 100 replayed and the marker: each DELIVERED once, at analytics and at segmentation
    // (the mark stages both in one insert).
    for (at, interactions) in [
        ("analytics", &app.analytics.interactions),
        ("segmentation", &app.segmentation.interactions),
    ] {
        eventually(WAIT, &format!("101 DELIVERED interactions at {at}"), || {
            let found = delivered(interactions);
            std::future::ready((found.len() >= 101).then_some(()))
        })
        .await;
        let mut found = delivered(interactions);
        found.sort();
        found.dedup();
        assert_eq!(
            found.len(),
            delivered(interactions).len(),
            "no DELIVERED twice at {at}"
        );
        assert_eq!(found.len(), 101, "at {at}");
        for id in &ids {
            assert!(found.contains(&format!("{id}:delivered")), "{id} at {at}");
        }
    }
    app.running.stop().await;
}

/// Reads the stream's heartbeats until one carries `unread` (a heartbeat already on its
/// way may carry the count from before the last change); panics after the wait.
async fn heartbeat_with(stream: &mut Streaming<SubscribeResponse>, unread: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = None;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no heartbeat with unread_count {unread}, last {last:?}"))
            .expect("stream ok")
            .expect("stream open");
        if let Some(Kind::Heartbeat(heartbeat)) = item.kind {
            if heartbeat.unread_count == unread {
                return;
            }
            last = Some(heartbeat.unread_count);
        }
    }
}

#[tokio::test]
async fn heartbeats_carry_the_unread_count_as_it_changes() {
    let clock = herald_runtime::Clock::manual("2026-06-01T12:00:00Z".parse().unwrap());
    let app = spawn_app_configured(clock.clone(), |c| c.heartbeat_secs = 1).await;
    let token = app
        .credentials
        .user_token_at("u1", &clock, Duration::from_secs(3600));
    let mut stream = app
        .public()
        .await
        .subscribe(authorized(SubscribeRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    heartbeat_with(&mut stream, 0).await;

    // Delivered (and so on the stream): counted.
    let expiring = Delivery {
        expire_time: Some(herald_core::time::proto_from_ms(clock.now_ms() + 60_000)),
        ..in_app("expiring", "u1", 0)
    };
    let results = app
        .deliver(vec![in_app("lasting", "u1", 0), expiring])
        .await;
    heartbeat_with(&mut stream, 2).await;
    // Read: no longer counted.
    let read = UpdateMessageStateRequest {
        message_id: results[0].message_id.clone(),
        state: MessageState::Read as i32,
        action_id: String::new(),
    };
    app.public()
        .await
        .update_message_state(authorized(read, &token))
        .await
        .unwrap();
    heartbeat_with(&mut stream, 1).await;
    // Expired on the clock: no longer counted, with no other change to the inbox.
    clock.advance(Duration::from_secs(61));
    heartbeat_with(&mut stream, 0).await;
    app.running.stop().await;
}

#[tokio::test]
async fn a_delivery_with_a_goal_sends_it_to_analytics_with_the_sent_interaction_only() {
    let app = spawn_app().await;
    let window = prost_types::Duration {
        seconds: 3 * 86_400,
        nanos: 0,
    };
    let with_goal = app
        .deliver_one(Delivery {
            goal_event_name: "purchased".into(),
            attribution_window: Some(window),
            ..in_app("k1", "u1", 0)
        })
        .await;
    let without_goal = app.deliver_one(in_app("k2", "u1", 0)).await;
    app.update("u1", &with_goal, MessageState::Clicked, "go")
        .await
        .unwrap();

    let sent = format!("{with_goal}:sent");
    let click = format!("{with_goal}:click");
    let plain = format!("{without_goal}:sent");
    let got = app
        .analytics_received(&[sent.clone(), click.clone(), plain.clone()])
        .await;
    let goal_of = |id: &str| {
        let i = got.iter().find(|i| i.id == id).expect("received");
        (i.goal_event_name.clone(), i.attribution_window)
    };
    assert_eq!(goal_of(&sent), ("purchased".into(), Some(window)));
    // Only the exposure carries the goal; a campaign without one sends none.
    assert_eq!(goal_of(&click), (String::new(), None));
    assert_eq!(goal_of(&plain), (String::new(), None));

    // A window beyond 90 days refuses the whole batch, naming the field.
    let too_long = Delivery {
        goal_event_name: "purchased".into(),
        attribution_window: Some(prost_types::Duration {
            seconds: 91 * 86_400,
            nanos: 0,
        }),
        ..in_app("k3", "u2", 0)
    };
    let status = app
        .try_deliver(vec![in_app("k4", "u2", 0), too_long])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        herald_testkit::violations(&status),
        ["deliveries[1].attribution_window"]
    );
    assert!(app.inbox_is_empty("u2").await);
    app.running.stop().await;
}
