//! Targeting decisions of trigger over real gRPC, on a fresh database per test (SQLite by
//! default, PostgreSQL with `HERALD_TEST_DATABASE=postgres`): priority among campaigns
//! deciding from one event, workspace cap rules reserved atomically (also across two
//! replicas), sticky assignments, control records for analytics, localized content, and
//! what ExplainDecision says. Delivery is unreachable here, so what trigger decided to
//! send stays in its outbox, where the tests read it.

use std::time::Duration;

use herald_proto::analytics::v1::{
    ArmWeight, Experiment, InteractionKind, RecordInteractionsRequest,
};
use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{
    Channel, Event, EventContext, InAppContent, InAppFormat, MessageContent,
};
use herald_proto::delivery::v1::DeliverRequest;
use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::*;
use herald_runtime::{Clock, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use herald_testkit::{Credentials, Running, TestDatabase, authorized, config, spawn};
use prost::Message;
use prost_types::{FieldMask, Struct, Value, value::Kind};
use tonic::transport::Channel as GrpcChannel;

/// A delivery (and analytics) URL nobody listens on: what trigger sends stays in its
/// outbox.
const NOWHERE: &str = "http://127.0.0.1:1";

struct App {
    running: Running,
    credentials: Credentials,
}

impl App {
    async fn public(&self) -> TriggerServiceClient<GrpcChannel> {
        TriggerServiceClient::connect(self.running.url())
            .await
            .expect("connect")
    }

    async fn internal(&self) -> TriggerInternalServiceClient<GrpcChannel> {
        TriggerInternalServiceClient::connect(self.running.url())
            .await
            .expect("connect")
    }

    fn admin<T>(&self, message: T) -> tonic::Request<T> {
        authorized(message, self.credentials.admin_key.expose())
    }

    fn internal_key<T>(&self, message: T) -> tonic::Request<T> {
        authorized(message, self.credentials.internal_key.expose())
    }

    async fn create(&self, campaign: Campaign) -> Campaign {
        self.public()
            .await
            .create_campaign(self.admin(CreateCampaignRequest {
                campaign: Some(campaign),
            }))
            .await
            .expect("create campaign")
            .into_inner()
            .campaign
            .expect("campaign")
    }

    async fn handle(&self, events: Vec<UserEvent>) {
        self.internal()
            .await
            .handle_events(self.internal_key(HandleEventsRequest {
                workspace_id: herald_testkit::WORKSPACE.into(),
                events,
            }))
            .await
            .expect("handle events");
    }

    async fn explain(&self, campaign: &str, user: &str) -> Vec<Decision> {
        self.public()
            .await
            .explain_decision(self.admin(ExplainDecisionRequest {
                campaign_id: campaign.into(),
                user_id: user.into(),
                ..Default::default()
            }))
            .await
            .expect("explain")
            .into_inner()
            .decisions
    }

    async fn settings(&self, min_in_app_interval: Option<Duration>, default_locale: &str) {
        self.public()
            .await
            .update_trigger_settings(self.admin(UpdateTriggerSettingsRequest {
                settings: Some(TriggerSettings {
                    min_in_app_interval: min_in_app_interval.map(|d| prost_types::Duration {
                        seconds: d.as_secs() as i64,
                        nanos: 0,
                    }),
                    default_locale: default_locale.into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["min_in_app_interval".into(), "default_locale".into()],
                }),
            }))
            .await
            .expect("update settings");
    }
}

async fn spawn_trigger(db: &TestDatabase, clock: Clock, instance: &str) -> App {
    let credentials = Credentials::new();
    spawn_with(db, clock, instance, credentials).await
}

async fn spawn_with(
    db: &TestDatabase,
    clock: Clock,
    instance: &str,
    credentials: Credentials,
) -> App {
    let mut config = config(ServiceKind::Trigger, db, &credentials);
    config.delivery_url = NOWHERE.into();
    config.analytics_url = NOWHERE.into();
    config.segmentation_url = NOWHERE.into();
    config.instance_id = Some(instance.into());
    let running = spawn(config, clock, herald_trigger::serve).await;
    App {
        running,
        credentials,
    }
}

fn clock() -> Clock {
    Clock::manual("2026-06-01T12:00:00Z".parse().unwrap())
}

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn in_app(format: InAppFormat, title: &str) -> MessageContent {
    MessageContent {
        body: Some(Body::InApp(InAppContent {
            format: format as i32,
            title: title.into(),
            ..Default::default()
        })),
    }
}

fn on_event(name: &str, event: &str, priority: i32, format: InAppFormat) -> Campaign {
    Campaign {
        name: name.into(),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: event.into(),
                ..Default::default()
            })),
        }),
        variants: vec![Variant {
            id: "a".into(),
            weight: 1,
            contents: vec![in_app(format, name)],
            ..Default::default()
        }],
        priority,
        ..Default::default()
    }
}

