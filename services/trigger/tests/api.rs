//! Trigger over real gRPC, on a fresh database per test (SQLite by default, PostgreSQL
//! with `HERALD_TEST_DATABASE=postgres`): the campaign lifecycle, validation and auth of
//! the public API, HandleEvents committing rendered deliveries to the outbox once per
//! event (for users in the campaign's audience segments), then relaying them to
//! delivery, HandleSegmentTransitions acknowledging each transition once, and
//! ListSegmentReferences.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{
    Channel, ComparisonOperator, EmailContent, Event, InAppContent, InAppFormat, MessageContent,
};
use herald_proto::delivery::v1::delivery_internal_service_server::{
    DeliveryInternalService, DeliveryInternalServiceServer,
};
use herald_proto::delivery::v1::{
    DeliverRequest, DeliverResponse, DeliveryOutcome, DeliveryResult,
    ForgetUserRequest as DeliveryForgetUserRequest,
    ForgetUserResponse as DeliveryForgetUserResponse,
};
use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::*;
use herald_runtime::auth::{Scope, generate_api_key};
use herald_runtime::{Clock, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use herald_testkit::{
    Credentials, Running, TestDatabase, authorized, config, eventually, spawn, violations,
};
use prost::Message;
use prost_types::{FieldMask, Struct, Value, value::Kind};
use tonic::transport::Channel as GrpcChannel;
use tonic::{Code, Request, Response, Status};

struct App {
    running: Running,
    credentials: Credentials,
    /// An admin key of another workspace.
    other_admin_key: String,
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

    fn admin<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.admin_key.expose())
    }

    fn internal_key<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.internal_key.expose())
    }
}

/// Trigger on a fresh database, sending deliveries to `delivery_url`.
async fn spawn_trigger(db: &TestDatabase, delivery_url: &str) -> App {
    spawn_trigger_with(db, delivery_url, Clock::system(), |_| {}).await
}

/// Trigger on a fresh database with `clock` and the config changed by `configure`.
async fn spawn_trigger_with(
    db: &TestDatabase,
    delivery_url: &str,
    clock: Clock,
    configure: impl FnOnce(&mut herald_runtime::Config),
) -> App {
    let credentials = Credentials::new();
    let mut config = config(ServiceKind::Trigger, db, &credentials);
    config.delivery_url = delivery_url.to_owned();
    let (other_admin_key, other) = generate_api_key("globex", &[Scope::Admin]);
    config.api_keys.push(other);
    configure(&mut config);
    let running = spawn(config, clock, herald_trigger::serve).await;
    App {
        running,
        credentials,
        other_admin_key: other_admin_key.expose().to_owned(),
    }
}

/// A delivery URL nobody listens on: deliveries stay in the outbox.
const NOWHERE: &str = "http://127.0.0.1:1";

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn in_app(title: &str) -> MessageContent {
    MessageContent {
        body: Some(Body::InApp(InAppContent {
            format: InAppFormat::Modal as i32,
            title: title.into(),
            body: "You are on {{ event.properties.plan }}".into(),
            ..Default::default()
        })),
    }
}

fn email() -> MessageContent {
    MessageContent {
        body: Some(Body::Email(EmailContent {
            subject: "Welcome to {{ event.properties.plan | upcase }}".into(),
            text_body: "Hi {{ user.first_name | default: 'there' }}".into(),
            ..Default::default()
        })),
    }
}

fn campaign(event_name: &str) -> Campaign {
    Campaign {
        name: "Upgrade welcome".into(),
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: event_name.into(),
                property_filters: vec![PropertyFilter {
                    property: "plan".into(),
                    operator: ComparisonOperator::Eq as i32,
                    value: Some(text("pro")),
                }],
            })),
        }),
        variants: vec![Variant {
            name: "Only".into(),
            weight: 1,
            contents: vec![in_app(
                "Hi {{ user.first_name }}, welcome to {{ event.properties.plan }}",
            )],
            ..Default::default()
        }],
        priority: 5,
        category: "product_updates".into(),
        ..Default::default()
    }
}

async fn create(app: &App, campaign: Campaign) -> Campaign {
    let response = app
        .public()
        .await
        .create_campaign(app.admin(CreateCampaignRequest {
            campaign: Some(campaign),
        }))
        .await;
    response
        .expect("create campaign")
        .into_inner()
        .campaign
        .expect("campaign")
}

