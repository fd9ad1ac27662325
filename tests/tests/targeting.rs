//! Targeting through the five real services on a manual clock (SQLite or PostgreSQL, as
//! `HERALD_TEST_DATABASE` says): inactivity and delay timers, segment-entry campaigns and
//! their entry policy, quiet hours across a DST change, control records, and what
//! ExplainDecision says about each.

use std::time::Duration;

use herald_proto::common::v1::{
    Channel, Event, EventContext, Identity, InAppContent, InAppFormat, MessageContent,
    message_content,
};
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::delivery::v1::{ListInboxRequest, Message};
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{IdentifyRequest, TrackRequest};
use herald_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use herald_proto::segmentation::v1::{CreateSegmentRequest, Segment};
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::{
    Campaign, CampaignStatus, CreateCampaignRequest, Decision, DecisionOutcome, DecisionReasonCode,
    DelayAfterEvent, Entry, EntryPolicy, ExplainDecisionRequest, Inactivity, QuietHours,
    SegmentEntryTrigger, TimeTrigger, Trigger, UpdateCampaignRequest, Variant, time_trigger,
    trigger,
};
use herald_runtime::{Clock, ServiceKind};
use herald_tests::{Suite, authorized, eventually};
use tonic::transport::Channel as GrpcChannel;

const WAIT: Duration = Duration::from_secs(20);
const MINUTE: Duration = Duration::from_secs(60);

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: 0,
    }
}

fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

fn modal(title: &str) -> MessageContent {
    MessageContent {
        body: Some(message_content::Body::InApp(InAppContent {
            format: InAppFormat::Modal as i32,
            title: title.into(),
            ..Default::default()
        })),
    }
}

