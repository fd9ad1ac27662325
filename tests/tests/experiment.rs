//! An experiment read end to end through the five services (on SQLite or PostgreSQL,
//! `HERALD_TEST_DATABASE`), on a manual clock: a campaign with two variants and a 20 %
//! control holdout, users signing up through `TrackBatch`, a goal event for a known
//! subset of them inside and outside the attribution window. What analytics reports is
//! checked against what the campaign's assignment rule and the statistics crate say
//! independently.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_campaigns::assign::{Assignment, assign};
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use herald_proto::analytics::v1::{
    BucketSize, CampaignStats, GetCampaignStatsRequest, GetTimeSeriesRequest, Metric,
    RecordEventsRequest, VariantStats,
};
use herald_proto::common::v1::{Event, InAppContent, InAppFormat, MessageContent, message_content};
use herald_proto::ingest::v1::TrackBatchRequest;
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use herald_proto::segmentation::v1::{CreateSegmentRequest, ListSegmentMembersRequest, Segment};
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::{
    Campaign, CampaignStatus, ConversionGoal, CreateCampaignRequest, EventTrigger, Trigger,
    Variant, trigger,
};
use herald_runtime::{Clock, ServiceKind};
use herald_stats::{Sample, Settings, compare};
use herald_tests::{Suite, authorized, eventually};

const USERS: usize = 2_000;
const WAIT: Duration = Duration::from_secs(120);
const HOUR: Duration = Duration::from_secs(3_600);
/// When the users sign up.
const START: &str = "2026-06-01T09:00:00Z";

fn variant(id: &str) -> Variant {
    Variant {
        id: id.into(),
        name: id.to_uppercase(),
        weight: 40,
        contents: vec![MessageContent {
            body: Some(message_content::Body::InApp(InAppContent {
                format: InAppFormat::Banner as i32,
                title: format!("Offer {id}"),
                ..Default::default()
            })),
        }],
        ..Default::default()
    }
}