async fn set_status(app: &App, id: &str, status: CampaignStatus) -> Result<Campaign, Status> {
    app.public()
        .await
        .set_campaign_status(app.admin(SetCampaignStatusRequest {
            campaign_id: id.into(),
            status: status as i32,
        }))
        .await
        .map(|r| r.into_inner().campaign.expect("campaign"))
}

#[tokio::test]
async fn campaign_lifecycle_round_trip() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let mut client = app.public().await;

    let created = create(&app, campaign("upgraded")).await;
    assert!(created.id.starts_with("cmp_"), "{}", created.id);
    assert_eq!(created.status, CampaignStatus::Draft as i32);
    assert_eq!(created.variants[0].id, "v1");
    assert!(created.create_time.is_some() && created.create_time == created.update_time);

    let got = client
        .get_campaign(app.admin(GetCampaignRequest {
            campaign_id: created.id.clone(),
        }))
        .await
        .expect("get")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(got, created);

    // Another workspace does not see it.
    let other = client
        .get_campaign(authorized(
            GetCampaignRequest {
                campaign_id: created.id.clone(),
            },
            &app.other_admin_key,
        ))
        .await
        .expect_err("other workspace");
    assert_eq!(other.code(), Code::NotFound);

    // Update the name only; the rest stays.
    let mut change = Campaign {
        id: created.id.clone(),
        name: "Renamed".into(),
        ..Default::default()
    };
    let updated = client
        .update_campaign(app.admin(UpdateCampaignRequest {
            campaign: Some(change.clone()),
            update_mask: Some(FieldMask {
                paths: vec!["name".into()],
            }),
        }))
        .await
        .expect("update")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.variants, created.variants);
    assert_eq!(updated.create_time, created.create_time);
    assert_ne!(updated.update_time, created.update_time);

    // Status is not updatable through UpdateCampaign, and a mask is required.
    change.status = CampaignStatus::Active as i32;
    let refused = client
        .update_campaign(app.admin(UpdateCampaignRequest {
            campaign: Some(change.clone()),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        }))
        .await
        .expect_err("status via update");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), ["update_mask.paths[0]"]);
    let refused = client
        .update_campaign(app.admin(UpdateCampaignRequest {
            campaign: Some(change),
            update_mask: None,
        }))
        .await
        .expect_err("no mask");
    assert_eq!(violations(&refused), ["update_mask"]);

    // The lifecycle.
    let active = set_status(&app, &created.id, CampaignStatus::Active)
        .await
        .expect("activate");
    assert_eq!(active.status, CampaignStatus::Active as i32);
    assert_eq!(
        set_status(&app, &created.id, CampaignStatus::Active)
            .await
            .expect("again")
            .status,
        active.status
    );
    assert_eq!(
        set_status(&app, &created.id, CampaignStatus::Draft)
            .await
            .expect_err("back to draft")
            .code(),
        Code::FailedPrecondition
    );
    set_status(&app, &created.id, CampaignStatus::Paused)
        .await
        .expect("pause");
    set_status(&app, &created.id, CampaignStatus::Active)
        .await
        .expect("resume");
    set_status(&app, &created.id, CampaignStatus::Archived)
        .await
        .expect("archive");
    for status in [
        CampaignStatus::Active,
        CampaignStatus::Paused,
        CampaignStatus::Draft,
    ] {
        let refused = set_status(&app, &created.id, status)
            .await
            .expect_err("archived is final");
        assert_eq!(refused.code(), Code::FailedPrecondition);
    }
    let refused = client
        .update_campaign(app.admin(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: created.id.clone(),
                name: "x".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["name".into()],
            }),
        }))
        .await
        .expect_err("archived cannot be updated");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // Activating an incomplete draft names what is missing.
    let draft = create(
        &app,
        Campaign {
            variants: vec![],
            ..campaign("other")
        },
    )
    .await;
    let refused = set_status(&app, &draft.id, CampaignStatus::Active)
        .await
        .expect_err("incomplete");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(violations(&refused), ["campaign.variants"]);
}