fn user_event(message_id: &str, user: &str, name: &str) -> UserEvent {
    UserEvent {
        event: Some(Event {
            message_id: message_id.into(),
            user_id: user.into(),
            name: name.into(),
            ..Default::default()
        }),
        traits: None,
        segment_ids: vec![],
    }
}

/// The outbox items of `destination`, decoded as `T`.
async fn outbox<T: Message + Default>(db: &DatabaseConnection, destination: &str) -> Vec<T> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT payload FROM trigger_outbox WHERE destination = '{destination}' ORDER BY id"
            ),
        ))
        .await
        .expect("query outbox");
    rows.iter()
        .map(|r| {
            T::decode(
                r.try_get::<Vec<u8>>("", "payload")
                    .expect("payload")
                    .as_slice(),
            )
            .expect("decode")
        })
        .collect()
}

async fn deliveries(db: &DatabaseConnection) -> Vec<herald_proto::delivery::v1::Delivery> {
    outbox::<DeliverRequest>(db, "delivery")
        .await
        .into_iter()
        .flat_map(|r| r.deliveries)
        .collect()
}

fn reason(decision: &Decision, code: DecisionReasonCode) -> Option<&DecisionReason> {
    decision.reasons.iter().find(|r| r.code == code as i32)
}

fn title(delivery: &herald_proto::delivery::v1::Delivery) -> &str {
    match delivery.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(Body::InApp(c)) => &c.title,
        _ => "",
    }
}

#[tokio::test]
async fn only_the_highest_priority_modal_of_one_event_is_delivered() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    let low = app
        .create(on_event("Low", "opened", 1, InAppFormat::Modal))
        .await;
    let high = app
        .create(on_event("High", "opened", 7, InAppFormat::Modal))
        .await;
    let mid = app
        .create(on_event("Mid", "opened", 3, InAppFormat::Modal))
        .await;
    app.handle(vec![user_event("m1", "ann", "opened")]).await;

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let sent = deliveries(&store).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].campaign_id, high.id);
    for loser in [&low, &mid] {
        let decisions = app.explain(&loser.id, "ann").await;
        assert_eq!(decisions.len(), 1);
        let d = &decisions[0];
        assert_eq!(d.outcome, DecisionOutcome::Suppressed as i32);
        assert_eq!(d.winner_campaign_id, high.id);
        let priority = reason(d, DecisionReasonCode::Priority).expect("a priority reason");
        assert!(!priority.passed);
    }
    // The losers stay eligible: alone, later, they are shown.
    app.handle(vec![user_event("m2", "bob", "opened")]).await;
    assert_eq!(deliveries(&store).await.len(), 2);
    app.running.stop().await;
}

async fn cap_rule(app: &App, max: u32) -> CapRule {
    app.public()
        .await
        .create_cap_rule(app.admin(CreateCapRuleRequest {
            cap_rule: Some(CapRule {
                name: "At most two a day".into(),
                max_messages: max,
                window: Some(cap_rule::Window::CalendarDays(1)),
                ..Default::default()
            }),
        }))
        .await
        .expect("create cap rule")
        .into_inner()
        .cap_rule
        .expect("rule")
}

