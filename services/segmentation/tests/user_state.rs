//! GetUserState over real gRPC: one user's current segments, merged traits, time zone
//! and locale, as trigger reads them when a timer comes due.

use std::time::Duration;

use herald_proto::common::v1::{Event, EventContext, Identity};
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use herald_proto::segmentation::v1::*;
use herald_runtime::{Clock, ServiceKind};
use herald_testkit::{
    Credentials, Proxy, Running, TestDatabase, WORKSPACE, authorized, eventually, violations,
};
use prost_types::value::Kind;
use prost_types::{Struct, Timestamp, Value};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const WAIT: Duration = Duration::from_secs(15);

struct App {
    running: Running,
    credentials: Credentials,
    clock: Clock,
    admin: SegmentationServiceClient<Channel>,
    internal: SegmentationInternalServiceClient<Channel>,
    /// Trigger is out of reach: what segmentation forwards waits in its outbox.
    _trigger: Proxy,
    _db: TestDatabase,
}

async fn spawn_app() -> App {
    let trigger = Proxy::cut_off().await;
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let mut config = herald_testkit::config(ServiceKind::Segmentation, &db, &credentials);
    config.trigger_url = trigger.url();
    let clock = Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
    let running = herald_testkit::spawn(config, clock.clone(), herald_segmentation::serve).await;
    let admin = SegmentationServiceClient::connect(running.url())
        .await
        .expect("connect");
    let internal = SegmentationInternalServiceClient::connect(running.url())
        .await
        .expect("connect");
    App {
        running,
        credentials,
        clock,
        admin,
        internal,
        _trigger: trigger,
        _db: db,
    }
}

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
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

impl App {
    fn admin<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.admin_key.expose())
    }

    fn internal<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.internal_key.expose())
    }

    fn now(&self) -> Timestamp {
        herald_core::time::proto(self.clock.now())
    }

    /// Creates a segment and waits until its backfill is done.
    async fn segment(&mut self, name: &str, rule_text: &str) -> String {
        let request = self.admin(CreateSegmentRequest {
            segment: Some(Segment {
                name: name.into(),
                rule_text: rule_text.into(),
                ..Default::default()
            }),
        });
        let id = self
            .admin
            .create_segment(request)
            .await
            .expect("create segment")
            .into_inner()
            .segment
            .unwrap()
            .id;
        eventually(WAIT, "the backfill to finish", || {
            let mut admin = self.admin.clone();
            let request = self.admin(GetSegmentRequest {
                segment_id: id.clone(),
            });
            async move {
                let s = admin
                    .get_segment(request)
                    .await
                    .ok()?
                    .into_inner()
                    .segment?;
                (s.backfill?.state == BackfillState::Done as i32).then_some(())
            }
        })
        .await;
        id
    }

    async fn identify(&mut self, id: &str, user: &str, pairs: &[(&str, Value)]) {
        let request = self.internal(ApplyIdentitiesRequest {
            workspace_id: WORKSPACE.into(),
            identities: vec![Identity {
                message_id: id.into(),
                user_id: user.into(),
                traits: Some(traits(pairs)),
                timestamp: Some(self.now()),
                ..Default::default()
            }],
        });
        self.internal
            .apply_identities(request)
            .await
            .expect("apply identities");
    }

    async fn event(&mut self, id: &str, user: &str, name: &str, context: Option<EventContext>) {
        let request = self.internal(ApplyEventsRequest {
            workspace_id: WORKSPACE.into(),
            events: vec![Event {
                message_id: id.into(),
                user_id: user.into(),
                name: name.into(),
                timestamp: Some(self.now()),
                context,
                ..Default::default()
            }],
        });
        self.internal
            .apply_events(request)
            .await
            .expect("apply events");
    }

    async fn state(&mut self, workspace: &str, user: &str) -> Result<GetUserStateResponse, Status> {
        let request = self.internal(GetUserStateRequest {
            workspace_id: workspace.into(),
            user_id: user.into(),
        });
        Ok(self.internal.get_user_state(request).await?.into_inner())
    }
}