/// The sequential tuning analytics reads a campaign's experiment with can be set on a
/// draft, is bounded, and is frozen once the campaign has been ACTIVE.
#[tokio::test]
async fn the_sequential_tuning_is_frozen_once_active() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let too_large = Campaign {
        sequential_tuning: 1_000_000_001,
        ..campaign("upgraded")
    };
    let refused = app
        .public()
        .await
        .create_campaign(app.admin(CreateCampaignRequest {
            campaign: Some(too_large),
        }))
        .await
        .expect_err("too large");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), ["campaign.sequential_tuning"]);

    let draft = create(&app, campaign("upgraded")).await;
    let update = |tuning: u32| {
        app.admin(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: draft.id.clone(),
                sequential_tuning: tuning,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["sequential_tuning".into()],
            }),
        })
    };
    let tuned = app
        .public()
        .await
        .update_campaign(update(20_000))
        .await
        .expect("a draft's tuning changes")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(tuned.sequential_tuning, 20_000);
    set_status(&app, &draft.id, CampaignStatus::Active)
        .await
        .expect("activate");
    set_status(&app, &draft.id, CampaignStatus::Paused)
        .await
        .expect("pause");
    let frozen = app
        .public()
        .await
        .update_campaign(update(5_000))
        .await
        .expect_err("frozen");
    assert_eq!(frozen.code(), Code::FailedPrecondition, "{frozen:?}");
    // The same value is no change.
    app.public()
        .await
        .update_campaign(update(20_000))
        .await
        .expect("unchanged");
    app.running.stop().await;
}

#[tokio::test]
async fn list_pages_newest_first_with_a_status_filter() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let mut client = app.public().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = create(
            &app,
            Campaign {
                name: format!("c{i}"),
                ..campaign("e")
            },
        )
        .await;
        ids.push(c.id);
    }
    set_status(&app, &ids[1], CampaignStatus::Active)
        .await
        .expect("activate");
    set_status(&app, &ids[3], CampaignStatus::Active)
        .await
        .expect("activate");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_campaigns(app.admin(ListCampaignsRequest {
                page_size: 2,
                page_token: token,
                status: None,
            }))
            .await
            .expect("list")
            .into_inner();
        assert!(page.campaigns.len() <= 2);
        seen.extend(page.campaigns.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let active = client
        .list_campaigns(app.admin(ListCampaignsRequest {
            page_size: 0,
            page_token: String::new(),
            status: Some(CampaignStatus::Active as i32),
        }))
        .await
        .expect("list active")
        .into_inner();
    let active: Vec<String> = active.campaigns.into_iter().map(|c| c.id).collect();
    assert_eq!(active, [ids[3].clone(), ids[1].clone()]);

    let other = client
        .list_campaigns(authorized(
            ListCampaignsRequest::default(),
            &app.other_admin_key,
        ))
        .await
        .expect("list other workspace")
        .into_inner();
    assert!(other.campaigns.is_empty());

    let refused = client
        .list_campaigns(app.admin(ListCampaignsRequest {
            page_size: -1,
            ..Default::default()
        }))
        .await
        .expect_err("negative page size");
    assert_eq!(violations(&refused), ["page_size"]);
}

