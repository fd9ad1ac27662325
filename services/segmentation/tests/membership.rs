//! Segment membership end to end over real gRPC, on a manual clock: users enter and
//! leave segments on the event that changes the answer and at the exact instant time
//! does, across restarts and replicas; transitions and segment ids reach a stand-in
//! trigger through the outbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::analytics::v1::{Interaction, InteractionKind};
use herald_proto::common::v1::{Event, Identity};
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use herald_proto::segmentation::v1::*;
use herald_proto::trigger::v1::trigger_internal_service_server::{
    TriggerInternalService, TriggerInternalServiceServer,
};
use herald_proto::trigger::v1::{
    ForgetUserRequest as TriggerForgetUserRequest, ForgetUserResponse as TriggerForgetUserResponse,
    HandleEventsRequest, HandleEventsResponse, HandleSegmentTransitionsRequest,
    HandleSegmentTransitionsResponse, ListSegmentReferencesRequest, ListSegmentReferencesResponse,
    SegmentTransition, TransitionCause, TransitionKind, UserEvent,
};
use herald_runtime::{Clock, ServiceKind};
use herald_testkit::{Credentials, Running, TestDatabase, WORKSPACE, authorized, eventually};
use prost_types::value::Kind;
use prost_types::{Struct, Timestamp, Value};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

const DAY: Duration = Duration::from_secs(86_400);
const WAIT: Duration = Duration::from_secs(15);

/// Trigger as segmentation sees it: records the events and transitions it receives.
#[derive(Clone, Default)]
struct Trigger {
    events: Arc<Mutex<Vec<UserEvent>>>,
    transitions: Arc<Mutex<Vec<SegmentTransition>>>,
}

#[tonic::async_trait]
impl TriggerInternalService for Trigger {
    async fn handle_events(
        &self,
        request: Request<HandleEventsRequest>,
    ) -> Result<Response<HandleEventsResponse>, Status> {
        let events = request.into_inner().events;
        let handled = events.len() as u32;
        self.events.lock().unwrap().extend(events);
        Ok(Response::new(HandleEventsResponse {
            handled,
            duplicates: 0,
        }))
    }

    async fn handle_segment_transitions(
        &self,
        request: Request<HandleSegmentTransitionsRequest>,
    ) -> Result<Response<HandleSegmentTransitionsResponse>, Status> {
        let transitions = request.into_inner().transitions;
        let handled = transitions.len() as u32;
        self.transitions.lock().unwrap().extend(transitions);
        Ok(Response::new(HandleSegmentTransitionsResponse {
            handled,
            duplicates: 0,
        }))
    }

    async fn forget_user(
        &self,
        _: Request<TriggerForgetUserRequest>,
    ) -> Result<Response<TriggerForgetUserResponse>, Status> {
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

impl Trigger {
    /// (segment, user, entered, cause) of every transition so far, in arrival order.
    fn seen(&self) -> Vec<(String, String, bool, TransitionCause)> {
        self.transitions
            .lock()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t.segment_id.clone(),
                    t.user_id.clone(),
                    t.kind == TransitionKind::Entered as i32,
                    TransitionCause::try_from(t.cause).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits until `count` transitions arrived, then returns them.
    async fn transitions(&self, count: usize) -> Vec<(String, String, bool, TransitionCause)> {
        eventually(WAIT, "transitions at trigger", || async {
            let seen = self.seen();
            (seen.len() >= count).then_some(seen)
        })
        .await
    }
}

/// A stand-in trigger, a database, a manual clock, and segmentation replicas on them.
struct Fixture {
    trigger: Trigger,
    trigger_url: String,
    db: TestDatabase,
    credentials: Credentials,
    clock: Clock,
    /// Replicas started so far, to give each its own instance id (lease owner).
    started: std::sync::atomic::AtomicUsize,
}

/// One running replica of segmentation with its clients.
struct Replica {
    running: Running,
    admin: SegmentationServiceClient<Channel>,
    internal: SegmentationInternalServiceClient<Channel>,
}

impl Fixture {
    async fn new() -> Fixture {
        let trigger = Trigger::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let trigger_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TriggerInternalServiceServer::new(trigger.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Fixture {
            trigger,
            trigger_url,
            db: TestDatabase::new().await,
            credentials: Credentials::new(),
            clock: Clock::manual("2026-06-01T00:00:00Z".parse().unwrap()),
            started: Default::default(),
        }
    }

    async fn replica(&self) -> Replica {
        let mut config =
            herald_testkit::config(ServiceKind::Segmentation, &self.db, &self.credentials);
        config.trigger_url = self.trigger_url.clone();
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        config.instance_id = Some(format!("segmentation-{n}"));
        let running =
            herald_testkit::spawn(config, self.clock.clone(), herald_segmentation::serve).await;
        let admin = SegmentationServiceClient::connect(running.url())
            .await
            .expect("connect");
        let internal = SegmentationInternalServiceClient::connect(running.url())
            .await
            .expect("connect");
        Replica {
            running,
            admin,
            internal,
        }
    }

    fn admin<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.admin_key.expose())
    }

    fn internal<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.internal_key.expose())
    }

