//! The segment management API over real gRPC: a fresh database per test, a manual clock,
//! and a small stand-in for trigger's internal service (behind a proxy the test can cut)
//! that answers ListSegmentReferences. Memberships are the service's own: users are made
//! known with traits through ApplyIdentities, and a segment's backfill or the identity
//! update itself makes them members.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::common::v1::Identity;
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
};
use herald_runtime::{Clock, ServiceKind};
use herald_segmentation::segments::{self, member};
use herald_testkit::{
    Credentials, Proxy, Running, TestDatabase, WORKSPACE, assert_refused, authorized, eventually,
    violations,
};
use prost_types::value::Kind;
use prost_types::{FieldMask, Struct, Value};
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// How long a test waits for the service's background work (backfills).
const WAIT: Duration = Duration::from_secs(15);

/// Trigger as far as segment deletion needs it: the campaigns using each segment, and
/// the ListSegmentReferences calls it received.
#[derive(Clone, Default)]
struct Trigger {
    campaigns: Arc<Mutex<HashMap<String, Vec<String>>>>,
    asked: Arc<Mutex<Vec<Asked>>>,
}

/// One ListSegmentReferences call.
#[derive(Debug, Clone)]
struct Asked {
    workspace_id: String,
    segment_id: String,
    authorization: String,
    /// Whether the call carried a grpc-timeout.
    has_deadline: bool,
}

#[tonic::async_trait]
impl TriggerInternalService for Trigger {
    async fn handle_events(
        &self,
        request: Request<HandleEventsRequest>,
    ) -> Result<Response<HandleEventsResponse>, Status> {
        Ok(Response::new(HandleEventsResponse {
            handled: request.into_inner().events.len() as u32,
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
        _: Request<TriggerForgetUserRequest>,
    ) -> Result<Response<TriggerForgetUserResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }

    async fn list_segment_references(
        &self,
        request: Request<ListSegmentReferencesRequest>,
    ) -> Result<Response<ListSegmentReferencesResponse>, Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let r = request.get_ref();
        self.asked.lock().unwrap().push(Asked {
            workspace_id: r.workspace_id.clone(),
            segment_id: r.segment_id.clone(),
            authorization: header("authorization").unwrap_or_default(),
            has_deadline: header("grpc-timeout").is_some(),
        });
        let campaign_ids = self
            .campaigns
            .lock()
            .unwrap()
            .get(&r.segment_id)
            .cloned()
            .unwrap_or_default();
        Ok(Response::new(ListSegmentReferencesResponse {
            campaign_ids,
        }))
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
    client: SegmentationServiceClient<Channel>,
    /// A connection of the test's own to segmentation's database.
    db: DatabaseConnection,
    clock: Clock,
    trigger: Trigger,
    /// Between segmentation and the stand-in trigger.
    proxy: Proxy,
    _db: TestDatabase,
}

/// Segmentation on a fresh database with a manual clock, and a stand-in trigger.
async fn spawn_app() -> App {
    let trigger = Trigger::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trigger_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TriggerInternalServiceServer::new(trigger.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let proxy = Proxy::start(trigger_addr).await;

    let test_db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Segmentation, &test_db, &credentials);
    config.trigger_url = proxy.url();
    let clock = Clock::manual("2026-12-03T09:00:00Z".parse().unwrap());
    let running = herald_testkit::spawn(config, clock.clone(), herald_segmentation::serve).await;
    let client = SegmentationServiceClient::connect(running.url())
        .await
        .expect("connect");
    let db = herald_storage::connect(&test_db.url("segmentation"))
        .await
        .expect("the test's own connection");
    App {
        running,
        credentials,
        client,
        db,
        clock,
        trigger,
        proxy,
        _db: test_db,
    }
}

impl App {
    fn admin<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.admin_key.expose())
    }

    async fn create(&mut self, segment: Segment) -> Result<Segment, Status> {
        let request = self.admin(CreateSegmentRequest {
            segment: Some(segment),
        });
        Ok(self
            .client
            .create_segment(request)
            .await?
            .into_inner()
            .segment
            .expect("a segment"))
    }

    /// Creates segment `name` with the rule `text`; panics when refused.
    async fn create_text(&mut self, name: &str, text: &str) -> Segment {
        self.create(with_text(name, text))
            .await
            .unwrap_or_else(|s| panic!("create {name}: {s:?}"))
    }