#[tokio::test]
async fn invalid_campaigns_name_their_fields() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let mut client = app.public().await;
    let mut bad = campaign("upgraded");
    bad.name = String::new();
    bad.variants[0].contents[0] = in_app("Hi {{ user.first_name ");
    bad.variants.push(Variant {
        id: "v1".into(),
        weight: 1,
        contents: vec![email()],
        ..Default::default()
    });
    let status = client
        .create_campaign(app.admin(CreateCampaignRequest {
            campaign: Some(bad),
        }))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "campaign.name",
            "campaign.variants[0].contents[0].in_app.title"
        ]
    );

    let mut no_trigger = campaign("x");
    no_trigger.trigger = None;
    let status = client
        .create_campaign(app.admin(CreateCampaignRequest {
            campaign: Some(no_trigger),
        }))
        .await
        .expect_err("no trigger");
    assert_eq!(violations(&status), ["campaign.trigger"]);

    // ACTIVE on create requires a complete campaign.
    let mut zero = campaign("x");
    zero.status = CampaignStatus::Active as i32;
    zero.variants[0].weight = 0;
    let status = client
        .create_campaign(app.admin(CreateCampaignRequest {
            campaign: Some(zero),
        }))
        .await
        .expect_err("zero weights");
    assert_eq!(violations(&status), ["campaign.variants[0].weight"]);

    // Nothing was written.
    let list = client
        .list_campaigns(app.admin(ListCampaignsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(list.campaigns.is_empty());
}

#[tokio::test]
async fn settings_not_enforced_yet_keep_a_campaign_from_going_active() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let client = app.public().await;
    let refused_on_create = |campaign: Campaign| {
        let mut client = client.clone();
        let request = app.admin(CreateCampaignRequest {
            campaign: Some(Campaign {
                status: CampaignStatus::Active as i32,
                ..campaign
            }),
        });
        async move {
            let status = client.create_campaign(request).await.expect_err("refused");
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            violations(&status)
        }
    };
    let mut with_email = campaign("upgraded");
    with_email.variants[0].contents.push(email());
    assert_eq!(
        refused_on_create(with_email).await,
        ["campaign.variants[0].contents[1]"]
    );
    let with_schedule = Campaign {
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Time(TimeTrigger {
                kind: Some(time_trigger::Kind::Schedule(LocalSchedule {
                    when: Some(local_schedule::When::Cron("0 9 * * 1".into())),
                    ..Default::default()
                })),
            })),
        }),
        ..campaign("upgraded")
    };
    // A local schedule needs the segments whose members it is for.
    assert_eq!(
        refused_on_create(with_schedule).await,
        ["campaign.audience.include_segment_ids"]
    );

    // What this version enforces is accepted: a goal, a holdout, caps, quiet hours, and
    // priorities that differ between campaigns on one event.
    let enforced = Campaign {
        status: CampaignStatus::Active as i32,
        conversion_goal: Some(ConversionGoal {
            event_name: "paid".into(),
            attribution_window: None,
        }),
        control_weight: 10,
        frequency_cap: Some(FrequencyCap {
            max_deliveries: 1,
            window: None,
        }),
        quiet_hours: Some(QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            ..Default::default()
        }),
        ..campaign("upgraded")
    };
    create(&app, enforced).await;
    let other = create(
        &app,
        Campaign {
            priority: 9,
            ..campaign("upgraded")
        },
    )
    .await;
    set_status(&app, &other.id, CampaignStatus::Active)
        .await
        .expect("a different priority");
    // A draft may hold what an active campaign may not.
    let mut draft = campaign("upgraded");
    draft.variants[0].contents.push(email());
    assert_eq!(
        create(&app, draft).await.status,
        CampaignStatus::Draft as i32
    );
}

#[tokio::test]
async fn auth_and_not_found() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let mut client = app.public().await;
    let denied = client
        .list_campaigns(authorized(
            ListCampaignsRequest::default(),
            app.credentials.ingest_key.expose(),
        ))
        .await
        .expect_err("ingest key");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let missing = client
        .list_campaigns(Request::new(ListCampaignsRequest::default()))
        .await
        .expect_err("no key");
    assert_eq!(missing.code(), Code::Unauthenticated);
    let not_found = client
        .get_campaign(app.admin(GetCampaignRequest {
            campaign_id: "cmp_unknown".into(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(not_found.code(), Code::NotFound);
    // The internal API takes the internal key only.
    let denied = app
        .internal()
        .await
        .handle_events(app.admin(HandleEventsRequest {
            workspace_id: "acme".into(),
            events: vec![],
        }))
        .await
        .expect_err("admin key on internal API");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

fn user_event(message_id: &str, user_id: &str, name: &str, plan: &str) -> UserEvent {
    let mut properties = Struct::default();
    properties.fields.insert("plan".into(), text(plan));
    let mut traits = Struct::default();
    traits.fields.insert("first_name".into(), text("Ada"));
    traits
        .fields
        .insert("email".into(), text("ada@example.com"));
    UserEvent {
        event: Some(Event {
            message_id: message_id.into(),
            user_id: user_id.into(),
            name: name.into(),
            properties: Some(properties),
            timestamp: Some(prost_types::Timestamp {
                seconds: 1_714_557_600,
                nanos: 0,
            }),
            ..Default::default()
        }),
        traits: Some(traits),
        segment_ids: vec![],
    }
}

async fn outbox_payloads(db: &DatabaseConnection) -> Vec<DeliverRequest> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT payload FROM trigger_outbox WHERE destination = 'delivery' ORDER BY id",
        ))
        .await
        .expect("query outbox");
    rows.iter()
        .map(|r| {
            DeliverRequest::decode(
                r.try_get::<Vec<u8>>("", "payload")
                    .expect("payload")
                    .as_slice(),
            )
            .expect("decode")
        })
        .collect()
}

/// Deliveries waiting in the outbox (exposure records for analytics, which these tests
/// do not run, are not counted).
async fn outbox_count(db: &DatabaseConnection) -> i64 {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM trigger_outbox WHERE destination = 'delivery'",
        ))
        .await
        .expect("count outbox")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}