    fn now(&self) -> Timestamp {
        herald_core::time::proto(self.clock.now())
    }

    async fn create(&self, r: &mut Replica, name: &str, text: &str) -> Segment {
        r.admin
            .create_segment(self.admin(CreateSegmentRequest {
                segment: Some(Segment {
                    name: name.into(),
                    rule_text: text.into(),
                    ..Default::default()
                }),
            }))
            .await
            .expect("create segment")
            .into_inner()
            .segment
            .unwrap()
    }

    /// Waits until the segment's backfill is done.
    async fn backfilled(&self, r: &mut Replica, id: &str) -> Segment {
        eventually(WAIT, "the backfill to finish", || {
            let mut admin = r.admin.clone();
            let request = self.admin(GetSegmentRequest {
                segment_id: id.into(),
            });
            async move {
                let s = admin
                    .get_segment(request)
                    .await
                    .ok()?
                    .into_inner()
                    .segment?;
                (s.backfill.as_ref()?.state == BackfillState::Done as i32).then_some(s)
            }
        })
        .await
    }

    async fn event(&self, r: &mut Replica, id: &str, user: &str, name: &str) {
        let event = Event {
            message_id: id.into(),
            user_id: user.into(),
            name: name.into(),
            timestamp: Some(self.now()),
            ..Default::default()
        };
        r.internal
            .apply_events(self.internal(ApplyEventsRequest {
                workspace_id: WORKSPACE.into(),
                events: vec![event],
            }))
            .await
            .expect("apply events");
    }

    async fn traits(&self, r: &mut Replica, id: &str, user: &str, pairs: &[(&str, Value)]) {
        let identity = Identity {
            message_id: id.into(),
            user_id: user.into(),
            traits: Some(Struct {
                fields: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            }),
            timestamp: Some(self.now()),
            ..Default::default()
        };
        r.internal
            .apply_identities(self.internal(ApplyIdentitiesRequest {
                workspace_id: WORKSPACE.into(),
                identities: vec![identity],
            }))
            .await
            .expect("apply identities");
    }

    async fn segments_of(&self, r: &mut Replica, user: &str) -> Vec<String> {
        r.admin
            .get_user_segments(self.admin(GetUserSegmentsRequest {
                user_id: user.into(),
            }))
            .await
            .expect("get user segments")
            .into_inner()
            .segment_ids
    }

    /// Waits until `user`'s segments are `expected`.
    async fn segments_become(&self, r: &mut Replica, user: &str, expected: &[&str]) {
        eventually(WAIT, "the user's segments", || {
            let mut admin = r.admin.clone();
            let request = self.admin(GetUserSegmentsRequest {
                user_id: user.into(),
            });
            async move {
                let ids = admin
                    .get_user_segments(request)
                    .await
                    .ok()?
                    .into_inner()
                    .segment_ids;
                (ids == expected).then_some(())
            }
        })
        .await
    }
}

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

const ACTIVATION: &str =
    r#"plan == "pro" and days_since(signed_up_at) >= 5 and not performed("integration_connected")"#;

#[tokio::test]
async fn a_user_enters_at_day_five_exactly_and_exits_when_the_event_happens() {
    let f = Fixture::new().await;
    let mut r = f.replica().await;
    let segment = f.create(&mut r, "Activation", ACTIVATION).await;
    f.backfilled(&mut r, &segment.id).await;
    let signed_up = f.clock.now().to_string();
    f.traits(
        &mut r,
        "i1",
        "alice",
        &[("plan", text("pro")), ("signed_up_at", text(&signed_up))],
    )
    .await;
    assert!(f.segments_of(&mut r, "alice").await.is_empty());

    // A second before day 5: still out, and no transition was sent.
    f.clock.advance(5 * DAY - Duration::from_secs(1));
    f.event(&mut r, "e1", "alice", "page_viewed").await;
    assert!(f.segments_of(&mut r, "alice").await.is_empty());
    // Day 5 exactly: the timer fires without any event.
    f.clock.advance(Duration::from_secs(1));
    f.segments_become(&mut r, "alice", &[&segment.id]).await;
    let seen = f.trigger.transitions(1).await;
    assert_eq!(
        seen,
        vec![(
            segment.id.clone(),
            "alice".into(),
            true,
            TransitionCause::Time
        )]
    );
    let entered = f.trigger.transitions.lock().unwrap()[0].clone();
    assert_eq!(entered.transition_time, Some(f.now()));
    assert_eq!(entered.segment_ids, vec![segment.id.clone()]);
    assert!(entered.cause_message_id.is_empty());

    // The event that breaks the rule takes her out, and the event forwarded to trigger
    // carries her segments after it (none).
    f.event(&mut r, "e2", "alice", "integration_connected")
        .await;
    assert!(f.segments_of(&mut r, "alice").await.is_empty());
    let seen = f.trigger.transitions(2).await;
    assert_eq!(
        seen[1],
        (
            segment.id.clone(),
            "alice".into(),
            false,
            TransitionCause::Event
        )
    );
    assert_eq!(
        f.trigger.transitions.lock().unwrap()[1].cause_message_id,
        "e2"
    );
    let events = eventually(WAIT, "events at trigger", || async {
        let events = f.trigger.events.lock().unwrap().clone();
        (events.len() >= 2).then_some(events)
    })
    .await;
    let segments_after: Vec<(String, Vec<String>)> = events
        .iter()
        .map(|e| (e.event.clone().unwrap().message_id, e.segment_ids.clone()))
        .collect();
    assert_eq!(
        segments_after,
        vec![("e1".into(), vec![]), ("e2".into(), vec![])]
    );
    r.running.stop().await;
}