    async fn get(&mut self, id: &str) -> Result<Segment, Status> {
        let request = self.admin(GetSegmentRequest {
            segment_id: id.into(),
        });
        Ok(self
            .client
            .get_segment(request)
            .await?
            .into_inner()
            .segment
            .expect("a segment"))
    }

    async fn list(
        &mut self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<String>, String), Status> {
        let request = self.admin(ListSegmentsRequest {
            page_size,
            page_token: page_token.into(),
        });
        let r = self.client.list_segments(request).await?.into_inner();
        Ok((
            r.segments.into_iter().map(|s| s.id).collect(),
            r.next_page_token,
        ))
    }

    async fn update(&mut self, segment: Segment, paths: &[&str]) -> Result<Segment, Status> {
        let request = self.admin(UpdateSegmentRequest {
            segment: Some(segment),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        });
        Ok(self
            .client
            .update_segment(request)
            .await?
            .into_inner()
            .segment
            .expect("a segment"))
    }

    async fn delete(&mut self, id: &str) -> Result<(), Status> {
        let request = self.admin(DeleteSegmentRequest {
            segment_id: id.into(),
        });
        self.client.delete_segment(request).await.map(drop)
    }

    async fn members(
        &mut self,
        id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<String>, String), Status> {
        let request = self.admin(ListSegmentMembersRequest {
            segment_id: id.into(),
            page_size,
            page_token: page_token.into(),
        });
        let r = self
            .client
            .list_segment_members(request)
            .await?
            .into_inner();
        Ok((
            r.members.into_iter().map(|m| m.user_id).collect(),
            r.next_page_token,
        ))
    }

    async fn user_segments(&mut self, user_id: &str) -> Result<GetUserSegmentsResponse, Status> {
        let request = self.admin(GetUserSegmentsRequest {
            user_id: user_id.into(),
        });
        Ok(self.client.get_user_segments(request).await?.into_inner())
    }

    async fn version(&self) -> i64 {
        segments::segments_version(&self.db, WORKSPACE)
            .await
            .unwrap()
    }

    /// Makes `user_id` known to segmentation, with `traits`, through the internal API.
    async fn identify(&self, user_id: &str, traits: Struct) {
        let mut internal = SegmentationInternalServiceClient::connect(self.running.url())
            .await
            .unwrap();
        let request = authorized(
            ApplyIdentitiesRequest {
                workspace_id: WORKSPACE.into(),
                identities: vec![Identity {
                    message_id: format!("identify-{user_id}"),
                    user_id: user_id.into(),
                    traits: Some(traits),
                    ..Default::default()
                }],
            },
            self.credentials.internal_key.expose(),
        );
        internal.apply_identities(request).await.unwrap();
    }

    /// Segment `id` once its backfill is done, after checking that it evaluated every
    /// one of the `users` known when it started.
    async fn backfilled(&self, id: &str, users: u64) -> Segment {
        let segment = eventually(WAIT, &format!("the backfill of {id} to finish"), || {
            let mut client = self.client.clone();
            let request = self.admin(GetSegmentRequest {
                segment_id: id.into(),
            });
            async move {
                let segment = client
                    .get_segment(request)
                    .await
                    .expect("get segment")
                    .into_inner()
                    .segment
                    .expect("a segment");
                (segment.backfill.as_ref()?.state == BackfillState::Done as i32).then_some(segment)
            }
        })
        .await;
        let backfill = segment.backfill.as_ref().expect("a backfill");
        assert_eq!(
            (backfill.users_evaluated, backfill.users_total),
            (users, users),
            "{segment:?}"
        );
        segment
    }
}

/// What a test about a segment's definition compares: the segment without what the
/// service computes in the background after every write (the backfill's progress and
/// the member count).
fn definition(segment: Segment) -> Segment {
    Segment {
        backfill: None,
        member_count: 0,
        ..segment
    }
}

fn with_text(name: &str, text: &str) -> Segment {
    Segment {
        name: name.into(),
        rule_text: text.into(),
        ..Default::default()
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// Traits of string values.
fn traits(pairs: &[(&str, &str)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), string(value)))
            .collect(),
    }
}