#[tokio::test]
async fn handle_events_commits_rendered_deliveries_once() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let active = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..campaign("upgraded")
        },
    )
    .await;
    // A draft and a paused campaign on the same event never fire.
    create(&app, campaign("upgraded")).await;
    let paused = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..campaign("upgraded")
        },
    )
    .await;
    set_status(&app, &paused.id, CampaignStatus::Paused)
        .await
        .expect("pause");

    let request = HandleEventsRequest {
        workspace_id: "acme".into(),
        events: vec![
            user_event("m1", "u1", "upgraded", "pro"),
            user_event("m2", "u2", "upgraded", "free"),
            user_event("m3", "u3", "signed_up", "pro"),
        ],
    };
    let mut internal = app.internal().await;
    let first = internal
        .handle_events(app.internal_key(request.clone()))
        .await
        .expect("handle")
        .into_inner();
    assert_eq!((first.handled, first.duplicates), (3, 0));

    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    let payloads = outbox_payloads(&store).await;
    assert_eq!(
        payloads.len(),
        1,
        "one delivery: the one matching campaign's content"
    );
    let deliveries: Vec<_> = payloads
        .into_iter()
        .flat_map(|p| {
            assert_eq!(p.workspace_id, "acme");
            p.deliveries
        })
        .collect();
    let in_app = &deliveries[0];
    assert_eq!(in_app.idempotency_key, format!("{}:m1:in_app", active.id));
    assert_eq!(
        (
            in_app.user_id.as_str(),
            in_app.campaign_id.as_str(),
            in_app.variant_id.as_str()
        ),
        ("u1", active.id.as_str(), "v1")
    );
    assert_eq!(in_app.channel, Channel::InApp as i32);
    assert_eq!(
        (in_app.priority, in_app.category.as_str()),
        (5, "product_updates")
    );
    let Some(Body::InApp(content)) = &in_app.content.as_ref().unwrap().body else {
        panic!("in-app content")
    };
    assert_eq!(content.title, "Hi Ada, welcome to pro");
    assert_eq!(content.body, "You are on pro");

    // The same events again change nothing.
    let again = internal
        .handle_events(app.internal_key(request))
        .await
        .expect("handle again")
        .into_inner();
    assert_eq!((again.handled, again.duplicates), (0, 3));
    assert_eq!(outbox_count(&store).await, 1);

    // Bad input is refused with the field named.
    let refused = internal
        .handle_events(app.internal_key(HandleEventsRequest {
            workspace_id: "acme".into(),
            events: vec![user_event("", "u1", "upgraded", "pro")],
        }))
        .await
        .expect_err("no message id");
    assert_eq!(violations(&refused), ["events[0].event.message_id"]);
}

#[tokio::test]
async fn audience_segments_decide_by_the_users_segments_after_the_event() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    // Audience segments are enforced, so an ACTIVE campaign may name them.
    let active = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            audience: Some(Audience {
                include_segment_ids: vec!["seg_trial".into(), "seg_beta".into()],
                exclude_segment_ids: vec!["seg_churned".into()],
                trait_filters: vec![],
            }),
            ..campaign("upgraded")
        },
    )
    .await;
    assert_eq!(active.status, CampaignStatus::Active as i32);

    let in_segments = |message_id: &str, user_id: &str, segments: &[&str]| UserEvent {
        segment_ids: segments.iter().map(|s| (*s).to_owned()).collect(),
        ..user_event(message_id, user_id, "upgraded", "pro")
    };
    let handled = app
        .internal()
        .await
        .handle_events(app.internal_key(HandleEventsRequest {
            workspace_id: "acme".into(),
            events: vec![
                // In an included segment: fires.
                in_segments("m1", "u1", &["seg_beta", "seg_other"]),
                // In no segment: not in the audience.
                in_segments("m2", "u2", &[]),
                // Included but also excluded: the exclusion wins.
                in_segments("m3", "u3", &["seg_churned", "seg_trial"]),
                // Only in other segments.
                in_segments("m4", "u4", &["seg_other"]),
            ],
        }))
        .await
        .expect("handle")
        .into_inner();
    assert_eq!((handled.handled, handled.duplicates), (4, 0));
    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    let users: Vec<String> = outbox_payloads(&store)
        .await
        .into_iter()
        .flat_map(|p| p.deliveries)
        .map(|d| d.user_id)
        .collect();
    assert_eq!(users, ["u1"]);
}

