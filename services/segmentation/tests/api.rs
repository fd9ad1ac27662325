//! Segmentation over real gRPC: a fresh database per test, and a small recording server
//! standing in for trigger's internal service.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::common::v1::{Event, Identity};
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use herald_proto::segmentation::v1::{ApplyEventsRequest, ApplyIdentitiesRequest};
use herald_proto::trigger::v1::trigger_internal_service_server::{
    TriggerInternalService, TriggerInternalServiceServer,
};
use herald_proto::trigger::v1::*;
use herald_runtime::{Clock, ServiceKind};
use herald_testkit::{
    Credentials, Proxy, Running, TestDatabase, WORKSPACE, assert_refused, authorized, eventually,
    violations,
};
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// What the stand-in trigger received: workspace, event, and the authorization header.
#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<(String, UserEvent, String)>>>,
    /// Calls still to refuse with UNAVAILABLE before accepting.
    refuse: Arc<Mutex<u32>>,
}

impl Recorder {
    fn failing_first(calls: u32) -> Self {
        Recorder {
            refuse: Arc::new(Mutex::new(calls)),
            ..Default::default()
        }
    }

    fn events(&self) -> Vec<(String, UserEvent, String)> {
        self.received.lock().unwrap().clone()
    }

    fn message_ids(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .map(|(_, e, _)| e.event.unwrap_or_default().message_id)
            .collect()
    }

    /// Serves on `listener` until the test ends.
    fn serve(&self, listener: TcpListener) {
        let service = TriggerInternalServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
    }
}

#[tonic::async_trait]
impl TriggerInternalService for Recorder {
    async fn handle_events(
        &self,
        request: Request<HandleEventsRequest>,
    ) -> Result<Response<HandleEventsResponse>, Status> {
        {
            let mut refuse = self.refuse.lock().unwrap();
            if *refuse > 0 {
                *refuse -= 1;
                return Err(Status::unavailable("trigger is starting"));
            }
        }
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let request = request.into_inner();
        let handled = request.events.len() as u32;
        let mut received = self.received.lock().unwrap();
        for event in request.events {
            received.push((request.workspace_id.clone(), event, auth.clone()));
        }
        Ok(Response::new(HandleEventsResponse {
            handled,
            duplicates: 0,
        }))
    }

    async fn handle_segment_transitions(
        &self,
        _: Request<HandleSegmentTransitionsRequest>,
    ) -> Result<Response<HandleSegmentTransitionsResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }

    async fn forget_user(
        &self,
        _: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }

    async fn list_segment_references(
        &self,
        _: Request<ListSegmentReferencesRequest>,
    ) -> Result<Response<ListSegmentReferencesResponse>, Status> {
        Ok(Response::new(ListSegmentReferencesResponse::default()))
    }

    async fn get_display_settings(
        &self,
        _: Request<herald_proto::trigger::v1::GetDisplaySettingsRequest>,
    ) -> Result<Response<herald_proto::trigger::v1::GetDisplaySettingsResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
}

struct App {
    running: Running,
    credentials: Credentials,
    internal: SegmentationInternalServiceClient<Channel>,
    _db: TestDatabase,
}

impl App {
    fn internal_key(&self) -> String {
        self.credentials.internal_key.expose().to_owned()
    }

    /// (applied, duplicates) of ApplyEvents.
    async fn apply_events(&mut self, events: Vec<Event>) -> Result<(u32, u32), Status> {
        let request = authorized(
            ApplyEventsRequest {
                workspace_id: WORKSPACE.into(),
                events,
            },
            &self.internal_key(),
        );
        let r = self.internal.apply_events(request).await?.into_inner();
        Ok((r.applied, r.duplicates))
    }

    /// (applied, duplicates) of ApplyIdentities.
    async fn apply_identities(&mut self, identities: Vec<Identity>) -> Result<(u32, u32), Status> {
        let request = authorized(
            ApplyIdentitiesRequest {
                workspace_id: WORKSPACE.into(),
                identities,
            },
            &self.internal_key(),
        );
        let r = self.internal.apply_identities(request).await?.into_inner();
        Ok((r.applied, r.duplicates))
    }
}

/// Segmentation on a fresh database, relaying to trigger at `trigger`.
async fn spawn_app(trigger: SocketAddr) -> App {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Segmentation, &db, &credentials);
    config.trigger_url = format!("http://{trigger}");
    let running = herald_testkit::spawn(config, Clock::system(), herald_segmentation::serve).await;
    let internal = SegmentationInternalServiceClient::connect(running.url())
        .await
        .expect("connect");
    App {
        running,
        credentials,
        internal,
        _db: db,
    }
}