fn in_segment(id: &str) -> String {
    format!("in_segment({id:?})")
}

#[tokio::test]
async fn a_segment_is_created_from_text_or_tree_and_read_back_in_both_forms() {
    let mut app = spawn_app().await;
    assert_eq!(app.version().await, 0);
    // Users the backfills evaluate; neither has `signed_up_at`, so neither is a member.
    app.identify("u1", traits(&[("plan", "pro")])).await;
    app.identify("u2", Struct::default()).await;

    // Text in a non-canonical spelling comes back canonical, with its tree.
    let created = app
        .create_text(
            "Pro users",
            "plan=='pro'and days_since( signed_up_at )>=5"
                .replace('\'', "\"")
                .as_str(),
        )
        .await;
    assert!(created.id.starts_with("seg_"), "{created:?}");
    assert_eq!(created.name, "Pro users");
    assert_eq!(
        created.rule_text,
        r#"plan == "pro" and days_since(signed_up_at) >= 5"#
    );
    assert_eq!(
        created.rule,
        Some(herald_rules::parse(&created.rule_text).unwrap())
    );
    let now = herald_core::time::proto(app.clock.now());
    assert_eq!(created.create_time, Some(now));
    assert_eq!(created.update_time, Some(now));
    assert_eq!(created.member_count, 0);
    assert_eq!(
        created.backfill,
        Some(SegmentBackfill {
            state: BackfillState::Pending as i32,
            users_evaluated: 0,
            users_total: 0,
            start_time: Some(now),
            finish_time: None,
        })
    );
    assert_eq!(
        definition(app.get(&created.id).await.unwrap()),
        definition(created.clone())
    );
    assert_eq!(app.version().await, 1, "a create moves the version");
    // The backfill evaluates every known user, then is done.
    let done = app.backfilled(&created.id, 2).await;
    assert_eq!(
        done.backfill,
        Some(SegmentBackfill {
            state: BackfillState::Done as i32,
            users_evaluated: 2,
            users_total: 2,
            start_time: Some(now),
            finish_time: Some(now),
        })
    );
    assert_eq!(done.member_count, 0);
    assert_eq!(definition(done), definition(created));

    // A tree is stored in normal form: an unset direction reads as `since`.
    let tree = Rule {
        kind: Some(rule::Kind::RelativeTime(RelativeTimeCondition {
            path: "signed_up_at".into(),
            unit: TimeUnit::Days as i32,
            direction: TimeDirection::Unspecified as i32,
            operator: herald_proto::common::v1::ComparisonOperator::Gte as i32,
            value: 5,
        })),
    };
    let created = app
        .create(Segment {
            name: "Old enough".into(),
            description: "signed up five days ago or more".into(),
            rule: Some(tree.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.rule_text, "days_since(signed_up_at) >= 5");
    assert_eq!(created.rule, Some(herald_rules::normalize(&tree)));
    assert_ne!(created.rule, Some(tree), "the direction is spelt out");
    assert_eq!(created.description, "signed up five days ago or more");
    assert_eq!(
        definition(app.get(&created.id).await.unwrap()),
        definition(created)
    );
    assert_eq!(app.version().await, 2);
    app.running.stop().await;
}

#[tokio::test]
async fn invalid_segments_name_their_fields_and_are_not_created() {
    let mut app = spawn_app().await;

    let status = app
        .create(with_text("Broken", "plan == "))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), ["segment.rule_text"]);
    assert!(
        status
            .message()
            .contains("expected a value after `==` (line 1, column 9)"),
        "{status:?}"
    );

    let cases: Vec<(Segment, Vec<&str>)> = vec![
        (with_text("", "plan == 1"), vec!["segment.name"]),
        (
            with_text(&"n".repeat(129), "plan == 1"),
            vec!["segment.name"],
        ),
        (
            Segment {
                description: "d".repeat(1025),
                ..with_text("ok", "plan == 1")
            },
            vec!["segment.description"],
        ),
        (with_text("no rule", ""), vec!["segment.rule"]),
        (
            Segment {
                rule: Some(herald_rules::parse("plan == 1").unwrap()),
                ..with_text("both", "plan == 1")
            },
            vec!["segment.rule_text"],
        ),
        (
            Segment {
                name: "empty node".into(),
                rule: Some(Rule::default()),
                ..Default::default()
            },
            vec!["segment.rule"],
        ),
    ];
    for (segment, fields) in cases {
        let status = app.create(segment.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{segment:?}");
        assert_eq!(violations(&status), fields, "{segment:?}");
    }
    let request = app.admin(CreateSegmentRequest { segment: None });
    assert_refused(
        app.client.create_segment(request).await,
        Code::InvalidArgument,
        "segment",
    );

    assert_eq!(app.list(0, "").await.unwrap(), (vec![], String::new()));
    assert_eq!(app.version().await, 0, "nothing was written");
    app.running.stop().await;
}

#[tokio::test]
async fn references_must_exist_and_must_not_close_a_cycle() {
    let mut app = spawn_app().await;

    let status = app
        .create(with_text("Dangling", &in_segment("seg_nope")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), ["segment.rule_text"]);
    assert!(status.message().contains("seg_nope"), "{status:?}");
    // As a tree, the violation points into it.
    let status = app
        .create(Segment {
            name: "Dangling".into(),
            rule: Some(
                herald_rules::parse(&format!("plan == 1 or {}", in_segment("seg_nope"))).unwrap(),
            ),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        ["segment.rule.any.rules[1].in_segment.segment_id"]
    );
    assert_eq!(app.version().await, 0);

    let a = app.create_text("A", r#"plan == "pro""#).await;
    let b = app.create_text("B", &in_segment(&a.id)).await;
    let c = app
        .create_text("C", &format!("{} and country == \"FR\"", in_segment(&b.id)))
        .await;
    let version = app.version().await;

    // A → C would close A → C → B → A.
    let status = app
        .update(
            with_text("", &in_segment(&c.id)).with_id(&a.id),
            &["rule_text"],
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), ["segment.rule_text"]);
    assert!(
        status
            .message()
            .contains(&format!("{} → {} → {} → {}", a.id, c.id, b.id, a.id)),
        "{status:?}"
    );
    // A segment cannot refer to itself either.
    let status = app
        .update(
            with_text("", &in_segment(&a.id)).with_id(&a.id),
            &["rule_text"],
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("itself"), "{status:?}");

    assert_eq!(
        definition(app.get(&a.id).await.unwrap()),
        definition(a),
        "refused updates change nothing"
    );
    assert_eq!(app.version().await, version);
    app.running.stop().await;
}

#[tokio::test]
async fn concurrent_rule_changes_cannot_close_a_cycle_between_them() {
    let mut app = spawn_app().await;
    for round in 0..5 {
        let a = app.create_text(&format!("A{round}"), "plan == 1").await;
        let b = app.create_text(&format!("B{round}"), "plan == 2").await;
        // A → B and B → A at once: each is fine alone, together they are a cycle.
        let (mut one, mut other) = (app.client.clone(), app.client.clone());
        let a_to_b = app.admin(UpdateSegmentRequest {
            segment: Some(with_text("", &in_segment(&b.id)).with_id(&a.id)),
            update_mask: Some(FieldMask {
                paths: vec!["rule_text".into()],
            }),
        });
        let b_to_a = app.admin(UpdateSegmentRequest {
            segment: Some(with_text("", &in_segment(&a.id)).with_id(&b.id)),
            update_mask: Some(FieldMask {
                paths: vec!["rule_text".into()],
            }),
        });
        let (first, second) =
            tokio::join!(one.update_segment(a_to_b), other.update_segment(b_to_a));
        let refused: Vec<Status> = [first.err(), second.err()].into_iter().flatten().collect();
        assert_eq!(
            refused.len(),
            1,
            "exactly one of the two is refused: {refused:?}"
        );
        assert_eq!(refused[0].code(), Code::InvalidArgument);
        assert!(refused[0].message().contains("cycle"), "{:?}", refused[0]);
    }
    app.running.stop().await;
}

trait WithId {
    fn with_id(self, id: &str) -> Self;
}

impl WithId for Segment {
    fn with_id(mut self, id: &str) -> Self {
        self.id = id.into();
        self
    }
}

#[tokio::test]
async fn segments_are_listed_newest_first_in_pages() {
    let mut app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_text(&format!("s{i}"), "plan == 1").await.id);
        app.clock.advance(Duration::from_secs(1));
    }
    ids.reverse();

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = app.list(2, &token).await.unwrap();
        pages.push(page);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(
        pages,
        [
            vec![ids[0].clone(), ids[1].clone()],
            vec![ids[2].clone(), ids[3].clone()],
            vec![ids[4].clone()]
        ]
    );
    // 0 means 50; sizes above 1000 are clamped.
    assert_eq!(app.list(0, "").await.unwrap(), (ids.clone(), String::new()));
    assert_eq!(
        app.list(5000, "").await.unwrap(),
        (ids.clone(), String::new())
    );
    // A page that ends exactly at the last segment says so.
    assert_eq!(app.list(5, "").await.unwrap(), (ids.clone(), String::new()));

    assert_refused(app.list(-1, "").await, Code::InvalidArgument, "page_size");
    assert_refused(
        app.list(2, "not-a-token").await,
        Code::InvalidArgument,
        "page_token",
    );

    assert_refused(app.get("seg_missing").await, Code::NotFound, "seg_missing");
    assert_refused(app.get("").await, Code::InvalidArgument, "segment_id");
    app.running.stop().await;
}