fn transition(
    id: &str,
    segment_id: &str,
    user_id: &str,
    kind: TransitionKind,
) -> SegmentTransition {
    SegmentTransition {
        id: id.into(),
        segment_id: segment_id.into(),
        user_id: user_id.into(),
        kind: kind as i32,
        transition_time: Some(prost_types::Timestamp {
            seconds: 1_714_557_600,
            nanos: 0,
        }),
        cause: TransitionCause::Event as i32,
        cause_message_id: "m1".into(),
        ..Default::default()
    }
}

async fn handle_transitions(
    app: &App,
    transitions: Vec<SegmentTransition>,
) -> Result<(u32, u32), Status> {
    app.internal()
        .await
        .handle_segment_transitions(app.internal_key(HandleSegmentTransitionsRequest {
            workspace_id: "acme".into(),
            transitions,
        }))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.handled, r.duplicates)
        })
}

async fn count_rows(db: &DatabaseConnection, table: &str) -> i64 {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .expect("count rows")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}

#[tokio::test]
async fn segment_transitions_are_acknowledged_once_and_checked_whole() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    use TransitionKind::{Entered, Exited};

    let t1 = transition("tr_1", "seg_trial", "u1", Entered);
    let t2 = transition("tr_2", "seg_trial", "u2", Exited);
    assert_eq!(
        handle_transitions(&app, vec![t1.clone(), t2.clone()])
            .await
            .expect("handle"),
        (2, 0)
    );
    // A redelivery, with one new transition and a repeat inside the batch.
    let t3 = transition("tr_3", "seg_beta", "u1", Entered);
    assert_eq!(
        handle_transitions(&app, vec![t1, t3.clone(), t3])
            .await
            .expect("redelivery"),
        (1, 2)
    );
    assert_eq!(
        handle_transitions(&app, vec![]).await.expect("empty"),
        (0, 0)
    );
    // Nothing acts on transitions yet: no delivery is staged.
    assert_eq!(outbox_count(&store).await, 0);
    assert_eq!(count_rows(&store, "trigger_handled_transitions").await, 3);

    // One invalid transition refuses the whole batch, naming each bad field…
    let t4 = transition("tr_4", "seg_trial", "u4", Entered);
    let refused = handle_transitions(
        &app,
        vec![
            t4.clone(),
            SegmentTransition {
                cause: TransitionCause::Time as i32,
                ..Default::default()
            },
            transition(&"x".repeat(129), "seg_trial", "u5", Entered),
        ],
    )
    .await
    .expect_err("invalid transitions");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&refused),
        [
            "transitions[1].id",
            "transitions[1].segment_id",
            "transitions[1].user_id",
            "transitions[1].kind",
            "transitions[2].id",
        ]
    );
    let unknown_kind = SegmentTransition {
        kind: 7,
        ..transition("tr_5", "seg_trial", "u5", Entered)
    };
    let refused = handle_transitions(&app, vec![unknown_kind])
        .await
        .expect_err("unknown kind");
    assert_eq!(violations(&refused), ["transitions[0].kind"]);
    // …and writes nothing: the valid one in the refused batch is still new.
    assert_eq!(count_rows(&store, "trigger_handled_transitions").await, 3);
    assert_eq!(
        handle_transitions(&app, vec![t4])
            .await
            .expect("after refusal"),
        (1, 0)
    );

    // The workspace is required and must be the caller's.
    let refused = app
        .internal()
        .await
        .handle_segment_transitions(app.internal_key(HandleSegmentTransitionsRequest {
            workspace_id: String::new(),
            transitions: vec![],
        }))
        .await
        .expect_err("no workspace");
    assert_eq!(violations(&refused), ["workspace_id"]);
    let denied = app
        .internal()
        .await
        .handle_segment_transitions(app.admin(HandleSegmentTransitionsRequest {
            workspace_id: "acme".into(),
            transitions: vec![],
        }))
        .await
        .expect_err("admin key on internal API");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn handled_transition_ids_are_forgotten_after_the_ledger_retention() {
    let db = TestDatabase::new().await;
    let clock = Clock::manual("2026-06-01T00:00:00Z".parse().expect("instant"));
    let app = spawn_trigger_with(&db, NOWHERE, clock.clone(), |config| {
        config.outbox_max_age_secs = 3600;
        config.ledger_retention_secs = 3600;
    })
    .await;
    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    let t1 = transition("tr_1", "seg_trial", "u1", TransitionKind::Entered);
    assert_eq!(
        handle_transitions(&app, vec![t1.clone()])
            .await
            .expect("handle"),
        (1, 0)
    );
    assert_eq!(
        handle_transitions(&app, vec![t1.clone()])
            .await
            .expect("again"),
        (0, 1)
    );
    // Two hours on, the hourly cleanup has purged the entry…
    clock.advance(Duration::from_secs(2 * 3600));
    eventually(Duration::from_secs(10), "the ledger cleanup", || {
        let store = store.clone();
        async move { (count_rows(&store, "trigger_handled_transitions").await == 0).then_some(()) }
    })
    .await;
    // …so the id counts as new again.
    assert_eq!(
        handle_transitions(&app, vec![t1])
            .await
            .expect("after retention"),
        (1, 0)
    );
}