/// Two variants of weight 40 and a control holdout of 20; the goal is `purchased`
/// within a day.
fn experiment() -> Campaign {
    Campaign {
        name: "Upgrade offer".into(),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: "signed_up".into(),
                ..Default::default()
            })),
        }),
        variants: vec![variant("a"), variant("b")],
        control_weight: 20,
        conversion_goal: Some(ConversionGoal {
            event_name: "purchased".into(),
            attribution_window: Some(prost_types::Duration {
                seconds: 86_400,
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

fn user(i: usize) -> String {
    format!("user-{i:05}")
}

fn event(id: String, user: String, name: &str) -> Event {
    Event {
        message_id: id,
        user_id: user,
        name: name.into(),
        ..Default::default()
    }
}

/// Which users buy, and when, relative to their sign-up at [`START`].
/// - every third buys an hour later: converts;
/// - every fifth (not third) buys two days later: outside the window;
/// - every seventh buys an hour before signing up (and, if not a third, never after).
fn buys_inside(i: usize) -> bool {
    i.is_multiple_of(3)
}

struct World {
    suite: Suite,
    ingest: IngestServiceClient<tonic::transport::Channel>,
    analytics: AnalyticsServiceClient<tonic::transport::Channel>,
}

impl World {
    fn admin<T>(&self, message: T) -> tonic::Request<T> {
        authorized(message, self.suite.credentials.admin_key.expose())
    }

    async fn track(&mut self, events: Vec<Event>) {
        for chunk in events.chunks(1_000) {
            let request = authorized(
                TrackBatchRequest {
                    events: chunk.to_vec(),
                },
                self.suite.credentials.ingest_key.expose(),
            );
            self.ingest.track_batch(request).await.expect("track batch");
        }
    }

    async fn stats(&mut self, campaign: &str) -> CampaignStats {
        let request = self.admin(GetCampaignStatsRequest {
            campaign_id: campaign.into(),
            ..Default::default()
        });
        self.analytics
            .get_campaign_stats(request)
            .await
            .expect("stats")
            .into_inner()
            .stats
            .expect("stats")
    }

    /// Waits until the stats satisfy `done`, and returns them.
    async fn stats_when(
        &self,
        campaign: &str,
        what: &str,
        done: impl Fn(&CampaignStats) -> bool,
    ) -> CampaignStats {
        eventually(WAIT, what, || {
            let mut analytics = self.analytics.clone();
            let request = self.admin(GetCampaignStatsRequest {
                campaign_id: campaign.into(),
                ..Default::default()
            });
            let done = &done;
            async move {
                let stats = analytics
                    .get_campaign_stats(request)
                    .await
                    .ok()?
                    .into_inner()
                    .stats?;
                done(&stats).then_some(stats)
            }
        })
        .await
    }

    async fn series_sum(&mut self, campaign: &str, metric: Metric, size: BucketSize) -> u64 {
        let start: herald_core::Timestamp = START.parse().unwrap();
        let request = self.admin(GetTimeSeriesRequest {
            campaign_id: campaign.into(),
            metric: metric as i32,
            bucket_size: size as i32,
            start_time: Some(herald_core::time::proto(start - HOUR * 2)),
            end_time: Some(herald_core::time::proto(start + HOUR * 72)),
            time_zone: "America/New_York".into(),
            ..Default::default()
        });
        self.analytics
            .get_time_series(request)
            .await
            .expect("series")
            .into_inner()
            .points
            .iter()
            .map(|p| p.value)
            .sum()
    }
}

fn arm<'a>(stats: &'a CampaignStats, id: &str) -> &'a VariantStats {
    stats
        .variants
        .iter()
        .find(|v| v.variant_id == id && v.control == id.is_empty())
        .unwrap_or_else(|| panic!("arm {id:?} in {stats:?}"))
}

#[tokio::test]
async fn an_experiment_reports_what_was_sent_held_out_and_converted() {
    let clock = Clock::manual(START.parse().expect("instant"));
    let suite = Suite::start_with(clock, |_, _| {}).await;
    let mut world = World {
        ingest: IngestServiceClient::new(suite.channel(ServiceKind::Ingest).await),
        analytics: AnalyticsServiceClient::new(suite.channel(ServiceKind::Analytics).await),
        suite,
    };
    let mut trigger = TriggerServiceClient::new(world.suite.channel(ServiceKind::Trigger).await);
    let campaign = trigger
        .create_campaign(world.admin(CreateCampaignRequest {
            campaign: Some(experiment()),
        }))
        .await
        .expect("create")
        .into_inner()
        .campaign
        .expect("campaign")
        .id;

    // Users who converted on the campaign's goal, as segmentation hears of it.
    let mut segmentation =
        SegmentationServiceClient::new(world.suite.channel(ServiceKind::Segmentation).await);
    let converted_segment = segmentation
        .create_segment(world.admin(CreateSegmentRequest {
            segment: Some(Segment {
                name: "Converted on the offer".into(),
                rule_text: format!("converted({campaign:?})"),
                ..Default::default()
            }),
        }))
        .await
        .expect("create segment")
        .into_inner()
        .segment
        .expect("segment")
        .id;

    // What the assignment rule says each user gets, independently of the services.
    let arms: Vec<&str> = (0..USERS)
        .map(
            |i| match assign(&campaign, &user(i), &[40, 40], 20).expect("weights") {
                Assignment::Variant(0) => "a",
                Assignment::Variant(_) => "b",
                Assignment::Control => "",
            },
        )
        .collect();
    let mut expected: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (i, arm) in arms.iter().enumerate() {
        let (exposed, converted) = expected.entry(arm).or_default();
        *exposed += 1;
        *converted += u64::from(buys_inside(i));
    }
    assert!(expected[""].0 > 300, "about a fifth held out: {expected:?}");

    // A purchase before signing up never converts.
    let early: Vec<Event> = (0..USERS)
        .filter(|i| i.is_multiple_of(7))
        .map(|i| event(format!("early-{i}"), user(i), "purchased"))
        .collect();
    world.track(early).await;
    world.suite.clock.advance(HOUR);
    let signups: Vec<Event> = (0..USERS)
        .map(|i| event(format!("signup-{i}"), user(i), "signed_up"))
        .collect();
    world.track(signups).await;
    let total_users = USERS as u64;
    world
        .stats_when(&campaign, "every user exposed", |s| {
            s.variants.iter().map(|v| v.exposed).sum::<u64>() == total_users
        })
        .await;

    world.suite.clock.advance(HOUR);
    let inside: Vec<Event> = (0..USERS)
        .filter(|i| buys_inside(*i))
        .map(|i| event(format!("buy-{i}"), user(i), "purchased"))
        .collect();
    let converting = inside.len() as u64;
    world.track(inside.clone()).await;
    world
        .stats_when(&campaign, "the purchases to convert", |s| {
            s.variants.iter().map(|v| v.conversions).sum::<u64>() == converting
        })
        .await;
    world.suite.clock.advance(HOUR * 47);
    let outside: Vec<Event> = (0..USERS)
        .filter(|i| i.is_multiple_of(5) || buys_inside(*i))
        .map(|i| event(format!("late-{i}"), user(i), "purchased"))
        .collect();
    world.track(outside.clone()).await;

    // Every event reached analytics once the late ones are recorded; sent straight to
    // analytics again they are duplicates that convert nothing.
    let mut internal =
        AnalyticsInternalServiceClient::new(world.suite.channel(ServiceKind::Analytics).await);
    let key = world.suite.credentials.internal_key.expose().to_owned();
    let replay = |events: Vec<Event>| {
        authorized(
            RecordEventsRequest {
                workspace_id: herald_testkit::WORKSPACE.into(),
                events,
            },
            &key,
        )
    };
    let replayed = eventually(WAIT, "the late purchases to reach analytics", || {
        let mut internal = internal.clone();
        let request = replay(outside.clone());
        let total = outside.len() as u32;
        async move {
            let r = internal.record_events(request).await.ok()?.into_inner();
            (r.duplicates == total).then_some(r)
        }
    })
    .await;
    assert_eq!(replayed.conversions, 0);
    let again = internal
        .record_events(replay(inside))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!((again.recorded, again.conversions), (0, 0));

    let stats = world.stats(&campaign).await;
    let goal = stats.goal.as_ref().expect("goal version");
    assert_eq!((goal.version, goal.event_name.as_str()), (1, "purchased"));
    let control = arm(&stats, "");
    assert_eq!((control.sent, control.exposed), (0, expected[""].0));
    assert_eq!(
        control.exposures, expected[""].0,
        "one held-out decision each"
    );
    for id in ["a", "b"] {
        let v = arm(&stats, id);
        let (exposed, converted) = expected[id];
        assert_eq!(
            (v.sent, v.exposures, v.exposed, v.assigned),
            (exposed, exposed, exposed, exposed),
            "arm {id}: every user of the arm was sent one message, exposed once"
        );
        assert_eq!(
            v.conversions, converted,
            "arm {id}: conversions inside the window"
        );
        let theirs = compare(
            &Sample::proportion(expected[""].0, expected[""].1),
            &Sample::proportion(exposed, converted),
            &Settings::default(),
        );
        let ours = v.vs_control.as_ref().expect("compared with control");
        let relative = ours.relative.as_ref().unwrap();
        let theirs = theirs.relative.expect("enough data");
        assert_eq!(relative.estimate, theirs.fixed.moments.estimate);
        let sequential = relative.sequential.as_ref().unwrap();
        assert_eq!(
            (sequential.lower, sequential.upper, sequential.p_value),
            (
                theirs.sequential.interval.lower,
                theirs.sequential.interval.upper,
                theirs.sequential.p_value
            )
        );
        assert_eq!(
            relative.chance_to_beat_control,
            theirs.bayesian.chance_to_win
        );
    }
    assert_eq!(control.conversions, expected[""].1);
    let srm = stats.sample_ratio.as_ref().expect("a sample-ratio check");
    assert!(
        srm.insufficient_data.is_empty() && !srm.mismatch,
        "the exposures follow the 40/40/20 allocation: {srm:?}"
    );
    let experiment = goal.experiment.as_ref().expect("the allocation");
    assert_eq!(
        (experiment.control_weight, experiment.sequential_tuning),
        (20, 5000)
    );
    let total = stats.total.as_ref().unwrap();
    assert_eq!(
        total.conversions + control.conversions,
        converting,
        "only purchases inside the window convert"
    );

    // The series sum to the totals, per hour and per New York day.
    let variants_exposed = expected["a"].0 + expected["b"].0;
    for size in [BucketSize::Hour, BucketSize::Day] {
        assert_eq!(
            world.series_sum(&campaign, Metric::Exposed, size).await,
            variants_exposed
        );
        assert_eq!(
            world.series_sum(&campaign, Metric::Conversions, size).await,
            total.conversions
        );
        assert_eq!(
            world.series_sum(&campaign, Metric::Sent, size).await,
            total.sent
        );
    }
    assert_eq!(
        world.stats(&campaign).await,
        stats,
        "nothing moved on reading"
    );

    // Every conversion reached segmentation as the `converted` engagement.
    let members = eventually(WAIT, "the converted users in the segment", || {
        let mut segmentation = segmentation.clone();
        let page = |token: String| {
            world.admin(ListSegmentMembersRequest {
                segment_id: converted_segment.clone(),
                page_size: 1_000,
                page_token: token,
            })
        };
        async move {
            let mut members = Vec::new();
            let mut token = String::new();
            loop {
                let response = segmentation
                    .list_segment_members(page(token))
                    .await
                    .ok()?
                    .into_inner();
                members.extend(response.members.into_iter().map(|m| m.user_id));
                if response.next_page_token.is_empty() {
                    break;
                }
                token = response.next_page_token;
            }
            (members.len() as u64 == converting).then_some(members)
        }
    })
    .await;
    let buyers: Vec<String> = (0..USERS).filter(|i| buys_inside(*i)).map(user).collect();
    assert_eq!(members, buyers);
    world.suite.shutdown().await;
}