#[tokio::test]
async fn a_workspace_cap_rule_stops_the_third_message_and_explain_names_it() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    let rule = cap_rule(&app, 2).await;
    let banner = app
        .create(on_event("Banner", "x", 3, InAppFormat::Banner))
        .await;
    let modal = app
        .create(on_event("Modal", "x", 2, InAppFormat::Modal))
        .await;
    let inbox = app
        .create(on_event("Inbox", "x", 1, InAppFormat::InboxOnly))
        .await;
    app.handle(vec![user_event("m1", "ann", "x")]).await;

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let sent: Vec<String> = deliveries(&store)
        .await
        .into_iter()
        .map(|d| d.campaign_id)
        .collect();
    assert_eq!(sent, [banner.id.clone(), modal.id.clone()]);
    let capped = &app.explain(&inbox.id, "ann").await[0];
    assert_eq!(capped.outcome, DecisionOutcome::Suppressed as i32);
    assert_eq!(capped.cap_rule_id, rule.id);
    let why = reason(capped, DecisionReasonCode::ChannelCapped).expect("cap reason");
    assert!(!why.passed && why.message.contains(&rule.id), "{why:?}");
    app.running.stop().await;
}

#[tokio::test]
async fn racing_decisions_on_two_replicas_never_overshoot_a_cap_rule() {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let one = spawn_with(&db, clock(), "t1", credentials.clone()).await;
    let two = spawn_with(&db, clock(), "t2", credentials).await;
    cap_rule(&one, 2).await;
    // No minimum interval: only the cap rule stands between the racing messages.
    one.settings(Some(Duration::ZERO), "").await;
    for (name, format) in [
        ("Banner", InAppFormat::Banner),
        ("Modal", InAppFormat::Modal),
        ("Inbox", InAppFormat::InboxOnly),
    ] {
        one.create(on_event(name, "x", 0, format)).await;
    }
    // Each replica handles its own events for the same users at the same time: each alone
    // would send two messages per user.
    let users: Vec<String> = (0..8).map(|i| format!("user-{i}")).collect();
    let batch = |prefix: &str| -> Vec<UserEvent> {
        users
            .iter()
            .map(|u| user_event(&format!("{prefix}-{u}"), u, "x"))
            .collect()
    };
    let (a, b) = (batch("a"), batch("b"));
    tokio::join!(one.handle(a), two.handle(b));

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let sent = deliveries(&store).await;
    for user in &users {
        let n = sent.iter().filter(|d| &d.user_id == user).count();
        assert_eq!(n, 2, "{user} got {n} messages");
    }
    one.running.stop().await;
    two.running.stop().await;
}

#[tokio::test]
async fn assignments_stay_sticky_when_weights_change() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    app.settings(Some(Duration::ZERO), "").await;
    let mut campaign = on_event("Split", "opened", 0, InAppFormat::Banner);
    campaign.variants = vec![
        Variant {
            id: "a".into(),
            weight: 1,
            contents: vec![in_app(InAppFormat::Banner, "A")],
            ..Default::default()
        },
        Variant {
            id: "b".into(),
            weight: 0,
            contents: vec![in_app(InAppFormat::Banner, "B")],
            ..Default::default()
        },
    ];
    let created = app.create(campaign).await;
    let users: Vec<String> = (0..5).map(|i| format!("user-{i}")).collect();
    app.handle(
        users
            .iter()
            .map(|u| user_event(&format!("first-{u}"), u, "opened"))
            .collect(),
    )
    .await;
    let mut weights = created.clone();
    weights.variants[0].weight = 0;
    weights.variants[1].weight = 1;
    app.public()
        .await
        .update_campaign(app.admin(UpdateCampaignRequest {
            campaign: Some(weights),
            update_mask: Some(FieldMask {
                paths: vec!["variants".into()],
            }),
        }))
        .await
        .expect("update weights");
    let mut events: Vec<UserEvent> = users
        .iter()
        .map(|u| user_event(&format!("second-{u}"), u, "opened"))
        .collect();
    events.push(user_event("first-newcomer", "newcomer", "opened"));
    app.handle(events).await;

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let sent = deliveries(&store).await;
    for user in &users {
        let variants: Vec<&str> = sent
            .iter()
            .filter(|d| &d.user_id == user)
            .map(|d| d.variant_id.as_str())
            .collect();
        assert_eq!(variants, ["a", "a"], "{user}");
    }
    let newcomer: Vec<&str> = sent
        .iter()
        .filter(|d| d.user_id == "newcomer")
        .map(|d| d.variant_id.as_str())
        .collect();
    assert_eq!(newcomer, ["b"]);
    app.running.stop().await;
}

