//! Push dispatch over real parts: delivery on 127.0.0.1:0 with a fresh database (SQLite,
//! or PostgreSQL with `HERALD_TEST_DATABASE=postgres`), a real HTTP server standing in for
//! the push provider (`HttpRecorder`, answering the statuses a test scripts), and a fake
//! analytics and segmentation recording the interactions relayed to them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::analytics::v1::analytics_internal_service_server::{
    AnalyticsInternalService, AnalyticsInternalServiceServer,
};
use herald_proto::analytics::v1::{self as analytics, Interaction, InteractionKind};
use herald_proto::common::v1::{
    Channel, InAppContent, MessageContent, MessageState, PushContent, message_content,
};
use herald_proto::delivery::v1::delivery_internal_service_client::DeliveryInternalServiceClient;
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::delivery::v1::*;
use herald_proto::segmentation::v1::segmentation_internal_service_server::{
    SegmentationInternalService, SegmentationInternalServiceServer,
};
use herald_proto::segmentation::v1::{self as segmentation};
use herald_runtime::{Clock, Config, Secret, ServiceKind};
use herald_testkit::{
    Credentials, HttpRecorder, Recorded, Running, TestDatabase, authorized, eventually,
};
use tonic::{Request, Response, Status};

const WAIT: Duration = Duration::from_secs(10);
/// The instant every test runs at (a manual clock: nothing here moves it).
const NOW: &str = "2026-03-08T04:30:00Z";
const PROVIDER_KEY: &str = "pk_test_provider_key";

/// Analytics and segmentation stand-ins, on one server: each records what it is sent.
#[derive(Clone, Default)]
struct Downstream {
    analytics: Arc<Mutex<Vec<Interaction>>>,
    segmentation: Arc<Mutex<Vec<Interaction>>>,
}