#[tokio::test]
async fn a_known_user_has_their_segments_traits_time_zone_and_locale() {
    let mut app = spawn_app().await;
    let pro = app.segment("Pro", r#"plan == "pro""#).await;
    let active = app.segment("Active", r#"performed("login")"#).await;
    let _never = app.segment("Never", r#"performed("churned")"#).await;

    let alice_traits = [
        ("plan", text("pro")),
        ("time_zone", text("Europe/Paris")),
        ("locale", text("fr-FR")),
    ];
    app.identify("i1", "alice", &alice_traits).await;
    app.event("e1", "alice", "login", None).await;

    let state = app.state(WORKSPACE, "alice").await.expect("get user state");
    let mut both = vec![pro.clone(), active.clone()];
    both.sort();
    assert_eq!(
        state,
        GetUserStateResponse {
            segment_ids: both,
            traits: Some(traits(&alice_traits)),
            time_zone: "Europe/Paris".into(),
            locale: "fr-FR".into(),
        }
    );

    // A trait update is current at once: out of Pro, time zone and locale gone.
    app.identify(
        "i2",
        "alice",
        &[
            ("plan", text("free")),
            (
                "time_zone",
                Value {
                    kind: Some(Kind::NullValue(0)),
                },
            ),
            ("locale", text("")),
        ],
    )
    .await;
    let state = app.state(WORKSPACE, "alice").await.expect("get user state");
    assert_eq!(state.segment_ids, vec![active.clone()]);
    assert_eq!(
        state.traits,
        Some(traits(&[("plan", text("free")), ("locale", text(""))]))
    );
    assert_eq!((state.time_zone.as_str(), state.locale.as_str()), ("", ""));

    // A user known only from events has segments and no traits; segmentation keeps no
    // event context, so the event's time zone and locale are not remembered.
    let context = EventContext {
        locale: "de-DE".into(),
        time_zone: "Europe/Berlin".into(),
        ..Default::default()
    };
    app.event("e2", "bob", "login", Some(context)).await;
    let state = app.state(WORKSPACE, "bob").await.expect("get user state");
    assert_eq!(
        state,
        GetUserStateResponse {
            segment_ids: vec![active],
            ..Default::default()
        }
    );
    app.running.stop().await;
}

#[tokio::test]
async fn an_unknown_user_is_an_empty_state() {
    let mut app = spawn_app().await;
    app.segment("Pro", r#"plan == "pro""#).await;
    app.identify("i1", "alice", &[("plan", text("pro"))]).await;
    let state = app
        .state(WORKSPACE, "nobody")
        .await
        .expect("get user state");
    assert_eq!(state, GetUserStateResponse::default());
    // Nor is a user of another workspace visible.
    let state = app.state("other", "alice").await.expect("get user state");
    assert_eq!(state, GetUserStateResponse::default());
    app.running.stop().await;
}

#[tokio::test]
async fn bad_ids_and_other_keys_are_refused() {
    let mut app = spawn_app().await;
    let status = app.state("", "").await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violations(&status), ["workspace_id", "user_id"]);

    let status = app
        .state(&"w".repeat(129), &"u".repeat(257))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violations(&status), ["workspace_id", "user_id"]);

    // The longest ids are fine.
    let state = app
        .state(&"w".repeat(128), &"u".repeat(256))
        .await
        .expect("get user state");
    assert_eq!(state, GetUserStateResponse::default());

    // Only the internal key may read a user's state.
    let request = app.admin(GetUserStateRequest {
        workspace_id: WORKSPACE.into(),
        user_id: "alice".into(),
    });
    let status = app
        .internal
        .get_user_state(request)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    app.running.stop().await;
}

impl App {
    /// One ApplyIdentities batch: `users` with the traits `plan: <plan>`.
    async fn identify_many(&mut self, users: &[String], plan: &str) {
        let identities = users
            .iter()
            .map(|user| Identity {
                message_id: format!("bulk-{user}"),
                user_id: user.clone(),
                traits: Some(traits(&[("plan", text(plan))])),
                timestamp: Some(self.now()),
                ..Default::default()
            })
            .collect();
        let request = self.internal(ApplyIdentitiesRequest {
            workspace_id: WORKSPACE.into(),
            identities,
        });
        self.internal
            .apply_identities(request)
            .await
            .expect("apply identities");
    }

    async fn segment_users(
        &mut self,
        workspace: &str,
        segment: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<ListSegmentUsersResponse, Status> {
        let request = self.internal(ListSegmentUsersRequest {
            workspace_id: workspace.into(),
            segment_id: segment.into(),
            page_size,
            page_token: page_token.into(),
        });
        Ok(self
            .internal
            .list_segment_users(request)
            .await?
            .into_inner())
    }

    /// Every member of `segment`, following the page tokens, with the size of each page.
    async fn all_segment_users(
        &mut self,
        segment: &str,
        page_size: i32,
    ) -> (Vec<SegmentUser>, Vec<usize>) {
        let (mut users, mut sizes, mut token) = (Vec::new(), Vec::new(), String::new());
        loop {
            let page = self
                .segment_users(WORKSPACE, segment, page_size, &token)
                .await
                .expect("list segment users");
            sizes.push(page.users.len());
            users.extend(page.users);
            if page.next_page_token.is_empty() {
                return (users, sizes);
            }
            token = page.next_page_token;
        }
    }
}

/// `user` as GetUserState answers for them, entered at `enter_time`.
async fn as_member(app: &mut App, user: &str, enter_time: &Timestamp) -> SegmentUser {
    let state = app.state(WORKSPACE, user).await.expect("get user state");
    SegmentUser {
        user_id: user.into(),
        segment_ids: state.segment_ids,
        traits: state.traits,
        time_zone: state.time_zone,
        locale: state.locale,
        enter_time: Some(*enter_time),
    }
}

#[tokio::test]
async fn a_segments_members_are_listed_in_pages_with_their_state() {
    let mut app = spawn_app().await;
    let pro = app.segment("Pro", r#"plan == "pro""#).await;
    let active = app.segment("Active", r#"performed("login")"#).await;

    // Entered out of id order, a minute apart; zed is not in Pro.
    let mut entered = Vec::new();
    for (user, extra) in [
        ("dave", vec![]),
        (
            "alice",
            vec![
                ("time_zone", text("Europe/Paris")),
                ("locale", text("fr-FR")),
            ],
        ),
        ("carol", vec![("locale", text("pt-BR"))]),
        ("zed", vec![]),
        ("bob", vec![("time_zone", text("America/New_York"))]),
    ] {
        let plan = if user == "zed" { "free" } else { "pro" };
        let mut pairs = vec![("plan", text(plan))];
        pairs.extend(extra);
        app.identify(&format!("i-{user}"), user, &pairs).await;
        entered.push((user, app.now()));
        app.clock.advance(Duration::from_secs(60));
    }
    app.event("e1", "bob", "login", None).await;
    app.event("e2", "zed", "login", None).await;
    let enter_time = |user: &str| entered.iter().find(|(u, _)| *u == user).unwrap().1;

    let mut expected = Vec::new();
    for user in ["alice", "bob", "carol", "dave"] {
        expected.push(as_member(&mut app, user, &enter_time(user)).await);
    }
    // What GetUserState answers, spelled out for two of them.
    assert_eq!(
        expected[0],
        SegmentUser {
            user_id: "alice".into(),
            segment_ids: vec![pro.clone()],
            traits: Some(traits(&[
                ("plan", text("pro")),
                ("time_zone", text("Europe/Paris")),
                ("locale", text("fr-FR")),
            ])),
            time_zone: "Europe/Paris".into(),
            locale: "fr-FR".into(),
            enter_time: Some(enter_time("alice")),
        }
    );
    let mut both = vec![pro.clone(), active.clone()];
    both.sort();
    assert_eq!(expected[1].segment_ids, both, "bob is in both segments");
    assert_eq!(expected[1].time_zone, "America/New_York");

    // Pages of 3 then 1, by user id; the last page has no token.
    let first = app
        .segment_users(WORKSPACE, &pro, 3, "")
        .await
        .expect("first page");
    assert_eq!(first.users, expected[..3]);
    assert!(!first.next_page_token.is_empty());
    let second = app
        .segment_users(WORKSPACE, &pro, 3, &first.next_page_token)
        .await
        .expect("second page");
    assert_eq!(second.users, expected[3..]);
    assert_eq!(second.next_page_token, "");

    // One member per page, and one page for all of them.
    assert_eq!(
        app.all_segment_users(&pro, 1).await,
        (expected.clone(), vec![1, 1, 1, 1])
    );
    assert_eq!(
        app.all_segment_users(&pro, 0).await,
        (expected.clone(), vec![4])
    );
    let (active_users, _) = app.all_segment_users(&active, 0).await;
    let ids: Vec<_> = active_users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, ["bob", "zed"]);

    // The token is a position, not an offset: members who leave before it or join after
    // it between pages neither shift nor hide the rest.
    let first = app
        .segment_users(WORKSPACE, &pro, 2, "")
        .await
        .expect("first page");
    let ids: Vec<_> = first.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, ["alice", "bob"]);
    app.identify("i-alice-2", "alice", &[("plan", text("free"))])
        .await;
    app.identify("i-erin", "erin", &[("plan", text("pro"))])
        .await;
    let rest = app
        .segment_users(WORKSPACE, &pro, 2, &first.next_page_token)
        .await
        .expect("second page");
    let ids: Vec<_> = rest.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, ["carol", "dave"]);
    let rest = app
        .segment_users(WORKSPACE, &pro, 2, &rest.next_page_token)
        .await
        .expect("third page");
    let ids: Vec<_> = rest.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, ["erin"]);
    assert_eq!(rest.next_page_token, "");
    app.running.stop().await;
}

#[tokio::test]
async fn segment_user_pages_hold_100_by_default_and_at_most_500() {
    let mut app = spawn_app().await;
    let pro = app.segment("Pro", r#"plan == "pro""#).await;
    let users: Vec<String> = (0..501).map(|i| format!("user-{i:04}")).collect();
    app.identify_many(&users, "pro").await;

    let page = app
        .segment_users(WORKSPACE, &pro, 0, "")
        .await
        .expect("default page");
    assert_eq!(page.users.len(), 100);
    assert_eq!(page.users.last().unwrap().user_id, "user-0099");
    assert!(!page.next_page_token.is_empty());

    for size in [500, 501, i32::MAX] {
        let page = app
            .segment_users(WORKSPACE, &pro, size, "")
            .await
            .expect("largest page");
        assert_eq!(page.users.len(), 500, "page_size {size}");
        let last = app
            .segment_users(WORKSPACE, &pro, size, &page.next_page_token)
            .await
            .expect("last page");
        let ids: Vec<_> = last.users.iter().map(|u| u.user_id.as_str()).collect();
        assert_eq!(ids, ["user-0500"], "page_size {size}");
        assert_eq!(last.next_page_token, "");
    }

    // Every member once, in order, each with their own state.
    let (all, sizes) = app.all_segment_users(&pro, 0).await;
    assert_eq!(sizes, [100, 100, 100, 100, 100, 1]);
    let ids: Vec<_> = all.iter().map(|u| u.user_id.clone()).collect();
    assert_eq!(ids, users);
    assert!(
        all.iter().all(|u| u.segment_ids == [pro.clone()]
            && u.traits == Some(traits(&[("plan", text("pro"))])))
    );

    // Members filling the last page exactly: no token and no empty page after it (a page
    // reads one member more to know).
    let (_, sizes) = app.all_segment_users(&pro, 167).await;
    assert_eq!(sizes, [167, 167, 167]);
    app.running.stop().await;
}

#[tokio::test]
async fn an_unknown_segment_has_no_users() {
    let mut app = spawn_app().await;
    let pro = app.segment("Pro", r#"plan == "pro""#).await;
    let empty = app.segment("Nobody", r#"plan == "enterprise""#).await;
    app.identify("i1", "alice", &[("plan", text("pro"))]).await;

    for (workspace, segment) in [
        (WORKSPACE, "seg_unknown"),
        (WORKSPACE, empty.as_str()),
        // The segment's id in another workspace is another (unknown) segment.
        ("other", pro.as_str()),
    ] {
        let page = app
            .segment_users(workspace, segment, 0, "")
            .await
            .expect("list segment users");
        assert_eq!(
            page,
            ListSegmentUsersResponse::default(),
            "{workspace} {segment}"
        );
    }
    let page = app
        .segment_users(WORKSPACE, &pro, 0, "")
        .await
        .expect("list segment users");
    assert_eq!(page.users.len(), 1);
    app.running.stop().await;
}

#[tokio::test]
async fn bad_segment_user_requests_are_refused_naming_the_field() {
    let mut app = spawn_app().await;
    let pro = app.segment("Pro", r#"plan == "pro""#).await;
    let other = app.segment("Other", r#"plan == "free""#).await;
    for user in ["alice", "bob"] {
        app.identify(&format!("i-{user}"), user, &[("plan", text("pro"))])
            .await;
    }
    let token = app
        .segment_users(WORKSPACE, &pro, 1, "")
        .await
        .expect("first page")
        .next_page_token;
    assert!(!token.is_empty());

    let long_workspace = "w".repeat(129);
    let long_segment = "s".repeat(129);
    let cases: [(&str, &str, i32, &str, &[&str]); 6] = [
        ("", "", 0, "", &["workspace_id", "segment_id"]),
        (
            &long_workspace,
            &long_segment,
            0,
            "",
            &["workspace_id", "segment_id"],
        ),
        (WORKSPACE, &pro, -1, "", &["page_size"]),
        (WORKSPACE, &pro, 0, "not a token", &["page_token"]),
        // A token is valid only for the segment and workspace it was issued for.
        (WORKSPACE, &other, 0, &token, &["page_token"]),
        ("other", &pro, 0, &token, &["page_token"]),
    ];
    for (workspace, segment, page_size, page_token, fields) in cases {
        let status = app
            .segment_users(workspace, segment, page_size, page_token)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(violations(&status), fields, "{status:?}");
    }

    // The longest ids are fine.
    let page = app
        .segment_users(&"w".repeat(128), &"s".repeat(128), 0, "")
        .await
        .expect("list segment users");
    assert_eq!(page, ListSegmentUsersResponse::default());

    // Only the internal key may list a segment's users.
    let request = app.admin(ListSegmentUsersRequest {
        workspace_id: WORKSPACE.into(),
        segment_id: pro,
        ..Default::default()
    });
    let status = app
        .internal
        .list_segment_users(request)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    app.running.stop().await;
}