#[tokio::test]
async fn a_window_condition_exits_when_the_last_event_slides_out() {
    let f = Fixture::new().await;
    let mut r = f.replica().await;
    let segment = f
        .create(&mut r, "Active", r#"performed("login", within: 7d)"#)
        .await;
    f.backfilled(&mut r, &segment.id).await;
    f.event(&mut r, "e1", "bob", "login").await;
    // Segment ids travel with the event that made bob a member.
    let events = eventually(WAIT, "the event at trigger", || async {
        let events = f.trigger.events.lock().unwrap().clone();
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events[0].segment_ids, vec![segment.id.clone()]);
    f.clock.advance(DAY);
    f.event(&mut r, "e2", "bob", "login").await;
    assert_eq!(f.segments_of(&mut r, "bob").await, vec![segment.id.clone()]);

    // The first login leaving the window changes nothing; the second one does.
    f.clock.advance(6 * DAY);
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(f.segments_of(&mut r, "bob").await, vec![segment.id.clone()]);
    f.clock.advance(DAY - Duration::from_millis(1));
    f.segments_become(&mut r, "bob", &[]).await;
    let seen = f.trigger.transitions(2).await;
    assert_eq!(
        seen,
        vec![
            (
                segment.id.clone(),
                "bob".into(),
                true,
                TransitionCause::Event
            ),
            (
                segment.id.clone(),
                "bob".into(),
                false,
                TransitionCause::Time
            ),
        ]
    );
    r.running.stop().await;
}

#[tokio::test]
async fn a_restart_between_the_event_and_the_instant_still_fires_once() {
    let f = Fixture::new().await;
    let mut r = f.replica().await;
    let segment = f
        .create(&mut r, "Lapsed", r#"not performed("login", within: 2d)"#)
        .await;
    f.backfilled(&mut r, &segment.id).await;
    f.event(&mut r, "e1", "carol", "login").await;
    r.running.stop().await;

    // While segmentation is down the instant passes; the next start fires it.
    f.clock.advance(3 * DAY);
    let mut r = f.replica().await;
    f.segments_become(&mut r, "carol", &[&segment.id]).await;
    let seen = f.trigger.transitions(1).await;
    assert_eq!(
        seen,
        vec![(
            segment.id.clone(),
            "carol".into(),
            true,
            TransitionCause::Time
        )]
    );
    // Another restart does not fire it again.
    r.running.stop().await;
    let mut r = f.replica().await;
    f.event(&mut r, "e2", "carol", "page_viewed").await;
    let seen = f.trigger.transitions(1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    r.running.stop().await;
}

#[tokio::test]
async fn two_replicas_fire_a_transition_once() {
    let f = Fixture::new().await;
    let mut a = f.replica().await;
    let mut b = f.replica().await;
    let segment = f
        .create(&mut a, "Lapsed", r#"not performed("login", within: 1d)"#)
        .await;
    f.backfilled(&mut a, &segment.id).await;
    for (i, user) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
        let replica = if i % 2 == 0 { &mut a } else { &mut b };
        f.event(replica, &format!("e{i}"), user, "login").await;
    }
    f.clock.advance(DAY);
    for user in ["u1", "u2", "u3", "u4"] {
        f.segments_become(&mut b, user, &[&segment.id]).await;
    }
    let seen = f.trigger.transitions(4).await;
    // Give a duplicate every chance to show: one more transition, relayed after the
    // timers' (u5 never logged in, so enters at once).
    f.event(&mut a, "late", "u5", "page_viewed").await;
    f.trigger.transitions(5).await;
    let mut by_time: Vec<String> = f
        .trigger
        .seen()
        .into_iter()
        .filter(|t| t.3 == TransitionCause::Time)
        .map(|t| t.1)
        .collect();
    by_time.sort();
    assert_eq!(by_time, vec!["u1", "u2", "u3", "u4"], "{seen:?}");
    assert_eq!(f.trigger.seen().len(), 5);
    a.running.stop().await;
    b.running.stop().await;
}

#[tokio::test]
async fn a_new_segment_is_backfilled_over_existing_users_with_progress() {
    let f = Fixture::new().await;
    let mut r = f.replica().await;
    for (i, plan) in ["pro", "free", "pro"].iter().enumerate() {
        f.traits(
            &mut r,
            &format!("i{i}"),
            &format!("user{i}"),
            &[("plan", text(plan))],
        )
        .await;
    }
    let segment = f.create(&mut r, "Pro", r#"plan == "pro""#).await;
    let done = f.backfilled(&mut r, &segment.id).await;
    let backfill = done.backfill.unwrap();
    assert_eq!((backfill.users_evaluated, backfill.users_total), (3, 3));
    assert!(backfill.finish_time.is_some());
    assert_eq!(done.member_count, 2);
    let mut seen = f.trigger.transitions(2).await;
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                segment.id.clone(),
                "user0".into(),
                true,
                TransitionCause::Backfill
            ),
            (
                segment.id.clone(),
                "user2".into(),
                true,
                TransitionCause::Backfill
            ),
        ]
    );
    // A trait update moves a user in at once, caused by the identity.
    f.traits(&mut r, "i9", "user1", &[("plan", text("pro"))])
        .await;
    assert_eq!(
        f.segments_of(&mut r, "user1").await,
        vec![segment.id.clone()]
    );
    let seen = f.trigger.transitions(3).await;
    assert_eq!(
        seen[2],
        (
            segment.id.clone(),
            "user1".into(),
            true,
            TransitionCause::Identity
        )
    );
    // Preview sees the same users without saving anything.
    let preview = r
        .admin
        .preview_segment(f.admin(PreviewSegmentRequest {
            rule_text: r#"plan == "pro""#.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.count, 3);
    let mut sample = preview.sample_user_ids;
    sample.sort();
    assert_eq!(sample, vec!["user0", "user1", "user2"]);
    let refused = r
        .admin
        .preview_segment(f.admin(PreviewSegmentRequest {
            rule_text: "plan == ".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    r.running.stop().await;
}

#[tokio::test]
async fn engagement_with_a_campaign_feeds_segments() {
    let f = Fixture::new().await;
    let mut r = f.replica().await;
    let segment = f
        .create(&mut r, "Clicked", r#"clicked("cmp_up", within: 1d)"#)
        .await;
    f.backfilled(&mut r, &segment.id).await;
    let click = |id: &str, kind: InteractionKind| Interaction {
        id: id.into(),
        campaign_id: "cmp_up".into(),
        user_id: "dave".into(),
        kind: kind as i32,
        time: Some(f.now()),
        ..Default::default()
    };
    let applied = r
        .internal
        .apply_interactions(f.internal(ApplyInteractionsRequest {
            workspace_id: WORKSPACE.into(),
            interactions: vec![
                click("x1", InteractionKind::Sent),
                click("x2", InteractionKind::Click),
                click("x2", InteractionKind::Click),
            ],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((applied.applied, applied.duplicates), (2, 1));
    assert_eq!(
        f.segments_of(&mut r, "dave").await,
        vec![segment.id.clone()]
    );
    f.clock.advance(DAY);
    f.segments_become(&mut r, "dave", &[]).await;
    let seen = f.trigger.transitions(2).await;
    assert_eq!(
        seen,
        vec![
            (
                segment.id.clone(),
                "dave".into(),
                true,
                TransitionCause::Interaction
            ),
            (
                segment.id.clone(),
                "dave".into(),
                false,
                TransitionCause::Time
            ),
        ]
    );
    r.running.stop().await;
}

#[tokio::test]
async fn a_segment_created_later_sees_the_recent_history() {
    let f = Fixture::new().await;
    let mut r = f.replica().await;
    f.event(&mut r, "e1", "erin", "checkout").await;
    f.clock.advance(DAY);
    let segment = f
        .create(
            &mut r,
            "Recent buyers",
            r#"performed("checkout", within: 7d)"#,
        )
        .await;
    f.backfilled(&mut r, &segment.id).await;
    assert_eq!(
        f.segments_of(&mut r, "erin").await,
        vec![segment.id.clone()]
    );
    // And she leaves when that checkout leaves the window, counted before the segment
    // existed.
    f.clock.advance(6 * DAY);
    f.segments_become(&mut r, "erin", &[]).await;
    r.running.stop().await;
}
