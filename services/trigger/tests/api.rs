//! Trigger over real gRPC, on a fresh database per test (SQLite by default, PostgreSQL
//! with `HERALD_TEST_DATABASE=postgres`): the campaign lifecycle, validation and auth of
//! the public API, and HandleEvents committing rendered deliveries to the outbox once
//! per event, then relaying them to delivery.

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
    let credentials = Credentials::new();
    let mut config = config(ServiceKind::Trigger, db, &credentials);
    config.delivery_url = delivery_url.to_owned();
    let (other_admin_key, other) = generate_api_key("globex", &[Scope::Admin]);
    config.api_keys.push(other);
    let running = spawn(config, Clock::system(), herald_trigger::serve).await;
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
    let mut client = app.public().await;
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
    let with_goal = Campaign {
        conversion_goal: Some(ConversionGoal {
            event_name: "paid".into(),
            attribution_window: None,
        }),
        ..campaign("upgraded")
    };
    assert_eq!(
        refused_on_create(with_goal).await,
        ["campaign.conversion_goal"]
    );
    let with_holdout = Campaign {
        control_weight: 10,
        ..campaign("upgraded")
    };
    assert_eq!(
        refused_on_create(with_holdout).await,
        ["campaign.control_weight"]
    );

    // Priority decides nothing while every matching campaign fires: two ACTIVE campaigns
    // on one event may not differ in it.
    let first = create(
        &app,
        Campaign {
            status: CampaignStatus::Active as i32,
            ..campaign("upgraded")
        },
    )
    .await;
    let second = create(
        &app,
        Campaign {
            priority: 9,
            ..campaign("upgraded")
        },
    )
    .await;
    let status = set_status(&app, &second.id, CampaignStatus::Active)
        .await
        .expect_err("a competing priority");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(violations(&status), ["campaign.priority"]);
    assert!(status.message().contains(&first.id), "{}", status.message());
    // Drafts may hold any of it; the same priority is fine.
    client
        .update_campaign(app.admin(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: second.id.clone(),
                priority: 5,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["priority".into()],
            }),
        }))
        .await
        .expect("update the draft");
    set_status(&app, &second.id, CampaignStatus::Active)
        .await
        .expect("same priority");
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
            "SELECT payload FROM trigger_outbox ORDER BY id",
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

async fn outbox_count(db: &DatabaseConnection) -> i64 {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM trigger_outbox",
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