fn campaign(name: &str, trigger: trigger::Kind) -> Campaign {
    Campaign {
        name: name.into(),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger {
            kind: Some(trigger),
        }),
        variants: vec![Variant {
            id: "a".into(),
            weight: 1,
            contents: vec![modal(&format!("{name} for {{{{ user.id }}}}"))],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn title(message: &Message) -> &str {
    match message.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(message_content::Body::InApp(in_app)) => &in_app.title,
        _ => "",
    }
}

struct World {
    suite: Suite,
    ingest: IngestServiceClient<GrpcChannel>,
    segmentation: SegmentationServiceClient<GrpcChannel>,
    trigger: TriggerServiceClient<GrpcChannel>,
    delivery: DeliveryServiceClient<GrpcChannel>,
}

impl World {
    async fn start(at: &str) -> World {
        let clock = Clock::manual(at.parse().expect("instant"));
        let suite = Suite::start_with(clock, |_, _| {}).await;
        World::with(suite).await
    }

    async fn with(suite: Suite) -> World {
        World {
            ingest: IngestServiceClient::new(suite.channel(ServiceKind::Ingest).await),
            segmentation: SegmentationServiceClient::new(
                suite.channel(ServiceKind::Segmentation).await,
            ),
            trigger: TriggerServiceClient::new(suite.channel(ServiceKind::Trigger).await),
            delivery: DeliveryServiceClient::new(
                tonic::transport::Endpoint::from_shared(suite.url(ServiceKind::Delivery))
                    .unwrap()
                    .connect_lazy(),
            ),
            suite,
        }
    }

    fn admin<T>(&self, message: T) -> tonic::Request<T> {
        authorized(message, self.suite.credentials.admin_key.expose())
    }

    fn advance(&self, by: Duration) {
        self.suite.clock.advance(by);
    }

    async fn create(&mut self, campaign: Campaign) -> String {
        let request = self.admin(CreateCampaignRequest {
            campaign: Some(campaign),
        });
        self.trigger
            .create_campaign(request)
            .await
            .expect("create campaign")
            .into_inner()
            .campaign
            .expect("campaign")
            .id
    }

    async fn segment(&mut self, name: &str, rule: &str) -> String {
        let request = self.admin(CreateSegmentRequest {
            segment: Some(Segment {
                name: name.into(),
                rule_text: rule.into(),
                ..Default::default()
            }),
        });
        self.segmentation
            .create_segment(request)
            .await
            .expect("create segment")
            .into_inner()
            .segment
            .expect("segment")
            .id
    }

    async fn track(
        &mut self,
        user: &str,
        message_id: &str,
        name: &str,
        context: Option<EventContext>,
    ) {
        let request = authorized(
            TrackRequest {
                event: Some(Event {
                    message_id: message_id.into(),
                    user_id: user.into(),
                    name: name.into(),
                    context,
                    ..Default::default()
                }),
            },
            self.suite.credentials.ingest_key.expose(),
        );
        self.ingest.track(request).await.expect("track");
    }

    async fn identify(&mut self, user: &str, message_id: &str, traits: &[(&str, &str)]) {
        let request = authorized(
            IdentifyRequest {
                identity: Some(Identity {
                    message_id: message_id.into(),
                    user_id: user.into(),
                    traits: Some(prost_types::Struct {
                        fields: traits
                            .iter()
                            .map(|(k, v)| (k.to_string(), text(v)))
                            .collect(),
                    }),
                    ..Default::default()
                }),
            },
            self.suite.credentials.ingest_key.expose(),
        );
        self.ingest.identify(request).await.expect("identify");
    }

    async fn explain(&self, campaign: &str, user: &str) -> Vec<Decision> {
        let request = self.admin(ExplainDecisionRequest {
            campaign_id: campaign.into(),
            user_id: user.into(),
            page_size: 100,
            ..Default::default()
        });
        self.trigger
            .clone()
            .explain_decision(request)
            .await
            .expect("explain")
            .into_inner()
            .decisions
    }

    /// Waits until `user` has `count` decisions of `campaign` with `outcome`; returns the
    /// newest of them.
    async fn decided(
        &self,
        campaign: &str,
        user: &str,
        outcome: DecisionOutcome,
        count: usize,
    ) -> Decision {
        eventually(
            WAIT,
            &format!("{count} {outcome:?} decision(s) for {user}"),
            || async {
                let decisions = self.explain(campaign, user).await;
                let matching: Vec<Decision> = decisions
                    .into_iter()
                    .filter(|d| d.outcome == outcome as i32)
                    .collect();
                (matching.len() >= count).then(|| matching[0].clone())
            },
        )
        .await
    }

    async fn inbox(&self, user: &str) -> Vec<Message> {
        // Signed on the suite's (manual) clock, which delivery checks it against.
        let token = self.suite.credentials.user_token_at(
            user,
            &self.suite.clock,
            Duration::from_secs(3600),
        );
        self.delivery
            .clone()
            .list_inbox(authorized(ListInboxRequest::default(), &token))
            .await
            .expect("inbox")
            .into_inner()
            .messages
    }

    async fn inbox_holds(&self, user: &str, count: usize) -> Vec<Message> {
        eventually(WAIT, &format!("{count} message(s) for {user}"), || async {
            let messages = self.inbox(user).await;
            (messages.len() >= count).then_some(messages)
        })
        .await
    }
}

fn reason_codes(decision: &Decision) -> Vec<(DecisionReasonCode, bool)> {
    decision
        .reasons
        .iter()
        .map(|r| {
            (
                DecisionReasonCode::try_from(r.code).unwrap_or_default(),
                r.passed,
            )
        })
        .collect()
}

#[tokio::test]
async fn inactivity_fires_without_the_expected_event_and_not_with_it() {
    let mut world = World::start("2026-06-01T12:00:00Z").await;
    let id = world
        .create(campaign(
            "Connect an integration",
            trigger::Kind::Time(TimeTrigger {
                kind: Some(time_trigger::Kind::Inactivity(Inactivity {
                    event_name: "trial_started".into(),
                    expected_event_name: "integration_connected".into(),
                    within: Some(duration(30 * MINUTE)),
                })),
            }),
        ))
        .await;
    world.track("ann", "ann-1", "trial_started", None).await;
    world.track("bob", "bob-1", "trial_started", None).await;
    world
        .decided(&id, "ann", DecisionOutcome::Scheduled, 1)
        .await;
    world
        .decided(&id, "bob", DecisionOutcome::Scheduled, 1)
        .await;

    world.advance(29 * MINUTE);
    world
        .track("bob", "bob-2", "integration_connected", None)
        .await;
    world
        .decided(&id, "bob", DecisionOutcome::Cancelled, 1)
        .await;
    world.advance(2 * MINUTE);

    let sent = world.decided(&id, "ann", DecisionOutcome::Sent, 1).await;
    assert_eq!(sent.deliveries.len(), 1);
    let inbox = world.inbox_holds("ann", 1).await;
    assert_eq!(title(&inbox[0]), "Connect an integration for ann");
    // Bob connected at minute 29: his timer is gone, nothing reached him.
    assert!(world.inbox("bob").await.is_empty());
    let bob = world.explain(&id, "bob").await;
    assert!(
        bob.iter()
            .all(|d| d.outcome != DecisionOutcome::Sent as i32),
        "{bob:?}"
    );
    world.suite.shutdown().await;
}

#[tokio::test]
async fn a_pending_delay_survives_a_restart_of_trigger() {
    let mut world = World::start("2026-06-01T12:00:00Z").await;
    let id = world
        .create(campaign(
            "Tips",
            trigger::Kind::Time(TimeTrigger {
                kind: Some(time_trigger::Kind::DelayAfterEvent(DelayAfterEvent {
                    event_name: "signed_up".into(),
                    delay: Some(duration(10 * MINUTE)),
                    ..Default::default()
                })),
            }),
        ))
        .await;
    world.track("cat", "cat-1", "signed_up", None).await;
    let scheduled = world
        .decided(&id, "cat", DecisionOutcome::Scheduled, 1)
        .await;
    assert!(scheduled.due_time.is_some());

    world.suite.stop(ServiceKind::Trigger).await;
    world.suite.restart(ServiceKind::Trigger).await;
    world.advance(10 * MINUTE);
    world.decided(&id, "cat", DecisionOutcome::Sent, 1).await;
    world.inbox_holds("cat", 1).await;
    world.suite.shutdown().await;
}

async fn set_plan(world: &mut World, user: &str, step: u32, plan: &str) {
    world
        .identify(user, &format!("{user}-plan-{step}"), &[("plan", plan)])
        .await;
}

#[tokio::test]
async fn a_segment_entry_fires_once_per_entry_and_again_only_if_re_entry_is_allowed() {
    let mut world = World::start("2026-06-01T12:00:00Z").await;
    let pro = world.segment("Pro", "plan == \"pro\"").await;
    let entry = |segment: &str| {
        trigger::Kind::SegmentEntry(SegmentEntryTrigger {
            segment_id: segment.into(),
            ..Default::default()
        })
    };
    let mut once = campaign("Once", entry(&pro));
    once.entry = Some(Entry {
        policy: EntryPolicy::Once as i32,
        cooldown: None,
    });
    let once = world.create(once).await;
    let mut every = campaign("Every", entry(&pro));
    every.variants[0].contents[0] = MessageContent {
        body: Some(message_content::Body::InApp(InAppContent {
            format: InAppFormat::Banner as i32,
            title: "Every".into(),
            ..Default::default()
        })),
    };
    let every = world.create(every).await;

    set_plan(&mut world, "dee", 1, "pro").await;
    world.decided(&once, "dee", DecisionOutcome::Sent, 1).await;
    world.decided(&every, "dee", DecisionOutcome::Sent, 1).await;
    world.inbox_holds("dee", 2).await;

    // Staying in the segment fires nothing.
    world.advance(MINUTE);
    set_plan(&mut world, "dee", 2, "pro").await;
    // Leave, come back: only the campaign that allows re-entry fires again.
    world.advance(MINUTE);
    set_plan(&mut world, "dee", 3, "free").await;
    world.advance(MINUTE);
    set_plan(&mut world, "dee", 4, "pro").await;
    world.decided(&every, "dee", DecisionOutcome::Sent, 2).await;
    let refused = world
        .decided(&once, "dee", DecisionOutcome::Suppressed, 1)
        .await;
    assert!(
        reason_codes(&refused).contains(&(DecisionReasonCode::Entry, false)),
        "{refused:?}"
    );
    assert_eq!(world.inbox_holds("dee", 3).await.len(), 3);
    let once_decisions = world.explain(&once, "dee").await;
    assert_eq!(
        once_decisions
            .iter()
            .filter(|d| d.outcome == DecisionOutcome::Sent as i32)
            .count(),
        1
    );
    world.suite.shutdown().await;
}

#[tokio::test]
async fn quiet_hours_hold_a_message_until_the_local_morning_across_the_dst_change() {
    // 2026-03-08 is the spring-forward day in New York. 23:30 EST on the 7th is 04:30 UTC
    // on the 8th; the next 08:00 local is EDT, 12:00 UTC (not 13:00).
    let mut world = World::start("2026-03-08T04:30:00Z").await;
    let quiet = QuietHours {
        start_local_time: "22:00".into(),
        end_local_time: "08:00".into(),
        default_time_zone: "America/New_York".into(),
        channels: vec![Channel::InApp as i32],
        ..Default::default()
    };
    let mut held = campaign(
        "Held",
        trigger::Kind::Event(herald_proto::trigger::v1::EventTrigger {
            event_name: "report_ready".into(),
            ..Default::default()
        }),
    );
    held.quiet_hours = Some(quiet.clone());
    let held = world.create(held).await;
    let mut critical = campaign(
        "Critical",
        trigger::Kind::Event(herald_proto::trigger::v1::EventTrigger {
            event_name: "password_reset".into(),
            ..Default::default()
        }),
    );
    critical.quiet_hours = Some(quiet);
    critical.critical = true;
    critical.exempt_from_cap_rules = true;
    let critical = world.create(critical).await;

    world.track("eve", "eve-1", "report_ready", None).await;
    let delayed = world
        .decided(&held, "eve", DecisionOutcome::Delayed, 1)
        .await;
    let due = delayed.due_time.expect("due time");
    // 2026-03-08T12:00:00Z
    assert_eq!(due.seconds, 1_772_971_200);
    world.track("eve", "eve-2", "password_reset", None).await;
    world
        .decided(&critical, "eve", DecisionOutcome::Sent, 1)
        .await;
    assert_eq!(world.inbox_holds("eve", 1).await.len(), 1);

    world.advance(Duration::from_secs(7 * 3600 + 29 * 60));
    assert_eq!(
        world.inbox("eve").await.len(),
        1,
        "still quiet at 07:59 EDT"
    );
    world.advance(MINUTE);
    world.decided(&held, "eve", DecisionOutcome::Sent, 1).await;
    let inbox = world.inbox_holds("eve", 2).await;
    assert!(inbox.iter().any(|m| title(m) == "Held for eve"));
    world.suite.shutdown().await;
}

#[tokio::test]
async fn existing_members_are_enrolled_when_the_campaign_asks_for_them_even_after_activation() {
    let mut world = World::start("2026-06-01T12:00:00Z").await;
    let pro = world.segment("Pro", "plan == \"pro\"").await;
    set_plan(&mut world, "fay", 1, "pro").await;
    set_plan(&mut world, "gus", 1, "pro").await;
    set_plan(&mut world, "hal", 1, "free").await;
    // Wait until both are members before the campaigns exist.
    eventually(WAIT, "fay and gus in the segment", || async {
        let mut segmentation = world.segmentation.clone();
        let request = world.admin(herald_proto::segmentation::v1::ListSegmentMembersRequest {
            segment_id: pro.clone(),
            ..Default::default()
        });
        let members = segmentation
            .list_segment_members(request)
            .await
            .ok()?
            .into_inner()
            .members;
        (members.len() == 2).then_some(())
    })
    .await;
    world.advance(MINUTE);
    let entry = |existing: bool| {
        trigger::Kind::SegmentEntry(SegmentEntryTrigger {
            segment_id: pro.clone(),
            include_existing_members: existing,
        })
    };
    let enrolling = world.create(campaign("Enrolling", entry(true))).await;
    let mut plain = campaign("Plain", entry(false));
    plain.variants[0].contents[0] = MessageContent {
        body: Some(message_content::Body::InApp(InAppContent {
            format: InAppFormat::Banner as i32,
            title: "Plain".into(),
            ..Default::default()
        })),
    };
    let plain = world.create(plain).await;

    for user in ["fay", "gus"] {
        let d = world
            .decided(&enrolling, user, DecisionOutcome::Sent, 1)
            .await;
        assert_eq!(
            d.cause,
            herald_proto::trigger::v1::DecisionCause::Enrollment as i32
        );
        let inbox = world.inbox_holds(user, 1).await;
        assert_eq!(title(&inbox[0]), format!("Enrolling for {user}"));
    }
    assert!(world.explain(&enrolling, "hal").await.is_empty());
    assert!(world.explain(&plain, "fay").await.is_empty());
    // A new member enters: both campaigns fire for her.
    world.advance(MINUTE);
    set_plan(&mut world, "hal", 2, "pro").await;
    world.decided(&plain, "hal", DecisionOutcome::Sent, 1).await;
    world
        .decided(&enrolling, "hal", DecisionOutcome::Sent, 1)
        .await;

    // The ACTIVE plain campaign now asks for its existing members: the update re-arms
    // it and enrols fay and gus (hal, a member too, gets a second message: every time).
    world.advance(MINUTE);
    let request = world.admin(UpdateCampaignRequest {
        campaign: Some(Campaign {
            id: plain.clone(),
            trigger: Some(Trigger {
                kind: Some(entry(true)),
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["trigger".into()],
        }),
    });
    let updated = world
        .trigger
        .update_campaign(request)
        .await
        .expect("update")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(updated.activate_time, updated.update_time, "re-armed");
    for user in ["fay", "gus"] {
        let d = world.decided(&plain, user, DecisionOutcome::Sent, 1).await;
        assert_eq!(
            d.cause,
            herald_proto::trigger::v1::DecisionCause::Enrollment as i32
        );
    }
    world.decided(&plain, "hal", DecisionOutcome::Sent, 2).await;
    world.suite.shutdown().await;
}

#[tokio::test]
async fn a_local_schedule_fires_at_each_members_own_local_time() {
    // 05:00 UTC: 07:00 in Paris (CEST), 01:00 in New York (EDT).
    let mut world = World::start("2026-06-01T05:00:00Z").await;
    let pro = world.segment("Pro", "plan == \"pro\"").await;
    world
        .identify(
            "ann",
            "ann-1",
            &[("plan", "pro"), ("time_zone", "Europe/Paris")],
        )
        .await;
    eventually(WAIT, "ann in the segment", || async {
        let mut segmentation = world.segmentation.clone();
        let request = world.admin(herald_proto::segmentation::v1::ListSegmentMembersRequest {
            segment_id: pro.clone(),
            ..Default::default()
        });
        let members = segmentation.list_segment_members(request).await.ok()?;
        (!members.into_inner().members.is_empty()).then_some(())
    })
    .await;
    let mut daily = campaign(
        "Daily digest",
        trigger::Kind::Time(TimeTrigger {
            kind: Some(time_trigger::Kind::Schedule(
                herald_proto::trigger::v1::LocalSchedule {
                    when: Some(herald_proto::trigger::v1::local_schedule::When::Cron(
                        "0 9 * * *".into(),
                    )),
                    ..Default::default()
                },
            )),
        }),
    );
    daily.audience = Some(herald_proto::trigger::v1::Audience {
        include_segment_ids: vec![pro.clone()],
        ..Default::default()
    });
    let daily = world.create(daily).await;
    // Ann, a member already, is enrolled: 09:00 Paris is 07:00 UTC.
    let scheduled = world
        .decided(&daily, "ann", DecisionOutcome::Scheduled, 1)
        .await;
    assert_eq!(scheduled.due_time.map(|t| t.seconds), Some(1_780_297_200));
    // Bob joins later: 09:00 New York is 13:00 UTC.
    world
        .identify(
            "bob",
            "bob-1",
            &[("plan", "pro"), ("time_zone", "America/New_York")],
        )
        .await;
    let scheduled = world
        .decided(&daily, "bob", DecisionOutcome::Scheduled, 1)
        .await;
    assert_eq!(scheduled.due_time.map(|t| t.seconds), Some(1_780_318_800));

    world.advance(Duration::from_secs(2 * 3600 - 60));
    assert!(
        world.inbox("ann").await.is_empty(),
        "not yet 09:00 in Paris"
    );
    world.advance(MINUTE);
    world.decided(&daily, "ann", DecisionOutcome::Sent, 1).await;
    assert!(world.inbox("bob").await.is_empty(), "03:00 in New York");
    world.advance(Duration::from_secs(6 * 3600));
    world.decided(&daily, "bob", DecisionOutcome::Sent, 1).await;
    // And again the next morning in Paris.
    world.advance(Duration::from_secs(18 * 3600));
    world.decided(&daily, "ann", DecisionOutcome::Sent, 2).await;
    world.suite.shutdown().await;
}

#[tokio::test]
async fn quiet_hours_hold_a_push_until_the_local_morning_and_a_critical_push_goes_at_once() {
    use herald_proto::common::v1::PushContent;
    use herald_proto::trigger::v1::EventTrigger;
    use herald_testkit::{HttpRecorder, Recorded};

    // Delivery sends push to a real local HTTP server standing in for the provider.
    let provider = HttpRecorder::start().await;
    let url = provider.url("/push");
    // 23:30 EST on 2026-03-07, the evening before the spring-forward: the next 08:00 in
    // New York is EDT, 12:00 UTC.
    let clock = Clock::manual("2026-03-08T04:30:00Z".parse().expect("instant"));
    let suite = Suite::start_with(clock, |kind, config| {
        if kind == ServiceKind::Delivery {
            config.push_provider_url = Some(url.clone());
        }
    })
    .await;
    let mut world = World::with(suite).await;
    let push = |title: &str| MessageContent {
        body: Some(message_content::Body::Push(PushContent {
            title: format!("{title} for {{{{ user.id }}}}"),
            body: "Sent on {{ event.name }}".into(),
            ..Default::default()
        })),
    };
    let on = |event: &str| {
        trigger::Kind::Event(EventTrigger {
            event_name: event.into(),
            ..Default::default()
        })
    };
    // No channels named: the quiet hours hold every channel but in-app, push among them.
    let quiet = QuietHours {
        start_local_time: "22:00".into(),
        end_local_time: "08:00".into(),
        default_time_zone: "America/New_York".into(),
        ..Default::default()
    };
    let mut held = campaign("Report", on("report_ready"));
    held.variants[0].contents = vec![push("Report")];
    held.quiet_hours = Some(quiet.clone());
    let held = world.create(held).await;
    let mut critical = campaign("Reset", on("password_reset"));
    critical.variants[0].contents = vec![push("Reset")];
    critical.quiet_hours = Some(quiet);
    critical.critical = true;
    critical.exempt_from_cap_rules = true;
    let critical = world.create(critical).await;
    let of = |campaign: &str| {
        let campaign = campaign.to_owned();
        move |r: &Recorded| r.json()["campaign_id"] == campaign.as_str()
    };

    world
        .identify("fay", "fay-1", &[("push_token", "fay-device")])
        .await;
    world.track("fay", "fay-2", "report_ready", None).await;
    let delayed = world
        .decided(&held, "fay", DecisionOutcome::Delayed, 1)
        .await;
    assert_eq!(delayed.due_time.expect("due time").seconds, 1_772_971_200);

    // A critical campaign's push is not held: it reaches the provider at 23:30.
    world.track("fay", "fay-3", "password_reset", None).await;
    world
        .decided(&critical, "fay", DecisionOutcome::Sent, 1)
        .await;
    let reset = provider.received(WAIT, 1, of(&critical)).await;
    let body = reset[0].json();
    assert_eq!(body["token"], "fay-device");
    assert_eq!(body["notification"]["title"], "Reset for fay");
    assert_eq!(body["notification"]["body"], "Sent on password_reset");
    assert_eq!(
        reset[0].header("idempotency-key"),
        body["message_id"].as_str()
    );

    // 07:59 EDT: still quiet. Another critical push goes through the whole pipeline and
    // arrives; the held one has not.
    world.advance(Duration::from_secs(7 * 3600 + 29 * 60));
    world.track("fay", "fay-4", "password_reset", None).await;
    provider.received(WAIT, 2, of(&critical)).await;
    assert!(
        !provider.requests().iter().any(of(&held)),
        "nothing of the held campaign before 08:00 local"
    );
    assert!(
        world
            .explain(&held, "fay")
            .await
            .iter()
            .all(|d| d.outcome != DecisionOutcome::Sent as i32)
    );

    // 08:00 EDT: exactly one POST for the held campaign.
    world.advance(MINUTE);
    world.decided(&held, "fay", DecisionOutcome::Sent, 1).await;
    let report = provider.received(WAIT, 1, of(&held)).await;
    assert_eq!(report[0].json()["notification"]["title"], "Report for fay");
    assert_eq!(report[0].json()["token"], "fay-device");
    // One more critical push after it, so a second POST of the held one would be seen.
    world.track("fay", "fay-5", "password_reset", None).await;
    provider.received(WAIT, 3, of(&critical)).await;
    assert_eq!(
        provider.requests().iter().filter(|r| of(&held)(r)).count(),
        1
    );
    world.suite.shutdown().await;
}