#[tokio::test]
async fn updates_follow_the_mask() {
    let mut app = spawn_app().await;
    // A pro user: a member only once the rule asks for pro users.
    app.identify("u1", traits(&[("plan", "pro")])).await;
    let created = app.create_text("Before", "plan == 1").await;
    let version = app.version().await;

    for (paths, field) in [
        (vec![], "update_mask"),
        (vec!["id"], "update_mask.paths[0]"),
        (vec!["name", "member_count"], "update_mask.paths[1]"),
        (vec!["backfill.state"], "update_mask.paths[0]"),
        (vec!["bogus"], "update_mask.paths[0]"),
        (vec!["rule"], "segment.rule"),
        (vec!["rule_text"], "segment.rule_text"),
    ] {
        let update = Segment {
            name: "After".into(),
            ..Default::default()
        }
        .with_id(&created.id);
        let status = app.update(update, &paths).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{paths:?}");
        assert_eq!(violations(&status), [field], "{paths:?}: {status:?}");
    }
    let both = Segment {
        rule: Some(herald_rules::parse("plan == 2").unwrap()),
        ..with_text("", "plan == 3")
    };
    let status = app
        .update(both.with_id(&created.id), &["rule", "rule_text"])
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["update_mask.paths[1]"]);
    assert!(
        status.message().contains("mutually exclusive"),
        "{status:?}"
    );
    let status = app
        .update(with_text("After", ""), &["name"])
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["segment.id"]);
    let status = app
        .update(with_text("", "").with_id(&created.id), &["name"])
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["segment.name"]);
    let status = app
        .update(
            with_text("", "plan ==").with_id(&created.id),
            &["rule_text"],
        )
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["segment.rule_text"]);
    assert_refused(
        app.update(with_text("After", "").with_id("seg_missing"), &["name"])
            .await,
        Code::NotFound,
        "seg_missing",
    );
    assert_eq!(
        definition(app.get(&created.id).await.unwrap()),
        definition(created.clone())
    );
    let done = app.backfilled(&created.id, 1).await;
    assert_eq!(done.member_count, 0);

    // A new name leaves the rule, its backfill and the version alone; fields outside
    // the mask are ignored.
    app.clock.advance(Duration::from_secs(60));
    let renamed = app
        .update(
            Segment {
                name: "After".into(),
                description: "ignored".into(),
                rule_text: "plan == 2".into(),
                ..Default::default()
            }
            .with_id(&created.id),
            &["name"],
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "After");
    assert_eq!(renamed.description, "");
    assert_eq!(renamed.rule_text, "plan == 1");
    assert_eq!(renamed.backfill, done.backfill);
    assert_eq!(renamed.create_time, created.create_time);
    let now = herald_core::time::proto(app.clock.now());
    assert_eq!(renamed.update_time, Some(now));
    assert_eq!(app.get(&created.id).await.unwrap(), renamed);
    assert_eq!(app.version().await, version);

    // The same rule written differently is no change either.
    let same = app
        .update(
            with_text("", "plan==1").with_id(&created.id),
            &["rule_text"],
        )
        .await
        .unwrap();
    assert_eq!(same.backfill, done.backfill);
    assert_eq!(app.version().await, version);

    // A new rule restarts the backfill and moves the version.
    app.clock.advance(Duration::from_secs(60));
    let changed = app
        .update(
            Segment {
                rule: Some(herald_rules::parse(r#"plan == "pro""#).unwrap()),
                ..Default::default()
            }
            .with_id(&created.id),
            &["rule", "description"],
        )
        .await
        .unwrap();
    let now = herald_core::time::proto(app.clock.now());
    assert_eq!(changed.rule_text, r#"plan == "pro""#);
    assert_eq!(changed.description, "");
    assert_eq!(changed.name, "After");
    assert_eq!(changed.update_time, Some(now));
    assert_eq!(
        changed.backfill,
        Some(SegmentBackfill {
            state: BackfillState::Pending as i32,
            users_evaluated: 0,
            users_total: 0,
            start_time: Some(now),
            finish_time: None,
        })
    );
    assert_eq!(
        definition(app.get(&created.id).await.unwrap()),
        definition(changed.clone())
    );
    assert_eq!(app.version().await, version + 1);
    let stored = segments::get(&app.db, WORKSPACE, &created.id)
        .await
        .unwrap();
    assert_eq!(stored.rule_version, 2);
    // The restarted backfill evaluates the users again under the new rule.
    let done = app.backfilled(&created.id, 1).await;
    assert_eq!(
        done.backfill,
        Some(SegmentBackfill {
            state: BackfillState::Done as i32,
            users_evaluated: 1,
            users_total: 1,
            start_time: Some(now),
            finish_time: Some(now),
        })
    );
    assert_eq!(done.member_count, 1);
    assert_eq!(
        app.members(&created.id, 0, "").await.unwrap(),
        (vec!["u1".to_owned()], String::new())
    );
    app.running.stop().await;
}

#[tokio::test]
async fn a_segment_in_use_is_not_deleted() {
    let mut app = spawn_app().await;
    let base = app.create_text("Base", "plan == 1").await;
    let user = app.create_text("User", &in_segment(&base.id)).await;

    // Another segment refers to it.
    let status = app.delete(&base.id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(&user.id), "{status:?}");
    assert!(
        app.trigger.asked.lock().unwrap().is_empty(),
        "refused before asking trigger"
    );

    // A campaign refers to it.
    app.trigger.campaigns.lock().unwrap().insert(
        user.id.clone(),
        vec!["cmp_welcome".into(), "cmp_upsell".into()],
    );
    let status = app.delete(&user.id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("cmp_welcome, cmp_upsell"),
        "{status:?}"
    );
    {
        let asked = app.trigger.asked.lock().unwrap();
        let asked = &asked[0];
        assert_eq!(
            (asked.workspace_id.as_str(), asked.segment_id.as_str()),
            (WORKSPACE, user.id.as_str())
        );
        assert_eq!(
            asked.authorization,
            format!("Bearer {}", app.credentials.internal_key.expose()),
            "segmentation presents the internal key"
        );
        assert!(asked.has_deadline, "the call to trigger carries a deadline");
    }

    // Trigger cannot be asked: nothing is deleted.
    app.trigger.campaigns.lock().unwrap().clear();
    app.proxy.cut();
    assert_eq!(
        app.delete(&user.id).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert_eq!(
        definition(app.get(&user.id).await.unwrap()),
        definition(user)
    );

    assert_eq!(
        app.delete("seg_missing").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_refused(app.delete("").await, Code::InvalidArgument, "segment_id");
    app.running.stop().await;
}

#[tokio::test]
async fn deleting_removes_the_segment_and_its_members() {
    let mut app = spawn_app().await;
    app.identify("u1", traits(&[("plan", "pro")])).await;
    app.identify("u2", traits(&[("country", "FR")])).await;
    let base = app.create_text("Base", r#"plan == "pro""#).await;
    let user = app
        .create_text(
            "User",
            &format!(r#"{} or country == "FR""#, in_segment(&base.id)),
        )
        .await;
    // The backfills make u1 a member of both, u2 of the second only.
    app.backfilled(&base.id, 2).await;
    app.backfilled(&user.id, 2).await;
    assert_eq!(
        app.members(&user.id, 0, "").await.unwrap(),
        (vec!["u1".to_owned(), "u2".to_owned()], String::new())
    );
    assert_eq!(
        app.members(&base.id, 0, "").await.unwrap(),
        (vec!["u1".to_owned()], String::new())
    );
    let version = app.version().await;

    app.delete(&user.id).await.unwrap();
    assert_eq!(app.version().await, version + 1);
    assert_eq!(app.get(&user.id).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        app.delete(&user.id).await.unwrap_err().code(),
        Code::NotFound
    );
    let left: Vec<(String, String)> = member::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.segment_id, m.user_id))
        .collect();
    assert_eq!(left, [(base.id.clone(), "u1".to_owned())]);
    // With its only user gone, the base can go too.
    app.delete(&base.id).await.unwrap();
    assert_eq!(app.list(0, "").await.unwrap(), (vec![], String::new()));
    app.running.stop().await;
}

#[tokio::test]
async fn members_are_listed_by_user_id_and_users_show_their_segments() {
    let mut app = spawn_app().await;
    // Users known before the segments: their backfills evaluate them.
    app.identify("u1", traits(&[("plan", "pro")])).await;
    app.identify("u9", Struct::default()).await;
    let pro = app.create_text("Pro", r#"plan == "pro""#).await;
    app.clock.advance(Duration::from_secs(1));
    let fr = app.create_text("France", r#"country == "FR""#).await;
    app.backfilled(&pro.id, 2).await;
    app.backfilled(&fr.id, 2).await;
    assert_eq!(
        app.members(&pro.id, 0, "").await.unwrap(),
        (vec!["u1".to_owned()], String::new())
    );
    // Users known after: ApplyIdentities evaluates them before it returns. They join
    // out of user id order.
    app.identify("u3", traits(&[("plan", "pro")])).await;
    app.identify("u2", traits(&[("plan", "pro"), ("country", "FR")]))
        .await;

    assert_eq!(app.get(&pro.id).await.unwrap().member_count, 3);
    let request = app.admin(ListSegmentsRequest::default());
    let listed = app
        .client
        .list_segments(request)
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<(String, u64)> = listed
        .segments
        .into_iter()
        .map(|s| (s.id, s.member_count))
        .collect();
    assert_eq!(counts, [(fr.id.clone(), 1), (pro.id.clone(), 3)]);

    let (first, token) = app.members(&pro.id, 2, "").await.unwrap();
    assert_eq!(first, ["u1", "u2"]);
    let (second, last) = app.members(&pro.id, 2, &token).await.unwrap();
    assert_eq!((second, last), (vec!["u3".to_owned()], String::new()));
    assert_refused(
        app.members(&fr.id, 2, &token).await,
        Code::InvalidArgument,
        "page_token",
    );
    assert_refused(
        app.members(&pro.id, -1, "").await,
        Code::InvalidArgument,
        "page_size",
    );
    assert_refused(
        app.members("seg_missing", 0, "").await,
        Code::NotFound,
        "seg_missing",
    );

    let mut expected = vec![pro.id.clone(), fr.id.clone()];
    expected.sort();
    let u2 = app.user_segments("u2").await.unwrap();
    assert_eq!(u2.segment_ids, expected);
    assert_eq!(
        u2.traits,
        Some(traits(&[("plan", "pro"), ("country", "FR")]))
    );
    let u9 = app.user_segments("u9").await.unwrap();
    assert_eq!((u9.segment_ids, u9.traits), (vec![], None));
    assert_refused(app.user_segments("nobody").await, Code::NotFound, "nobody");
    assert_refused(
        app.user_segments("").await,
        Code::InvalidArgument,
        "user_id",
    );
    assert_refused(
        app.user_segments(&"u".repeat(257)).await,
        Code::InvalidArgument,
        "user_id",
    );
    app.running.stop().await;
}

#[tokio::test]
async fn the_segment_api_is_for_admin_keys() {
    let mut app = spawn_app().await;
    let request = authorized(
        ListSegmentsRequest::default(),
        app.credentials.internal_key.expose(),
    );
    assert_eq!(
        app.client.list_segments(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let request = Request::new(CreateSegmentRequest {
        segment: Some(with_text("x", "plan == 1")),
    });
    assert_eq!(
        app.client.create_segment(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(app.version().await, 0);
    app.running.stop().await;
}