#[tokio::test]
async fn control_users_are_recorded_for_analytics_with_the_goal() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    let goal = ConversionGoal {
        event_name: "purchased".into(),
        attribution_window: Some(prost_types::Duration {
            seconds: 3 * 86_400,
            nanos: 0,
        }),
    };
    let mut held_out = on_event("Held out", "opened", 0, InAppFormat::Banner);
    held_out.variants[0].weight = 0;
    held_out.control_weight = 1;
    held_out.conversion_goal = Some(goal.clone());
    let held_out = app.create(held_out).await;
    let mut treated = on_event("Treated", "opened", 0, InAppFormat::Modal);
    treated.conversion_goal = Some(goal.clone());
    let treated = app.create(treated).await;
    app.handle(vec![user_event("m1", "ann", "opened")]).await;

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let exposures: Vec<_> = outbox::<RecordInteractionsRequest>(&store, "analytics")
        .await
        .into_iter()
        .flat_map(|r| r.interactions)
        .collect();
    assert_eq!(exposures.len(), 2, "{exposures:?}");
    let control = exposures
        .iter()
        .find(|i| i.kind == InteractionKind::AssignedControl as i32)
        .expect("the control record");
    assert_eq!(control.campaign_id, held_out.id);
    assert_eq!(control.user_id, "ann");
    assert_eq!(control.goal_event_name, "purchased");
    assert_eq!(control.attribution_window, goal.attribution_window);
    assert_eq!(
        control.experiment,
        Some(Experiment {
            variants: vec![ArmWeight {
                variant_id: "a".into(),
                weight: 0
            }],
            control_weight: 1,
            sequential_tuning: 0,
        })
    );
    // The variant's exposure, at the same point of its decision.
    let exposed = exposures
        .iter()
        .find(|i| i.kind == InteractionKind::Exposed as i32)
        .expect("the variant's exposure");
    assert_eq!(
        (exposed.campaign_id.as_str(), exposed.variant_id.as_str()),
        (treated.id.as_str(), "a")
    );
    assert_eq!(exposed.goal_event_name, "purchased");
    assert_eq!(
        exposed.experiment.as_ref().map(|e| e.control_weight),
        Some(0)
    );
    let decision = &app.explain(&held_out.id, "ann").await[0];
    assert_eq!(decision.outcome, DecisionOutcome::Control as i32);

    let sent = deliveries(&store).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].campaign_id, treated.id);
    assert_eq!(sent[0].goal_event_name, "purchased");
    assert_eq!(sent[0].attribution_window, goal.attribution_window);
    app.running.stop().await;
}