#[tokio::test]
async fn segment_references_list_every_campaign_naming_the_segment() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, NOWHERE).await;
    let with_audience = |include: &[&str], exclude: &[&str]| Campaign {
        audience: Some(Audience {
            include_segment_ids: include.iter().map(|s| (*s).to_owned()).collect(),
            exclude_segment_ids: exclude.iter().map(|s| (*s).to_owned()).collect(),
            trait_filters: vec![],
        }),
        ..campaign("upgraded")
    };
    let included = create(&app, with_audience(&["seg_other", "seg_trial"], &[])).await;
    let excluded = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..with_audience(&[], &["seg_trial"])
        },
    )
    .await;
    let entry = create(
        &app,
        Campaign {
            trigger: Some(Trigger {
                kind: Some(trigger::Kind::SegmentEntry(SegmentEntryTrigger {
                    segment_id: "seg_trial".into(),
                    ..Default::default()
                })),
            }),
            ..campaign("upgraded")
        },
    )
    .await;
    let archived = create(&app, with_audience(&["seg_trial"], &[])).await;
    set_status(&app, &archived.id, CampaignStatus::Archived)
        .await
        .expect("archive");
    let paused = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..with_audience(&["seg_trial"], &[])
        },
    )
    .await;
    set_status(&app, &paused.id, CampaignStatus::Paused)
        .await
        .expect("pause");
    // Not referencing it: another segment, no audience, another workspace.
    create(&app, with_audience(&["seg_trial_2"], &["seg_tria"])).await;
    create(&app, campaign("upgraded")).await;
    let mut public = app.public().await;
    let elsewhere = public
        .create_campaign(authorized(
            CreateCampaignRequest {
                campaign: Some(with_audience(&["seg_trial"], &[])),
            },
            &app.other_admin_key,
        ))
        .await
        .expect("create in globex")
        .into_inner()
        .campaign
        .expect("campaign");

    let references = |workspace: &str, segment: &str| {
        let request = app.internal_key(ListSegmentReferencesRequest {
            workspace_id: workspace.into(),
            segment_id: segment.into(),
        });
        let app = &app;
        async move {
            app.internal()
                .await
                .list_segment_references(request)
                .await
                .map(|r| r.into_inner().campaign_ids)
        }
    };
    let mut expected = vec![included.id, excluded.id, entry.id, archived.id, paused.id];
    expected.sort();
    assert_eq!(
        references("acme", "seg_trial").await.expect("list"),
        expected
    );
    assert_eq!(
        references("globex", "seg_trial").await.expect("list"),
        [elsewhere.id]
    );
    assert!(
        references("acme", "seg_unused")
            .await
            .expect("list")
            .is_empty()
    );

    // Bad input names its field.
    let refused = references("acme", "").await.expect_err("no segment");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), ["segment_id"]);
    let refused = references("", &"s".repeat(129))
        .await
        .expect_err("no workspace, long segment");
    assert_eq!(violations(&refused), ["workspace_id", "segment_id"]);
    // The internal API takes the internal key only.
    let denied = app
        .internal()
        .await
        .list_segment_references(app.admin(ListSegmentReferencesRequest {
            workspace_id: "acme".into(),
            segment_id: "seg_trial".into(),
        }))
        .await
        .expect_err("admin key on internal API");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

