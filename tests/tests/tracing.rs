//! One trace follows an event across every hop: the caller's W3C `traceparent` is
//! extracted by ingest, stored with its outbox items, and injected on each relayed call,
//! so segmentation, trigger, delivery and analytics all record spans of the same trace.
//! (Its own test binary: it installs the process-wide tracing subscriber.)

use std::time::Duration;

use herald_proto::common::v1::{Event, InAppContent, InAppFormat, MessageContent, message_content};
use herald_proto::ingest::v1::TrackRequest;
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::{
    Campaign, CampaignStatus, CreateCampaignRequest, EventTrigger, Trigger, Variant, trigger,
};
use herald_runtime::ServiceKind;
use herald_tests::{Suite, authorized, eventually};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_callers_trace_continues_through_every_service() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();

    let suite = Suite::start().await;
    let admin = suite.credentials.admin_key.expose().to_owned();
    let campaign = Campaign {
        name: "Traced".into(),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: "traced".into(),
                ..Default::default()
            })),
        }),
        variants: vec![Variant {
            id: "a".into(),
            weight: 1,
            contents: vec![MessageContent {
                body: Some(message_content::Body::InApp(InAppContent {
                    format: InAppFormat::Banner as i32,
                    title: "hi".into(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    TriggerServiceClient::new(suite.channel(ServiceKind::Trigger).await)
        .create_campaign(authorized(
            CreateCampaignRequest {
                campaign: Some(campaign),
            },
            &admin,
        ))
        .await
        .expect("create campaign");

    let event = Event {
        message_id: "t1".into(),
        user_id: "u1".into(),
        name: "traced".into(),
        ..Default::default()
    };
    let mut request = authorized(
        TrackRequest { event: Some(event) },
        suite.credentials.ingest_key.expose(),
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    IngestServiceClient::new(suite.channel(ServiceKind::Ingest).await)
        .track(request)
        .await
        .expect("track");

    let hops = [
        "/herald.ingest.v1.IngestService/Track",
        "/herald.segmentation.v1.SegmentationInternalService/ApplyEvents",
        "/herald.analytics.v1.AnalyticsInternalService/RecordEvents",
        "/herald.trigger.v1.TriggerInternalService/HandleEvents",
        "/herald.delivery.v1.DeliveryInternalService/Deliver",
        "/herald.analytics.v1.AnalyticsInternalService/RecordInteractions",
    ];
    let seen = eventually(
        Duration::from_secs(20),
        "spans of every hop in the caller's trace",
        || {
            let exporter = exporter.clone();
            async move {
                let names: Vec<String> = exporter
                    .get_finished_spans()
                    .ok()?
                    .into_iter()
                    .filter(|s| s.span_context.trace_id().to_string() == TRACE_ID)
                    .map(|s| s.name.to_string())
                    .collect();
                hops.iter()
                    .all(|hop| names.iter().any(|n| n == hop))
                    .then_some(names)
            }
        },
    )
    .await;
    assert!(
        seen.iter().any(|n| n == "outbox.relay"),
        "the relay spans belong to the trace too: {seen:?}"
    );
    suite.shutdown().await;
}