/// Control is held out where a message would have gone: when the gates a send passes
/// stop it (here a campaign of higher priority took the banner), the user is not
/// recorded as control, as a variant's user would not have been exposed.
#[tokio::test]
async fn control_is_recorded_only_where_a_message_would_have_gone() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    let mut held_out = on_event("Held out", "opened", 0, InAppFormat::Banner);
    held_out.variants[0].weight = 0;
    held_out.control_weight = 1;
    let held_out = app.create(held_out).await;
    let rival = app
        .create(on_event("Rival", "opened", 5, InAppFormat::Banner))
        .await;
    app.handle(vec![user_event("m1", "ann", "opened")]).await;

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let exposures: Vec<_> = outbox::<RecordInteractionsRequest>(&store, "analytics")
        .await
        .into_iter()
        .flat_map(|r| r.interactions)
        .collect();
    assert_eq!(exposures.len(), 1, "{exposures:?}");
    assert_eq!(exposures[0].campaign_id, rival.id);
    let decision = &app.explain(&held_out.id, "ann").await[0];
    assert_eq!(decision.outcome, DecisionOutcome::Suppressed as i32);
    let failed = decision.reasons.iter().find(|r| !r.passed).expect("a gate");
    assert_eq!(
        failed.code,
        DecisionReasonCode::Priority as i32,
        "{decision:?}"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn explain_names_the_segment_that_excluded_a_user_and_pages() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    app.settings(Some(Duration::ZERO), "").await;
    let mut campaign = on_event("Upsell", "opened", 0, InAppFormat::Banner);
    campaign.audience = Some(Audience {
        exclude_segment_ids: vec!["seg_paying".into()],
        ..Default::default()
    });
    let campaign = app.create(campaign).await;
    let mut excluded = user_event("m1", "ann", "opened");
    excluded.segment_ids = vec!["seg_paying".into()];
    app.handle(vec![excluded]).await;
    app.handle(vec![user_event("m2", "ann", "opened")]).await;

    let decisions = app.explain(&campaign.id, "ann").await;
    assert_eq!(decisions.len(), 2);
    let oldest = &decisions[1];
    assert_eq!(oldest.cause_id, "m1");
    assert_eq!(oldest.outcome, DecisionOutcome::Suppressed as i32);
    let why = reason(oldest, DecisionReasonCode::AudienceSegmentMismatch).expect("audience");
    assert!(!why.passed && why.message.contains("seg_paying"), "{why:?}");
    assert_eq!(decisions[0].outcome, DecisionOutcome::Sent as i32);

    // One per page, newest first, then the end.
    let mut client = app.public().await;
    let first = client
        .explain_decision(app.admin(ExplainDecisionRequest {
            campaign_id: campaign.id.clone(),
            user_id: "ann".into(),
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.decisions[0].cause_id, "m2");
    let second = client
        .explain_decision(app.admin(ExplainDecisionRequest {
            campaign_id: campaign.id.clone(),
            user_id: "ann".into(),
            page_size: 1,
            page_token: first.next_page_token,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.decisions[0].cause_id, "m1");
    assert!(second.next_page_token.is_empty());
    // An unknown campaign is NOT_FOUND; a user without decisions gets none.
    let unknown = client
        .explain_decision(app.admin(ExplainDecisionRequest {
            campaign_id: "cmp_nope".into(),
            user_id: "ann".into(),
            ..Default::default()
        }))
        .await
        .expect_err("unknown campaign");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(app.explain(&campaign.id, "nobody").await.is_empty());
    app.running.stop().await;
}

#[tokio::test]
async fn localized_content_follows_the_user_locale() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, clock(), "t1").await;
    app.settings(Some(Duration::ZERO), "").await;
    let mut campaign = on_event("Hello", "opened", 0, InAppFormat::Banner);
    campaign.variants[0].contents = vec![in_app(InAppFormat::Banner, "Hello")];
    campaign.variants[0].localizations = vec![LocalizedContents {
        locale: "fr".into(),
        contents: vec![in_app(InAppFormat::Banner, "Bonjour")],
    }];
    app.create(campaign).await;

    let with_context = |id: &str, user: &str, locale: &str| {
        let mut e = user_event(id, user, "opened");
        e.event.as_mut().unwrap().context = Some(EventContext {
            locale: locale.into(),
            ..Default::default()
        });
        e
    };
    let mut canadian = user_event("m2", "fr-ca", "opened");
    canadian.traits = Some(Struct {
        fields: [("locale".to_owned(), text("fr-CA"))].into_iter().collect(),
    });
    app.handle(vec![
        with_context("m1", "french", "fr"),
        canadian,
        with_context("m3", "german", "de"),
    ])
    .await;

    let store = herald_storage::connect(&db.url("trigger")).await.unwrap();
    let sent = deliveries(&store).await;
    let title_of = |user: &str| {
        sent.iter()
            .find(|d| d.user_id == user)
            .map(|d| title(d).to_owned())
            .unwrap_or_default()
    };
    assert_eq!(title_of("french"), "Bonjour");
    assert_eq!(title_of("fr-ca"), "Bonjour");
    assert_eq!(title_of("german"), "Hello");
    assert!(sent.iter().all(|d| d.channel == Channel::InApp as i32));
    app.running.stop().await;
}
