//! One event becomes a message on screen: the five services as separate gRPC servers on
//! ephemeral ports, on SQLite or PostgreSQL (`HERALD_TEST_DATABASE`), running the README
//! walkthrough and the ways it can go wrong.

use std::time::Duration;

use futures::StreamExt;
use herald_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use herald_proto::analytics::v1::{GetCampaignStatsRequest, VariantStats};
use herald_proto::common::v1::{
    Action, ActionKind, Event, Identity, InAppContent, InAppFormat, MessageContent, MessageState,
    message_content,
};
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::delivery::v1::{
    DisplaySettings, ListInboxRequest, Message, SubscribeRequest, UpdateMessageStateRequest,
    subscribe_response,
};
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{IdentifyRequest, TrackRequest};
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::{
    Campaign, CampaignStatus, CreateCampaignRequest, EventTrigger, Trigger, Variant, trigger,
};
use herald_runtime::ServiceKind;
use herald_tests::{Suite, authorized, eventually};
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(20);

fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

fn object(fields: &[(&str, &str)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), text(v)))
            .collect(),
    }
}

fn welcome_campaign() -> Campaign {
    Campaign {
        name: "Welcome".into(),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: "signed_up".into(),
                ..Default::default()
            })),
        }),
        variants: vec![Variant {
            id: "a".into(),
            name: "A".into(),
            weight: 1,
            contents: vec![MessageContent {
                body: Some(message_content::Body::InApp(InAppContent {
                    format: InAppFormat::Modal as i32,
                    title: "Welcome, {{ user.first_name }}!".into(),
                    body: "Your {{ event.properties.plan }} plan is ready.".into(),
                    actions: vec![Action {
                        id: "tour".into(),
                        label: "Take the tour".into(),
                        kind: ActionKind::Url as i32,
                        url: "https://example.com/tour".into(),
                    }],
                    ..Default::default()
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn signup(message_id: &str, user: &str) -> TrackRequest {
    TrackRequest {
        event: Some(Event {
            message_id: message_id.into(),
            user_id: user.into(),
            name: "signed_up".into(),
            properties: Some(object(&[("plan", "pro")])),
            ..Default::default()
        }),
    }
}

struct Clients {
    ingest: IngestServiceClient<Channel>,
    trigger: TriggerServiceClient<Channel>,
    delivery: DeliveryServiceClient<Channel>,
    analytics: AnalyticsServiceClient<Channel>,
}

impl Clients {
    async fn new(suite: &Suite) -> Clients {
        Clients {
            ingest: IngestServiceClient::new(suite.channel(ServiceKind::Ingest).await),
            trigger: TriggerServiceClient::new(suite.channel(ServiceKind::Trigger).await),
            delivery: DeliveryServiceClient::new(lazy(suite, ServiceKind::Delivery)),
            analytics: AnalyticsServiceClient::new(suite.channel(ServiceKind::Analytics).await),
        }
    }
}

fn lazy(suite: &Suite, kind: ServiceKind) -> Channel {
    tonic::transport::Endpoint::from_shared(suite.url(kind))
        .unwrap()
        .connect_lazy()
}

fn key(suite: &Suite) -> String {
    suite.credentials.admin_key.expose().to_owned()
}

fn ingest_key(suite: &Suite) -> String {
    suite.credentials.ingest_key.expose().to_owned()
}

async fn create_campaign(suite: &Suite, clients: &mut Clients) -> String {
    let campaign = clients
        .trigger
        .create_campaign(authorized(
            CreateCampaignRequest {
                campaign: Some(welcome_campaign()),
            },
            &key(suite),
        ))
        .await
        .expect("create campaign")
        .into_inner()
        .campaign
        .expect("campaign in response");
    assert_eq!(campaign.status, CampaignStatus::Active as i32);
    campaign.id
}

async fn identify_alice(suite: &Suite, clients: &mut Clients, user: &str) {
    let identity = Identity {
        message_id: format!("identify-{user}"),
        user_id: user.into(),
        traits: Some(object(&[("first_name", "Alice"), ("plan", "pro")])),
        ..Default::default()
    };
    clients
        .ingest
        .identify(authorized(
            IdentifyRequest {
                identity: Some(identity),
            },
            &ingest_key(suite),
        ))
        .await
        .expect("identify");
}

/// Opens `user`'s stream and forwards the messages it carries into a channel.
async fn subscribe(suite: &Suite, user: &str) -> tokio::sync::mpsc::UnboundedReceiver<Message> {
    let mut client = DeliveryServiceClient::new(lazy(suite, ServiceKind::Delivery));
    let token = suite.credentials.user_token(user);
    let mut stream = client
        .subscribe(authorized(
            SubscribeRequest {
                session_id: "test".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("subscribe")
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(item)) = stream.next().await {
            if let Some(subscribe_response::Kind::Message(message)) = item.kind
                && tx.send(message).is_err()
            {
                return;
            }
        }
    });
    rx
}

async fn next_message(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message within the wait")
        .expect("stream open")
}

async fn stats(suite: &Suite, clients: &mut Clients, campaign: &str) -> VariantStats {
    clients
        .analytics
        .get_campaign_stats(authorized(
            GetCampaignStatsRequest {
                campaign_id: campaign.into(),
                ..Default::default()
            },
            &key(suite),
        ))
        .await
        .expect("stats")
        .into_inner()
        .stats
        .and_then(|s| s.total)
        .unwrap_or_default()
}

fn title(message: &Message) -> &str {
    match message.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(message_content::Body::InApp(in_app)) => &in_app.title,
        _ => "",
    }
}

#[tokio::test]
async fn an_event_becomes_a_message_on_the_stream_and_the_click_is_counted() {
    let suite = Suite::start().await;
    let mut clients = Clients::new(&suite).await;
    let campaign = create_campaign(&suite, &mut clients).await;
    let mut stream = subscribe(&suite, "alice").await;
    identify_alice(&suite, &mut clients, "alice").await;

    let first = clients
        .ingest
        .track(authorized(signup("signup-1", "alice"), &ingest_key(&suite)))
        .await
        .unwrap();
    assert!(!first.into_inner().duplicate);
    let message = next_message(&mut stream).await;
    assert_eq!(
        title(&message),
        "Welcome, Alice!",
        "the template saw the traits"
    );
    assert_eq!(message.campaign_id, campaign);

    // The same message_id again: acknowledged as a duplicate, no second message.
    let again = clients
        .ingest
        .track(authorized(signup("signup-1", "alice"), &ingest_key(&suite)))
        .await
        .unwrap();
    assert!(again.into_inner().duplicate);

    let token = suite.credentials.user_token("alice");
    for state in [MessageState::Displayed, MessageState::Clicked] {
        clients
            .delivery
            .update_message_state(authorized(
                UpdateMessageStateRequest {
                    message_id: message.id.clone(),
                    state: state as i32,
                    action_id: if state == MessageState::Clicked {
                        "tour".into()
                    } else {
                        String::new()
                    },
                },
                &token,
            ))
            .await
            .expect("update state");
    }
    let counted = eventually(WAIT, "the click to be counted", || {
        let mut analytics = clients.analytics.clone();
        let key = key(&suite);
        let campaign = campaign.clone();
        async move {
            let total = analytics
                .get_campaign_stats(authorized(
                    GetCampaignStatsRequest {
                        campaign_id: campaign,
                        ..Default::default()
                    },
                    &key,
                ))
                .await
                .ok()?
                .into_inner()
                .stats?
                .total?;
            (total.clicks == 1).then_some(total)
        }
    })
    .await;
    assert_eq!(counted.sent, 1);
    assert_eq!(counted.impressions, 1);
    assert!((counted.click_rate - 1.0).abs() < 1e-9);

    // Still exactly one message after the duplicate had every chance to arrive.
    let inbox = clients
        .delivery
        .list_inbox(authorized(ListInboxRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        inbox.messages.len(),
        1,
        "a repeated message_id produced a second message"
    );
    assert!(
        stream.try_recv().is_err(),
        "no second message on the stream"
    );
    assert_eq!(stats(&suite, &mut clients, &campaign).await.sent, 1);
    suite.shutdown().await;
}

#[tokio::test]
async fn a_late_subscriber_gets_the_message_by_replay() {
    let suite = Suite::start().await;
    let mut clients = Clients::new(&suite).await;
    create_campaign(&suite, &mut clients).await;
    identify_alice(&suite, &mut clients, "carol").await;
    clients
        .ingest
        .track(authorized(
            signup("signup-carol", "carol"),
            &ingest_key(&suite),
        ))
        .await
        .unwrap();

    // Wait until the message is in carol's inbox, then connect.
    let token = suite.credentials.user_token("carol");
    eventually(WAIT, "the message in carol's inbox", || {
        let mut delivery = clients.delivery.clone();
        let token = token.clone();
        async move {
            let inbox = delivery
                .list_inbox(authorized(ListInboxRequest::default(), &token))
                .await
                .ok()?
                .into_inner();
            (!inbox.messages.is_empty()).then_some(())
        }
    })
    .await;
    let mut stream = subscribe(&suite, "carol").await;
    let message = next_message(&mut stream).await;
    assert_eq!(title(&message), "Welcome, Alice!");
    suite.shutdown().await;
}

#[tokio::test]
async fn a_users_token_cannot_reach_another_users_stream_or_inbox() {
    let suite = Suite::start().await;
    let mut clients = Clients::new(&suite).await;
    let alice = suite.credentials.user_token("alice");
    let subscribe = clients
        .delivery
        .subscribe(authorized(
            SubscribeRequest {
                user_id: "bob".into(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(subscribe.code(), Code::PermissionDenied);
    let inbox = clients
        .delivery
        .list_inbox(authorized(
            ListInboxRequest {
                user_id: "bob".into(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(inbox.code(), Code::PermissionDenied);
    let server_key_on_user_api = clients
        .delivery
        .list_inbox(authorized(ListInboxRequest::default(), &key(&suite)))
        .await
        .unwrap_err();
    assert_eq!(server_key_on_user_api.code(), Code::Unauthenticated);
    suite.shutdown().await;
}

#[tokio::test]
async fn a_stream_opens_with_the_workspaces_display_settings_from_trigger() {
    let suite = Suite::start().await;
    let mut client = DeliveryServiceClient::new(lazy(&suite, ServiceKind::Delivery));
    let token = suite.credentials.user_token("erin");
    let mut stream = client
        .subscribe(authorized(SubscribeRequest::default(), &token))
        .await
        .expect("subscribe")
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a first item within the wait")
        .expect("stream open")
        .expect("first item");
    // The default interval: trigger's settings were never changed.
    let expected = DisplaySettings {
        min_in_app_interval: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
    };
    assert_eq!(
        first.kind,
        Some(subscribe_response::Kind::DisplaySettings(expected))
    );
    suite.shutdown().await;
}

#[tokio::test]
async fn a_downstream_that_is_down_delays_the_message_but_loses_nothing() {
    let mut suite = Suite::start().await;
    let mut clients = Clients::new(&suite).await;
    create_campaign(&suite, &mut clients).await;
    identify_alice(&suite, &mut clients, "dave").await;

    // Trigger and delivery go away; ingest still acknowledges durably.
    suite.stop(ServiceKind::Trigger).await;
    suite.stop(ServiceKind::Delivery).await;
    clients
        .ingest
        .track(authorized(
            signup("signup-dave", "dave"),
            &ingest_key(&suite),
        ))
        .await
        .unwrap();
    // Segmentation tried to hand the event on and found trigger down.
    eventually(WAIT, "segmentation to try trigger", || async {
        (suite.proxy(ServiceKind::Trigger).refused() > 0).then_some(())
    })
    .await;

    suite.restart(ServiceKind::Delivery).await;
    let mut stream = subscribe(&suite, "dave").await;
    suite.restart(ServiceKind::Trigger).await;
    let message = next_message(&mut stream).await;
    assert_eq!(title(&message), "Welcome, Alice!");
    suite.shutdown().await;
}