#[tonic::async_trait]
impl AnalyticsInternalService for Downstream {
    async fn record_interactions(
        &self,
        request: Request<analytics::RecordInteractionsRequest>,
    ) -> Result<Response<analytics::RecordInteractionsResponse>, Status> {
        let request = request.into_inner();
        let recorded = request.interactions.len() as u32;
        self.analytics.lock().unwrap().extend(request.interactions);
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

#[tonic::async_trait]
impl SegmentationInternalService for Downstream {
    async fn apply_interactions(
        &self,
        request: Request<segmentation::ApplyInteractionsRequest>,
    ) -> Result<Response<segmentation::ApplyInteractionsResponse>, Status> {
        let request = request.into_inner();
        let applied = request.interactions.len() as u32;
        self.segmentation
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
    downstream: Downstream,
    db: TestDatabase,
    clock: Clock,
    /// What delivery was started with, to start it again.
    config: Config,
}

/// Delivery with the push provider `provider` (none when `None`), configured further by
/// `configure`.
async fn spawn_app(provider: Option<&HttpRecorder>, configure: impl FnOnce(&mut Config)) -> App {
    let downstream = Downstream::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AnalyticsInternalServiceServer::new(downstream.clone()))
            .add_service(SegmentationInternalServiceServer::new(downstream.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Delivery, &db, &credentials);
    config.analytics_url = downstream_url.clone();
    config.segmentation_url = downstream_url;
    if let Some(provider) = provider {
        config.push_provider_url = Some(provider.url("/v1/push"));
        config.push_provider_key = Some(Secret::new(PROVIDER_KEY));
    }
    configure(&mut config);
    let clock = Clock::manual(NOW.parse().unwrap());
    let running =
        herald_testkit::spawn(config.clone(), clock.clone(), herald_delivery::serve).await;
    App {
        running,
        credentials,
        downstream,
        db,
        clock,
        config,
    }
}

impl App {
    async fn deliver(&self, deliveries: Vec<Delivery>) -> Vec<DeliveryResult> {
        let mut client = DeliveryInternalServiceClient::connect(self.running.url())
            .await
            .unwrap();
        let request = DeliverRequest {
            workspace_id: herald_testkit::WORKSPACE.into(),
            deliveries,
        };
        client
            .deliver(authorized(request, self.credentials.internal_key.expose()))
            .await
            .expect("deliver")
            .into_inner()
            .results
    }

    /// Delivers one message that must be accepted; returns its id.
    async fn deliver_one(&self, delivery: Delivery) -> String {
        let results = self.deliver(vec![delivery]).await;
        assert_eq!(
            results[0].outcome(),
            DeliveryOutcome::Accepted,
            "{results:?}"
        );
        results[0].message_id.clone()
    }

    /// Runs `sql` (one row, one column `n`) on delivery's database.
    async fn query_i64(&self, sql: &str, value: &str) -> Option<i64> {
        use herald_storage::sql;
        use sea_orm::ConnectionTrait;
        let db = herald_storage::connect(&self.db.url("delivery"))
            .await
            .unwrap();
        let backend = db.get_database_backend();
        let sql = sql.replace("$1", &sql::param(backend, 1));
        let row = db
            .query_one_raw(sql::statement(backend, sql, vec![value.into()]))
            .await
            .unwrap();
        let n = row.map(|row| {
            row.try_get::<i64>("", "n")
                .or_else(|_| row.try_get::<i16>("", "n").map(i64::from))
                .unwrap()
        });
        let _ = db.close().await;
        n
    }

    /// The message's state and update time, read from delivery's database.
    async fn message(&self, id: &str) -> (MessageState, i64) {
        let state = self
            .query_i64("SELECT state AS n FROM delivery_messages WHERE id = $1", id)
            .await
            .expect("the message is stored");
        let updated = self
            .query_i64(
                "SELECT update_time AS n FROM delivery_messages WHERE id = $1",
                id,
            )
            .await
            .unwrap();
        (MessageState::try_from(state as i32).unwrap(), updated)
    }

    /// Waits until the message is DELIVERED; returns when it became so.
    async fn delivered(&self, id: &str) -> i64 {
        eventually(WAIT, &format!("{id} DELIVERED"), || async {
            let (state, updated) = self.message(id).await;
            (state == MessageState::Delivered).then_some(updated)
        })
        .await
    }

    /// Outbox rows for `destination` that are parked.
    async fn parked(&self, destination: &str) -> i64 {
        self.query_i64(
            "SELECT COUNT(*) AS n FROM delivery_outbox WHERE failed_at IS NOT NULL AND destination = $1",
            destination,
        )
        .await
        .unwrap_or(0)
    }

    /// Waits until `at` (analytics' or segmentation's record) holds every id of
    /// `expected`; checks that none arrived twice.
    async fn received(
        &self,
        at: &Arc<Mutex<Vec<Interaction>>>,
        expected: &[String],
    ) -> Vec<Interaction> {
        let got = eventually(WAIT, "interactions", || async {
            let got = at.lock().unwrap().clone();
            expected
                .iter()
                .all(|id| got.iter().any(|i| &i.id == id))
                .then_some(got)
        })
        .await;
        let mut ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
        let before = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), before, "an interaction was recorded twice");
        got
    }
}

/// The user's own quiet hours and what they hold.
impl App {
    /// Sets `user_id`'s own quiet hours, through the public API.
    async fn quiet_hours(&self, user_id: &str, start: &str, end: &str, time_zone: &str) {
        let request = UpdatePreferencesRequest {
            preferences: Some(Preferences {
                quiet_hours: Some(QuietHoursOverride {
                    start_local_time: start.into(),
                    end_local_time: end.into(),
                    time_zone: time_zone.into(),
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["quiet_hours".into()],
            }),
        };
        let token = self
            .credentials
            .user_token_at(user_id, &self.clock, Duration::from_secs(600));
        DeliveryServiceClient::connect(self.running.url())
            .await
            .unwrap()
            .update_preferences(authorized(request, &token))
            .await
            .expect("update preferences");
    }

    /// When the push `id` held by its user's quiet hours is due to go; `None` when no
    /// timer holds it.
    async fn held_until(&self, id: &str) -> Option<i64> {
        self.query_i64(
            "SELECT due_at AS n FROM delivery_timers WHERE timer_key = $1",
            id,
        )
        .await
    }

    /// Moves the manual clock to `at` (RFC 3339).
    fn at(&self, at: &str) {
        self.clock.advance_to(at.parse().unwrap());
    }

    /// Stops delivery, moves the clock to `at` if given (while delivery is down), and
    /// starts it again on the same database, clock and providers.
    async fn restart(self, at: Option<&str>) -> App {
        self.running.stop().await;
        if let Some(at) = at {
            self.clock.advance_to(at.parse().unwrap());
        }
        let running = herald_testkit::spawn(
            self.config.clone(),
            self.clock.clone(),
            herald_delivery::serve,
        )
        .await;
        App { running, ..self }
    }
}

/// Milliseconds since the epoch of an RFC 3339 instant.
fn ms(at: &str) -> i64 {
    at.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn push(key: &str, user_id: &str, token: &str) -> Delivery {
    Delivery {
        idempotency_key: key.into(),
        user_id: user_id.into(),
        campaign_id: "cmp_1".into(),
        variant_id: "var_a".into(),
        channel: Channel::Push as i32,
        address: token.into(),
        content: Some(MessageContent {
            body: Some(message_content::Body::Push(PushContent {
                title: format!("title {key}"),
                body: format!("body {key}"),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

fn in_app(key: &str, user_id: &str) -> Delivery {
    Delivery {
        channel: Channel::InApp as i32,
        address: String::new(),
        content: Some(MessageContent {
            body: Some(message_content::Body::InApp(InAppContent {
                title: key.into(),
                ..Default::default()
            })),
        }),
        ..push(key, user_id, "")
    }
}

/// The provider's requests for message `id`.
fn for_message(requests: &[Recorded], id: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.header("idempotency-key") == Some(id))
        .count()
}

#[tokio::test]
async fn an_accepted_push_is_posted_to_the_provider_and_marked_delivered() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    let mut delivery = push("k1", "u1", "device-token-1");
    delivery.expire_time = Some(prost_types::Timestamp {
        seconds: 1_772_971_200,
        nanos: 0,
    });
    if let Some(message_content::Body::Push(content)) =
        delivery.content.as_mut().and_then(|c| c.body.as_mut())
    {
        content.deep_link = "myapp://reports/7".into();
        content.custom_data = Some(prost_types::Struct {
            fields: [(
                "report".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::NumberValue(7.0)),
                },
            )]
            .into(),
        });
    }
    let id = app.deliver_one(delivery).await;

    let posted = provider.received(WAIT, 1, |_| true).await;
    let request = &posted[0];
    assert_eq!(request.method, http::Method::POST);
    assert_eq!(request.path, "/v1/push");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(id.as_str()));
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(
        request.json(),
        serde_json::json!({
            "message_id": id,
            "workspace_id": herald_testkit::WORKSPACE,
            "user_id": "u1",
            "campaign_id": "cmp_1",
            "variant_id": "var_a",
            "token": "device-token-1",
            "notification": {
                "title": "title k1",
                "body": "body k1",
                "deep_link": "myapp://reports/7",
                "custom_data": {"report": 7.0}
            },
            "expire_time": "2026-03-08T12:00:00Z"
        })
    );

    // The provider has it: DELIVERED, at the (manual) clock's time.
    assert_eq!(app.delivered(&id).await, app.clock.now_ms());
    let interactions = app
        .received(
            &app.downstream.analytics,
            &[format!("{id}:sent"), format!("{id}:delivered")],
        )
        .await;
    let delivered = interactions
        .iter()
        .find(|i| i.id == format!("{id}:delivered"))
        .unwrap();
    assert_eq!(delivered.kind(), InteractionKind::Delivered);
    assert_eq!(
        (
            delivered.campaign_id.as_str(),
            delivered.variant_id.as_str(),
            delivered.user_id.as_str(),
            delivered.message_id.as_str(),
            delivered.delivery_idempotency_key.as_str()
        ),
        ("cmp_1", "var_a", "u1", id.as_str(), "k1")
    );
    // Segmentation gets DELIVERED too, for `received(…)` conditions.
    app.received(&app.downstream.segmentation, &[format!("{id}:delivered")])
        .await;

    // A push is not an in-app message: the user's inbox does not show it.
    let inbox = DeliveryServiceClient::connect(app.running.url())
        .await
        .unwrap()
        .list_inbox(authorized(
            ListInboxRequest::default(),
            &app.credentials
                .user_token_at("u1", &app.clock, Duration::from_secs(600)),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(inbox.messages.is_empty(), "{inbox:?}");
    assert_eq!(provider.requests().len(), 1);
    app.running.stop().await;
}

#[tokio::test]
async fn an_overloaded_or_failing_provider_is_retried_until_it_accepts() {
    let provider = HttpRecorder::start().await;
    provider.answer_next(&[503, 429]);
    let app = spawn_app(Some(&provider), |_| {}).await;
    let id = app.deliver_one(push("k1", "u1", "tok")).await;

    app.delivered(&id).await;
    let requests = provider.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 429, 200]
    );
    assert_eq!(
        for_message(&requests, &id),
        3,
        "every attempt names the message"
    );
    assert!(
        requests.windows(2).all(|w| w[0].body == w[1].body),
        "the same body each time"
    );
    // Delivered once: one DELIVERED interaction (received() refuses a second).
    app.received(&app.downstream.analytics, &[format!("{id}:delivered")])
        .await;
    // The next push of the user goes out after it, and the first is not sent again.
    let next = app.deliver_one(push("k2", "u1", "tok")).await;
    app.delivered(&next).await;
    let requests = provider.requests();
    assert_eq!(
        (for_message(&requests, &id), for_message(&requests, &next)),
        (3, 1)
    );
    app.running.stop().await;
}

#[tokio::test]
async fn a_provider_that_misses_the_deadline_is_retried() {
    let provider = HttpRecorder::start().await;
    // Answered only after delivery gave up on it (its deadline is 1 s here).
    provider.stall_next(Duration::from_secs(5), 200);
    let app = spawn_app(Some(&provider), |config| config.default_deadline_ms = 1000).await;
    let id = app.deliver_one(push("k1", "u1", "tok")).await;
    app.delivered(&id).await;
    assert!(for_message(&provider.requests(), &id) >= 2);
    app.received(&app.downstream.analytics, &[format!("{id}:delivered")])
        .await;
    app.running.stop().await;
}

#[tokio::test]
async fn a_refused_push_is_parked_at_once_and_not_retried() {
    let provider = HttpRecorder::start().await;
    provider.answer_otherwise(400);
    let app = spawn_app(Some(&provider), |_| {}).await;
    let refused = app.deliver_one(push("k1", "u1", "bad-token")).await;
    eventually(WAIT, "the refused push parked", || async {
        (app.parked("push").await == 1).then_some(())
    })
    .await;

    // The provider takes the user's next push: it went out after the refused one was
    // parked, which was sent once.
    provider.answer_otherwise(200);
    let next = app.deliver_one(push("k2", "u1", "good-token")).await;
    app.delivered(&next).await;
    let requests = provider.requests();
    assert_eq!(
        (
            for_message(&requests, &refused),
            for_message(&requests, &next)
        ),
        (1, 1)
    );
    assert_eq!(app.parked("push").await, 1);
    assert_eq!(app.message(&refused).await.0, MessageState::Pending);
    // Analytics has its SENT, never a DELIVERED.
    let interactions = app
        .received(
            &app.downstream.analytics,
            &[format!("{refused}:sent"), format!("{next}:delivered")],
        )
        .await;
    assert!(
        !interactions
            .iter()
            .any(|i| i.id == format!("{refused}:delivered")),
        "{interactions:?}"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn without_a_provider_a_push_is_answered_no_provider() {
    let app = spawn_app(None, |_| {}).await;
    let batch = vec![push("p1", "u1", "tok"), in_app("i1", "u1")];
    let results = app.deliver(batch.clone()).await;
    let outcomes: Vec<_> = results
        .iter()
        .map(|r| (r.outcome(), r.message_id.is_empty(), r.duplicate))
        .collect();
    assert_eq!(
        outcomes,
        [
            (DeliveryOutcome::NoProvider, true, false),
            (DeliveryOutcome::Accepted, false, false)
        ]
    );
    // The ledger keeps the answer.
    let again = app.deliver(batch).await;
    assert_eq!(again[0].outcome(), DeliveryOutcome::NoProvider);
    assert!(again.iter().all(|r| r.duplicate), "{again:?}");
    assert_eq!(
        app.query_i64(
            "SELECT COUNT(*) AS n FROM delivery_messages WHERE channel = 2 AND user_id = $1",
            "u1"
        )
        .await,
        Some(0),
        "nothing stored for the push"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn a_push_without_a_token_has_no_address_and_reaches_no_provider() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    let results = app.deliver(vec![push("k1", "u1", "")]).await;
    assert_eq!(results[0].outcome(), DeliveryOutcome::NoAddress);
    assert!(results[0].message_id.is_empty());
    // A push with a token, delivered after it, is the first the provider sees.
    let marker = app.deliver_one(push("k2", "u1", "tok")).await;
    app.delivered(&marker).await;
    let requests = provider.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("idempotency-key"), Some(marker.as_str()));
    app.running.stop().await;
}

// A user's own quiet hours (22:00-08:00 in Paris, UTC+1 on these dates) hold their pushes.
const PARIS_23_00: &str = "2026-03-08T22:00:00Z";
const PARIS_07_59: &str = "2026-03-09T06:59:00Z";
const PARIS_08_00: &str = "2026-03-09T07:00:00Z";

#[tokio::test]
async fn a_push_inside_the_users_quiet_hours_is_held_until_they_end() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    app.at(PARIS_23_00);
    app.quiet_hours("u1", "22:00", "08:00", "Europe/Paris")
        .await;

    // Accepted and stored PENDING, with a timer at the end of the window.
    let held = app.deliver_one(push("k1", "u1", "tok-1")).await;
    assert_eq!(app.held_until(&held).await, Some(ms(PARIS_08_00)));
    // A repeated key is the same held message, not a second hold.
    let again = app.deliver(vec![push("k1", "u1", "tok-1")]).await;
    assert_eq!(
        (again[0].message_id.as_str(), again[0].duplicate),
        (held.as_str(), true)
    );
    assert_eq!(again[0].outcome(), DeliveryOutcome::Accepted);
    // A user without quiet hours is sent at once; the held push is not.
    let other = app.deliver_one(push("k2", "u2", "tok-2")).await;
    app.delivered(&other).await;
    assert_eq!(for_message(&provider.requests(), &held), 0);
    assert_eq!(app.message(&held).await.0, MessageState::Pending);
    // Its SENT went to analytics when it was accepted.
    app.received(&app.downstream.analytics, &[format!("{held}:sent")])
        .await;

    // 07:59 in Paris: still quiet.
    app.at(PARIS_07_59);
    let marker = app.deliver_one(push("k3", "u2", "tok-2")).await;
    app.delivered(&marker).await;
    assert_eq!(for_message(&provider.requests(), &held), 0);
    assert_eq!(app.held_until(&held).await, Some(ms(PARIS_08_00)));

    // 08:00: the window is over; the push goes out once, whole, and is DELIVERED.
    app.at(PARIS_08_00);
    assert_eq!(app.delivered(&held).await, ms(PARIS_08_00));
    let requests = provider.requests();
    let posted: Vec<_> = requests
        .iter()
        .filter(|r| r.header("idempotency-key") == Some(held.as_str()))
        .collect();
    assert_eq!(posted.len(), 1, "{requests:?}");
    assert_eq!(posted[0].json()["token"], "tok-1");
    assert_eq!(posted[0].json()["notification"]["title"], "title k1");
    assert_eq!(app.held_until(&held).await, None);
    app.received(&app.downstream.analytics, &[format!("{held}:delivered")])
        .await;
    // Outside the window, the user's next push goes at once.
    let next = app.deliver_one(push("k4", "u1", "tok-1")).await;
    assert_eq!(app.held_until(&next).await, None);
    app.delivered(&next).await;
    assert_eq!(for_message(&provider.requests(), &held), 1);
    app.running.stop().await;
}

#[tokio::test]
async fn quiet_hours_changed_while_a_push_is_held_are_those_applied_at_its_release() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    app.at(PARIS_23_00);
    app.quiet_hours("u1", "22:00", "08:00", "Europe/Paris")
        .await;
    let held = app.deliver_one(push("k1", "u1", "tok-1")).await;

    // The user sleeps in: at 08:00 the push is held again, until 09:00.
    app.quiet_hours("u1", "22:00", "09:00", "Europe/Paris")
        .await;
    app.at(PARIS_08_00);
    let nine = ms("2026-03-09T08:00:00Z");
    eventually(WAIT, "the push held again", || async {
        (app.held_until(&held).await == Some(nine)).then_some(())
    })
    .await;
    assert_eq!(for_message(&provider.requests(), &held), 0);
    app.at("2026-03-09T08:00:00Z");
    assert_eq!(app.delivered(&held).await, nine);
    assert_eq!(for_message(&provider.requests(), &held), 1);
    app.running.stop().await;
}

#[tokio::test]
async fn a_held_push_that_expires_before_the_quiet_hours_end_is_not_sent() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    app.at(PARIS_23_00);
    app.quiet_hours("u1", "22:00", "08:00", "Europe/Paris")
        .await;
    let mut expiring = push("k1", "u1", "tok-1");
    expiring.expire_time = Some(prost_types::Timestamp {
        seconds: ms("2026-03-09T06:00:00Z") / 1000,
        nanos: 0,
    });
    let held = app.deliver_one(expiring).await;

    app.at(PARIS_08_00);
    eventually(WAIT, "the hold released", || async {
        app.held_until(&held).await.is_none().then_some(())
    })
    .await;
    // The user's next push leaves after anything the release staged; the expired one
    // was not.
    let next = app.deliver_one(push("k2", "u1", "tok-1")).await;
    app.delivered(&next).await;
    assert_eq!(for_message(&provider.requests(), &held), 0);
    assert_eq!(app.message(&held).await.0, MessageState::Pending);
    app.running.stop().await;
}

#[tokio::test]
async fn a_held_push_survives_a_restart_and_is_sent_once() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    app.at(PARIS_23_00);
    app.quiet_hours("u1", "22:00", "08:00", "Europe/Paris")
        .await;
    let held = app.deliver_one(push("k1", "u1", "tok-1")).await;

    assert_eq!(app.held_until(&held).await, Some(ms(PARIS_08_00)));

    // Delivery is down when the quiet hours end; the next start sends the push.
    assert_eq!(for_message(&provider.requests(), &held), 0);
    let app = app.restart(Some(PARIS_08_00)).await;
    assert_eq!(app.delivered(&held).await, ms(PARIS_08_00));
    // Another restart sends nothing again.
    let app = app.restart(None).await;
    let next = app.deliver_one(push("k2", "u1", "tok-1")).await;
    app.delivered(&next).await;
    assert_eq!(for_message(&provider.requests(), &held), 1);
    app.running.stop().await;
}

#[tokio::test]
async fn a_held_push_due_without_a_provider_waits_for_one() {
    let provider = HttpRecorder::start().await;
    let mut app = spawn_app(Some(&provider), |_| {}).await;
    app.at(PARIS_23_00);
    app.quiet_hours("u1", "22:00", "08:00", "Europe/Paris")
        .await;
    let held = app.deliver_one(push("k1", "u1", "tok-1")).await;

    // Restarted without its provider: at 08:00 the push is looked at again 10 min later.
    app.config.push_provider_url = None;
    let mut app = app.restart(Some(PARIS_08_00)).await;
    let later = ms(PARIS_08_00) + 10 * 60 * 1000;
    eventually(WAIT, "the push waiting for a provider", || async {
        (app.held_until(&held).await == Some(later)).then_some(())
    })
    .await;
    assert_eq!(app.message(&held).await.0, MessageState::Pending);

    // With the provider back, it goes out.
    app.config.push_provider_url = Some(provider.url("/v1/push"));
    let app = app.restart(Some("2026-03-09T07:10:00Z")).await;
    assert_eq!(app.delivered(&held).await, later);
    assert_eq!(for_message(&provider.requests(), &held), 1);
    app.running.stop().await;
}

#[tokio::test]
async fn a_critical_push_is_not_held_by_the_users_quiet_hours() {
    let provider = HttpRecorder::start().await;
    let app = spawn_app(Some(&provider), |_| {}).await;
    app.at(PARIS_23_00);
    app.quiet_hours("u1", "22:00", "08:00", "Europe/Paris")
        .await;
    let mut critical = push("k1", "u1", "tok-1");
    critical.critical = true;
    let sent = app.deliver_one(critical).await;
    assert_eq!(app.held_until(&sent).await, None);
    assert_eq!(app.delivered(&sent).await, ms(PARIS_23_00));
    assert_eq!(for_message(&provider.requests(), &sent), 1);
    app.running.stop().await;
}
