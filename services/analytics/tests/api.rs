//! Analytics over real gRPC, on a fresh database per test: interactions and events
//! recorded with the internal key, statistics read with an admin key.

use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use herald_proto::analytics::v1::*;
use herald_proto::common::v1::Event;
use herald_runtime::{Clock, ServiceKind};
use herald_testkit::{
    Credentials, Running, TestDatabase, WORKSPACE, assert_refused, authorized, violations,
};
use prost_types::Timestamp;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

struct App {
    running: Running,
    credentials: Credentials,
    internal: AnalyticsInternalServiceClient<Channel>,
    public: AnalyticsServiceClient<Channel>,
    _db: TestDatabase,
}

async fn spawn_app() -> App {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let config = herald_testkit::config(ServiceKind::Analytics, &db, &credentials);
    let clock = Clock::manual(NOW.parse().unwrap());
    let running = herald_testkit::spawn(config, clock, herald_analytics::serve).await;
    let internal = AnalyticsInternalServiceClient::connect(running.url())
        .await
        .expect("connect");
    let public = AnalyticsServiceClient::connect(running.url())
        .await
        .expect("connect");
    App {
        running,
        credentials,
        internal,
        public,
        _db: db,
    }
}

impl App {
    async fn record(&mut self, interactions: Vec<Interaction>) -> Result<(u32, u32), Status> {
        let request = RecordInteractionsRequest {
            workspace_id: WORKSPACE.into(),
            interactions,
        };
        let key = self.credentials.internal_key.expose().to_owned();
        let response = self
            .internal
            .record_interactions(authorized(request, &key))
            .await?
            .into_inner();
        Ok((response.recorded, response.duplicates))
    }

    async fn record_events(&mut self, events: Vec<Event>) -> Result<(u32, u32), Status> {
        let request = RecordEventsRequest {
            workspace_id: WORKSPACE.into(),
            events,
        };
        let key = self.credentials.internal_key.expose().to_owned();
        let response = self
            .internal
            .record_events(authorized(request, &key))
            .await?
            .into_inner();
        Ok((response.recorded, response.duplicates))
    }