/// One `upgraded` event with `message_id` handled by `app`.
async fn handle_upgraded(app: &App, message_id: &str) {
    let request = HandleEventsRequest {
        workspace_id: "acme".into(),
        events: vec![user_event(message_id, "u1", "upgraded", "pro")],
    };
    let handled = app
        .internal()
        .await
        .handle_events(app.internal_key(request))
        .await
        .expect("handle")
        .into_inner();
    assert_eq!(handled.handled, 1);
}

#[tokio::test]
async fn a_campaign_change_through_one_replica_applies_on_another_at_once() {
    let db = TestDatabase::new().await;
    let (one, other) = (
        spawn_trigger(&db, NOWHERE).await,
        spawn_trigger(&db, NOWHERE).await,
    );
    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    // The other replica has matched this workspace's events with no campaign…
    handle_upgraded(&other, "m1").await;
    assert_eq!(outbox_count(&store).await, 0);
    // …and fires a campaign activated through the first replica on the next event,
    let active = create(
        &one,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..campaign("upgraded")
        },
    )
    .await;
    handle_upgraded(&other, "m2").await;
    assert_eq!(outbox_count(&store).await, 1);
    // …and stops the moment it is paused there.
    set_status(&one, &active.id, CampaignStatus::Paused)
        .await
        .expect("pause");
    handle_upgraded(&other, "m3").await;
    assert_eq!(outbox_count(&store).await, 1);
}

/// A Deliver call as received: its `authorization` header and request.
type Received = (Option<String>, DeliverRequest);

/// A delivery service that records what it is asked to deliver.
#[derive(Clone, Default)]
struct FakeDelivery {
    received: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl DeliveryInternalService for FakeDelivery {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverResponse>, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request = request.into_inner();
        let results = request
            .deliveries
            .iter()
            .map(|d| DeliveryResult {
                idempotency_key: d.idempotency_key.clone(),
                message_id: format!("msg_{}", d.idempotency_key),
                duplicate: false,
                outcome: DeliveryOutcome::Accepted as i32,
            })
            .collect();
        self.received.lock().unwrap().push((auth, request));
        Ok(Response::new(DeliverResponse { results }))
    }

    async fn forget_user(
        &self,
        _: Request<DeliveryForgetUserRequest>,
    ) -> Result<Response<DeliveryForgetUserResponse>, Status> {
        Ok(Response::new(DeliveryForgetUserResponse {}))
    }
}

#[tokio::test]
async fn deliveries_are_relayed_to_delivery_with_the_internal_key() {
    let fake = FakeDelivery::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake delivery");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DeliveryInternalServiceServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db, &url).await;
    let campaign = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..campaign("upgraded")
        },
    )
    .await;
    let request = HandleEventsRequest {
        workspace_id: "acme".into(),
        events: vec![
            user_event("m1", "u1", "upgraded", "pro"),
            user_event("m2", "u2", "upgraded", "pro"),
        ],
    };
    app.internal()
        .await
        .handle_events(app.internal_key(request))
        .await
        .expect("handle");

    let keys = eventually(Duration::from_secs(10), "deliveries at delivery", || {
        let received = fake.received.lock().unwrap().clone();
        async move {
            let keys: Vec<String> = received
                .iter()
                .flat_map(|(_, r)| r.deliveries.iter().map(|d| d.idempotency_key.clone()))
                .collect();
            (keys.len() >= 2).then_some((received, keys))
        }
    })
    .await;
    let (received, keys) = keys;
    let expected_auth = format!("Bearer {}", app.credentials.internal_key.expose());
    assert!(received.iter().all(
        |(auth, r)| auth.as_deref() == Some(expected_auth.as_str()) && r.workspace_id == "acme"
    ));
    assert_eq!(
        keys,
        ["m1:in_app", "m2:in_app"].map(|k| format!("{}:{k}", campaign.id))
    );
    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    eventually(Duration::from_secs(10), "the outbox to drain", || {
        let store = store.clone();
        async move { (outbox_count(&store).await == 0).then_some(()) }
    })
    .await;
    app.running.stop().await;
    server.abort();
}