/// A recording trigger on a port of its own.
async fn spawn_trigger(recorder: &Recorder) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    recorder.serve(listener);
    addr
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn null() -> Value {
    Value {
        kind: Some(Kind::NullValue(0)),
    }
}

fn traits(pairs: &[(&str, Value)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn event(id: &str, user: &str, name: &str) -> Event {
    Event {
        message_id: id.into(),
        user_id: user.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn identity(id: &str, user: &str, t: Struct) -> Identity {
    Identity {
        message_id: id.into(),
        user_id: user.into(),
        traits: Some(t),
        ..Default::default()
    }
}

async fn received(recorder: &Recorder, count: usize) -> Vec<(String, UserEvent, String)> {
    eventually(Duration::from_secs(15), "events at trigger", || async {
        let events = recorder.events();
        (events.len() >= count).then_some(events)
    })
    .await
}

#[tokio::test]
async fn events_reach_trigger_with_the_merged_traits() {
    let recorder = Recorder::default();
    let mut app = spawn_app(spawn_trigger(&recorder).await).await;

    let first = traits(&[
        ("plan", string("free")),
        ("company", string("Acme")),
        ("email", string("a@acme.io")),
    ]);
    assert_eq!(
        app.apply_identities(vec![identity("i1", "u1", first)])
            .await
            .unwrap(),
        (1, 0)
    );
    // A later update replaces one key, removes one with null and keeps the rest.
    let second = traits(&[("plan", string("pro")), ("email", null())]);
    assert_eq!(
        app.apply_identities(vec![identity("i2", "u1", second)])
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(
        app.apply_events(vec![event("e1", "u1", "integration_connected")])
            .await
            .unwrap(),
        (1, 0)
    );

    let events = received(&recorder, 1).await;
    assert_eq!(events.len(), 1);
    let (workspace, user_event, auth) = &events[0];
    assert_eq!(workspace, WORKSPACE);
    assert_eq!(
        auth,
        &format!("Bearer {}", app.internal_key()),
        "segmentation presents the internal key"
    );
    let event = user_event.event.as_ref().unwrap();
    assert_eq!(
        (event.message_id.as_str(), event.name.as_str()),
        ("e1", "integration_connected")
    );
    assert_eq!(
        user_event.traits,
        Some(traits(&[
            ("plan", string("pro")),
            ("company", string("Acme"))
        ]))
    );
    assert!(user_event.segment_ids.is_empty());
    app.running.stop().await;
}

#[tokio::test]
async fn a_user_without_traits_is_created_and_sent_without_traits() {
    let recorder = Recorder::default();
    let mut app = spawn_app(spawn_trigger(&recorder).await).await;
    app.apply_events(vec![
        event("e1", "new-user", "opened"),
        event("e2", "new-user", "opened"),
    ])
    .await
    .unwrap();
    let events = received(&recorder, 2).await;
    assert_eq!(
        recorder.message_ids(),
        ["e1", "e2"],
        "one user's events keep their order"
    );
    assert!(events.iter().all(|(_, e, _)| e.traits.is_none()));
    app.running.stop().await;
}

#[tokio::test]
async fn a_repeated_message_id_reaches_trigger_once() {
    let recorder = Recorder::default();
    let mut app = spawn_app(spawn_trigger(&recorder).await).await;

    assert_eq!(
        app.apply_events(vec![event("e1", "u1", "opened")])
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(
        app.apply_events(vec![event("e1", "u1", "opened")])
            .await
            .unwrap(),
        (0, 1)
    );
    // Within one request too.
    let batch = vec![
        event("e2", "u1", "opened"),
        event("e2", "u1", "opened"),
        event("e1", "u1", "opened"),
    ];
    assert_eq!(app.apply_events(batch).await.unwrap(), (1, 2));
    // Identities are idempotent on their message_id as well.
    let update = identity("i1", "u1", traits(&[("plan", string("pro"))]));
    assert_eq!(
        app.apply_identities(vec![update.clone()]).await.unwrap(),
        (1, 0)
    );
    assert_eq!(app.apply_identities(vec![update]).await.unwrap(), (0, 1));
    // A marker after the duplicates: once it arrives, anything duplicated would have too.
    app.apply_events(vec![event("marker", "u1", "opened")])
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "the marker", || async {
        recorder
            .message_ids()
            .contains(&"marker".to_owned())
            .then_some(())
    })
    .await;
    // Items leave in the order they were stored: what was not before the marker never
    // comes.
    assert_eq!(recorder.message_ids(), ["e1", "e2", "marker"]);
    app.running.stop().await;
}

#[tokio::test]
async fn events_wait_for_trigger_while_it_is_down() {
    // Trigger is not reachable at first.
    let proxy = Proxy::cut_off().await;
    let mut app = spawn_app(proxy.addr()).await;
    app.apply_events(vec![
        event("e1", "u1", "opened"),
        event("e2", "u2", "opened"),
    ])
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "a relay attempt", || async {
        (proxy.refused() > 0).then_some(())
    })
    .await;

    // Then it comes up, but refuses its first calls while it is starting.
    let recorder = Recorder::failing_first(2);
    proxy.forward(spawn_trigger(&recorder).await);
    app.apply_events(vec![event("e3", "u1", "opened")])
        .await
        .unwrap();

    received(&recorder, 3).await;
    let mut ids = recorder.message_ids();
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3"]);
    assert_eq!(
        *recorder.refuse.lock().unwrap(),
        0,
        "the refused calls were retried"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn internal_rpcs_need_the_internal_key() {
    let recorder = Recorder::default();
    let app = spawn_app(spawn_trigger(&recorder).await).await;
    let mut client = app.internal.clone();
    let events = ApplyEventsRequest {
        workspace_id: WORKSPACE.into(),
        events: vec![event("e1", "u1", "opened")],
    };

    let ingest_key = app.credentials.ingest_key.expose().to_owned();
    let status = client
        .apply_events(authorized(events.clone(), &ingest_key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let identities = ApplyIdentitiesRequest {
        workspace_id: WORKSPACE.into(),
        identities: vec![],
    };
    let status = client
        .apply_identities(authorized(identities, &ingest_key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let admin_key = app.credentials.admin_key.expose().to_owned();
    let status = client
        .apply_events(authorized(events.clone(), &admin_key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client.apply_events(Request::new(events)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Refused calls change nothing: the first event to reach trigger is a marker sent
    // after them with the internal key.
    let mut app = app;
    app.apply_events(vec![event("marker", "u1", "opened")])
        .await
        .unwrap();
    received(&recorder, 1).await;
    assert_eq!(recorder.message_ids(), ["marker"]);
    app.running.stop().await;
}

#[tokio::test]
async fn invalid_events_name_their_fields_and_write_nothing() {
    let recorder = Recorder::default();
    let mut app = spawn_app(spawn_trigger(&recorder).await).await;
    let bad = vec![
        event("e1", "u1", "opened"),
        event("e2", "", "opened"),
        event("", "u3", ""),
    ];
    let status = app.apply_events(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "events[1].user_id",
            "events[2].message_id",
            "events[2].name"
        ]
    );

    let key = app.internal_key();
    let request = ApplyEventsRequest {
        workspace_id: String::new(),
        events: vec![event("e1", "u1", "opened")],
    };
    assert_refused(
        app.internal.apply_events(authorized(request, &key)).await,
        Code::InvalidArgument,
        "workspace_id",
    );

    // Nothing of the refused batch was applied: e1 is still new.
    assert_eq!(
        app.apply_events(vec![event("e1", "u1", "opened")])
            .await
            .unwrap(),
        (1, 0)
    );
    app.running.stop().await;
}

#[tokio::test]
async fn parse_rule_returns_the_tree_or_the_first_error_with_its_position() {
    use herald_proto::segmentation::v1::parse_rule_response::Outcome;
    use herald_proto::segmentation::v1::{ParseRuleRequest, rule};
    let recorder = Recorder::default();
    let app = spawn_app(spawn_trigger(&recorder).await).await;
    let mut client = SegmentationServiceClient::connect(app.running.url())
        .await
        .unwrap();
    let key = app.credentials.admin_key.expose().to_owned();
    let parse = |text: &str| {
        authorized(
            ParseRuleRequest {
                rule_text: text.into(),
            },
            &key,
        )
    };

    let example = r#"plan == "pro" and days_since(signed_up_at) >= 5 and not performed("integration_connected")"#;
    let parsed = client
        .parse_rule(parse(example))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parsed.canonical_text, example);
    let Some(Outcome::Rule(rule)) = parsed.outcome else {
        panic!("a rule: {parsed:?}")
    };
    assert!(
        matches!(&rule.kind, Some(rule::Kind::All(group)) if group.rules.len() == 3),
        "{rule:?}"
    );

    // A rule with an error is an answer, not a failed call.
    let failed = client
        .parse_rule(parse("plan == "))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.canonical_text, "");
    let Some(Outcome::Error(error)) = failed.outcome else {
        panic!("an error: {failed:?}")
    };
    assert_eq!(
        (error.line, error.column, error.offset, error.length),
        (1, 9, 8, 0)
    );
    assert_eq!(error.message, "expected a value after `==`");

    // Text over the limit is a malformed request.
    let status = client
        .parse_rule(parse(&"x".repeat(16 * 1024 + 1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("rule_text"), "{status:?}");
    app.running.stop().await;
}