    async fn stats_in(
        &mut self,
        campaign: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> CampaignStats {
        let request = GetCampaignStatsRequest {
            campaign_id: campaign.into(),
            start_time: start.map(at),
            end_time: end.map(at),
        };
        let key = self.credentials.admin_key.expose().to_owned();
        self.public
            .get_campaign_stats(authorized(request, &key))
            .await
            .expect("stats")
            .into_inner()
            .stats
            .unwrap()
    }

    async fn stats(&mut self, campaign: &str) -> CampaignStats {
        self.stats_in(campaign, None, None).await
    }
}

/// What the service's clock reads.
const NOW: &str = "2026-06-01T12:00:00Z";

/// A base time a day before [`NOW`], in seconds, so every test time lies in the past.
fn base() -> i64 {
    NOW.parse::<herald_core::Timestamp>().unwrap().as_second() - 86_400
}

fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

fn interaction(
    id: &str,
    kind: InteractionKind,
    variant: &str,
    user: &str,
    message: &str,
    t: i64,
) -> Interaction {
    Interaction {
        id: id.into(),
        campaign_id: "c1".into(),
        variant_id: variant.into(),
        user_id: user.into(),
        kind: kind as i32,
        message_id: message.into(),
        time: Some(at(t)),
        ..Default::default()
    }
}

/// SENT by delivery: the message, the key it was delivered under, the goal and window.
fn sent(id: &str, variant: &str, user: &str, message: &str, t: i64) -> Interaction {
    Interaction {
        delivery_idempotency_key: format!("key-{message}"),
        goal_event_name: "purchased".into(),
        attribution_window: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..interaction(id, InteractionKind::Sent, variant, user, message, t)
    }
}

fn control(id: &str, user: &str, t: i64) -> Interaction {
    Interaction {
        goal_event_name: "purchased".into(),
        attribution_window: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..interaction(id, InteractionKind::AssignedControl, "", user, "", t)
    }
}

fn event(id: &str, user: &str, name: &str, t: i64) -> Event {
    Event {
        message_id: id.into(),
        user_id: user.into(),
        name: name.into(),
        timestamp: Some(at(t)),
        ..Default::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// Variant v1: four messages sent and delivered, three displayed (m1 twice), m1 clicked
/// twice, m2 dismissed; u1 buys within the hour after the impression, u2 only after it.
/// Variant v2: one message sent. Control: five users, u10 buys after assignment.
fn campaign(t: i64) -> (Vec<Interaction>, Vec<Event>) {
    use InteractionKind::*;
    let mut interactions = Vec::new();
    let reported = |id: &str, kind, user: &str, message: &str, t| {
        interaction(id, kind, "v1", user, message, t)
    };
    for n in 1..=4 {
        let (user, message) = (format!("u{n}"), format!("m{n}"));
        interactions.push(sent(&format!("s{n}"), "v1", &user, &message, t));
        interactions.push(reported(
            &format!("d{n}"),
            Delivered,
            &user,
            &message,
            t + 1,
        ));
    }
    interactions.extend([
        reported("i1", Impression, "u1", "m1", t + 10),
        reported("i1b", Impression, "u1", "m1", t + 20),
        reported("i2", Impression, "u2", "m2", t + 10),
        reported("i3", Impression, "u3", "m3", t + 10),
        reported("c1", Click, "u1", "m1", t + 30),
        Interaction {
            action_id: "upgrade".into(),
            ..reported("c1b", Click, "u1", "m1", t + 31)
        },
        reported("x2", Dismissal, "u2", "m2", t + 30),
        sent("s5", "v2", "u5", "m5", t),
    ]);
    for n in 10..15 {
        interactions.push(control(&format!("a{n}"), &format!("u{n}"), t));
    }
    let events = vec![
        event("e1", "u1", "purchased", t + 600),
        event("e1b", "u1", "purchased", t + 900),
        event("e2", "u2", "purchased", t + 7200 + 10),
        event("e3", "u3", "signed_out", t + 600),
        event("e10", "u10", "purchased", t + 60),
        event("e11", "u11", "purchased", t - 60),
    ];
    (interactions, events)
}

#[tokio::test]
async fn stats_count_each_message_once_and_rate_as_documented() {
    let mut app = spawn_app().await;
    let t = base();
    let (interactions, events) = campaign(t);
    let count = interactions.len() as u32;
    assert_eq!(app.record(interactions.clone()).await.unwrap(), (count, 0));
    assert_eq!(app.record_events(events.clone()).await.unwrap(), (6, 0));
    // At-least-once delivery: the same ids again change nothing.
    assert_eq!(app.record(interactions).await.unwrap(), (0, count));
    assert_eq!(app.record_events(events).await.unwrap(), (0, 6));

    let stats = app.stats("c1").await;
    assert_eq!(stats.campaign_id, "c1");
    let shape: Vec<(&str, bool)> = stats
        .variants
        .iter()
        .map(|v| (v.variant_id.as_str(), v.control))
        .collect();
    assert_eq!(shape, [("v1", false), ("v2", false), ("", true)]);

    let v1 = &stats.variants[0];
    let counts = (
        v1.sent,
        v1.delivered,
        v1.impressions,
        v1.clicks,
        v1.dismissals,
        v1.conversions,
        v1.assigned,
    );
    assert_eq!(counts, (4, 4, 3, 1, 1, 1, 4));
    assert!(close(v1.click_rate, 1.0 / 3.0));
    assert!(close(v1.dismissal_rate, 1.0 / 3.0));
    assert!(close(v1.conversion_rate, 0.25));
    // Control converts 1 of 5: (0.25 - 0.2) / 0.2.
    assert!(close(v1.uplift, 0.25), "{}", v1.uplift);
    // z = 0.05 / sqrt(2/9 · 7/9 · (1/4 + 1/5)) = 0.17928, two-sided p = 0.85772.
    assert!((v1.confidence - 0.14228).abs() < 1e-4, "{}", v1.confidence);

    let v2 = &stats.variants[1];
    assert_eq!(
        (v2.sent, v2.delivered, v2.assigned, v2.conversions),
        (1, 0, 1, 0)
    );
    // Nothing delivered: the rate is 0 by the contract's rule, so the uplift formula
    // gives (0 - 0.2) / 0.2, while the z-test is not computable.
    assert_eq!(
        (v2.click_rate, v2.conversion_rate, v2.uplift, v2.confidence),
        (0.0, 0.0, -1.0, 0.0)
    );

    let control = &stats.variants[2];
    assert_eq!(control.variant_id, "");
    assert_eq!(
        (
            control.sent,
            control.impressions,
            control.assigned,
            control.conversions
        ),
        (0, 0, 5, 1)
    );
    assert!(close(control.conversion_rate, 0.2));
    assert_eq!((control.uplift, control.confidence), (0.0, 0.0));

    let total = stats.total.unwrap();
    assert_eq!((total.variant_id.as_str(), total.control), ("", false));
    let counts = (
        total.sent,
        total.delivered,
        total.impressions,
        total.clicks,
        total.dismissals,
        total.conversions,
    );
    assert_eq!(counts, (5, 4, 3, 1, 1, 1));
    assert_eq!(total.assigned, 5);
    assert!(close(total.conversion_rate, 0.25));
    assert!(close(total.uplift, 0.25));
    app.running.stop().await;
}

#[tokio::test]
async fn events_arriving_before_the_interactions_still_convert() {
    let mut app = spawn_app().await;
    let t = base();
    let (interactions, events) = campaign(t);
    app.record_events(events).await.unwrap();
    app.record(interactions).await.unwrap();
    let stats = app.stats("c1").await;
    assert_eq!(stats.variants[0].conversions, 1);
    assert_eq!(stats.variants[2].conversions, 1);
    app.running.stop().await;
}

#[tokio::test]
async fn a_time_range_counts_interactions_and_conversions_at_their_own_time() {
    let mut app = spawn_app().await;
    let t = base();
    let (interactions, events) = campaign(t);
    app.record(interactions).await.unwrap();
    app.record_events(events).await.unwrap();

    // [t + 5, t + 100): impressions, clicks and dismissals, control's conversion at
    // t + 60, but no sends, deliveries or v1's conversion (at t + 600).
    let stats = app.stats_in("c1", Some(t + 5), Some(t + 100)).await;
    let shape: Vec<(&str, bool)> = stats
        .variants
        .iter()
        .map(|v| (v.variant_id.as_str(), v.control))
        .collect();
    assert_eq!(shape, [("v1", false), ("", true)]);
    let v1 = &stats.variants[0];
    assert_eq!(
        (
            v1.sent,
            v1.delivered,
            v1.impressions,
            v1.clicks,
            v1.conversions
        ),
        (0, 0, 3, 1, 0)
    );
    assert_eq!(
        (stats.variants[1].assigned, stats.variants[1].conversions),
        (0, 1)
    );

    // [t + 500, end): only v1's conversion.
    let stats = app.stats_in("c1", Some(t + 500), None).await;
    assert_eq!(
        stats.variants.len(),
        0,
        "no variant has interactions in the range"
    );
    assert_eq!(stats.total.unwrap().conversions, 1);
    app.running.stop().await;
}

#[tokio::test]
async fn an_unknown_campaign_has_zero_counts() {
    let mut app = spawn_app().await;
    let stats = app.stats("nope").await;
    assert_eq!(stats.campaign_id, "nope");
    assert!(stats.variants.is_empty());
    assert_eq!(stats.total.unwrap(), VariantStats::default());
    app.running.stop().await;
}

#[tokio::test]
async fn campaigns_are_per_workspace() {
    let mut app = spawn_app().await;
    let t = base();
    let key = app.credentials.internal_key.expose().to_owned();
    let request = RecordInteractionsRequest {
        workspace_id: "other".into(),
        interactions: vec![sent("s1", "v1", "u1", "m1", t)],
    };
    app.internal
        .record_interactions(authorized(request, &key))
        .await
        .unwrap();
    // The same interaction id in another workspace is a different interaction.
    assert_eq!(
        app.record(vec![sent("s1", "v1", "u1", "m1", t)])
            .await
            .unwrap(),
        (1, 0)
    );
    let stats = app.stats("c1").await;
    assert_eq!(stats.total.unwrap().sent, 1);
    app.running.stop().await;
}

#[tokio::test]
async fn calls_without_the_right_key_are_refused() {
    let mut app = spawn_app().await;
    let t = base();
    let stats = GetCampaignStatsRequest {
        campaign_id: "c1".into(),
        ..Default::default()
    };
    let status = app
        .public
        .get_campaign_stats(Request::new(stats.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = app
        .public
        .get_campaign_stats(authorized(stats.clone(), "hk_not_a_key"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let ingest_key = app.credentials.ingest_key.expose().to_owned();
    let status = app
        .public
        .get_campaign_stats(authorized(stats.clone(), &ingest_key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let internal_key = app.credentials.internal_key.expose().to_owned();
    let status = app
        .public
        .get_campaign_stats(authorized(stats, &internal_key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let record = RecordInteractionsRequest {
        workspace_id: WORKSPACE.into(),
        interactions: vec![sent("s1", "v1", "u1", "m1", t)],
    };
    let status = app
        .internal
        .record_interactions(Request::new(record.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let admin_key = app.credentials.admin_key.expose().to_owned();
    let status = app
        .internal
        .record_interactions(authorized(record, &admin_key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        app.stats("c1").await.total.unwrap().sent,
        0,
        "refused calls record nothing"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn invalid_interactions_name_the_field_and_record_nothing() {
    let mut app = spawn_app().await;
    let t = base();
    let good = sent("s1", "v1", "u1", "m1", t);
    let bad_kind = Interaction {
        kind: 0,
        ..sent("s2", "v1", "u2", "m2", t)
    };
    let no_message = interaction("i3", InteractionKind::Impression, "v1", "u3", "", t);
    let status = assert_refused(
        app.record(vec![good.clone(), bad_kind, no_message]).await,
        Code::InvalidArgument,
        "interactions[1].kind",
    );
    assert_eq!(
        violations(&status),
        ["interactions[1].kind", "interactions[2].message_id"]
    );
    assert_eq!(app.stats("c1").await.total.unwrap().sent, 0);

    let far_future = Interaction {
        time: Some(at(t + 3 * 86_400)),
        ..good.clone()
    };
    assert_refused(
        app.record(vec![far_future]).await,
        Code::InvalidArgument,
        "interactions[0].time",
    );
    assert_refused(
        app.record_events(vec![event("e1", "", "purchased", t)])
            .await,
        Code::InvalidArgument,
        "events[0].user_id",
    );

    let key = app.credentials.admin_key.expose().to_owned();
    let request = GetCampaignStatsRequest {
        campaign_id: "c1".into(),
        start_time: Some(at(t)),
        end_time: Some(at(t - 1)),
    };
    let mut public = app.public.clone();
    assert_refused(
        public.get_campaign_stats(authorized(request, &key)).await,
        Code::InvalidArgument,
        "end_time",
    );
    assert_refused(
        public
            .get_campaign_stats(authorized(GetCampaignStatsRequest::default(), &key))
            .await,
        Code::InvalidArgument,
        "campaign_id",
    );

    assert_eq!(app.record(vec![good]).await.unwrap(), (1, 0));
    app.running.stop().await;
}

#[tokio::test]
async fn time_series_is_not_implemented_yet() {
    let mut app = spawn_app().await;
    let key = app.credentials.admin_key.expose().to_owned();
    let request = GetTimeSeriesRequest {
        campaign_id: "c1".into(),
        ..Default::default()
    };
    let status = app
        .public
        .get_time_series(authorized(request, &key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    app.running.stop().await;
}
