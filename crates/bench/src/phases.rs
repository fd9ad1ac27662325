//! The measurements, in the order they run: the baselines, event-to-stream latency under a
//! background load (on a quiet pipeline), unary Track, batched Track. Between Herald
//! phases the bench waits for the services to go idle (the outbox relays to have
//! forwarded everything downstream) so one phase's backlog does not slow the next, and
//! reports how long that drain took.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use herald_proto::common::v1::{Event, InAppContent, InAppFormat, MessageContent, message_content};
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::delivery::v1::{Message, SubscribeRequest, subscribe_response};
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_proto::ingest::v1::{TrackBatchRequest, TrackRequest};
use herald_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use herald_proto::segmentation::v1::{CreateSegmentRequest, Segment};
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::{
    Audience, Campaign, CampaignStatus, CreateCampaignRequest, EventTrigger, Trigger,
    TriggerSettings, UpdateTriggerSettingsRequest, Variant, trigger,
};
use herald_runtime::ServiceKind;
use tokio::time::MissedTickBehavior;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::args::Settings;
use crate::dbwork::{self, Counter, Work};
use crate::echo::{self, EchoServer};
use crate::fleet::{Backlog, Fleet};
use crate::hop::{self, Hop};
use crate::load::{self, LoadResult, ProbeResult, Probes, Window, closed_loop, paced};
use crate::machine::{CpuMeter, CpuUse};
use crate::progress;

/// The event the bench campaign fires on.
pub const MATCHING_EVENT: &str = "bench_signed_up";
/// The event of the throughput and background loads; no campaign matches it.
pub const PLAIN_EVENT: &str = "bench_page_viewed";
/// Rendered title of a probe's message: this prefix then the probe's sequence number.
const TITLE_PREFIX: &str = "Bench #";
/// Distinct user ids the non-matching loads spread over.
const USERS: u64 = 10_000;
/// How long probes still in flight at the end of the latency phase are waited for.
const PROBE_DRAIN: Duration = Duration::from_secs(10);

/// Everything measured.
pub struct Results {
    pub echo_unary: LoadResult,
    pub echo_stream: Histogram<u64>,
    pub hop: Hop,
    pub latency: ProbeResult,
    pub latency_track: Histogram<u64>,
    pub background: LoadResult,
    pub streams_ended: u64,
    pub unary: LoadResult,
    pub batch: LoadResult,
    /// Backlog and drain after each Herald phase.
    pub drain_after_latency: Drain,
    pub drain_after_unary: Drain,
    pub drain_after_batch: Drain,
    /// Phase length (warm-up + measured) as run, for the end-to-end pipeline rate.
    pub phase_secs: f64,
    pub cpu_latency: CpuUse,
    pub cpu_unary: CpuUse,
    pub cpu_batch: CpuUse,
    /// PostgreSQL's count of the work per event of the latency and unary phases.
    pub work_latency: Option<Work>,
    pub work_unary: Option<Work>,
    /// A segment created over every user the phases made, backfilled by segmentation.
    pub backfill: StoredBackfill,
}

/// A backfill through segmentation and its storage: users evaluated, and the time from
/// CreateSegment to the backfill's DONE.
#[derive(Debug, Clone, Copy)]
pub struct StoredBackfill {
    pub users: u64,
    pub ms: f64,
}

pub(crate) fn bearer(secret: &str) -> MetadataValue<tonic::metadata::Ascii> {
    format!("Bearer {secret}")
        .parse()
        .expect("keys and tokens are ascii")
}

pub(crate) fn authed<T>(
    message: T,
    auth: &MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

fn text(s: impl Into<String>) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

fn properties(fields: &[(&str, String)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), text(v.clone())))
            .collect(),
    }
}

/// A small non-matching event with a unique message id.
pub(crate) fn page_view(message_id: String, n: u64) -> Event {
    Event {
        message_id,
        user_id: format!("user-{}", n % USERS),
        name: PLAIN_EVENT.into(),
        properties: Some(properties(&[
            ("path", "/pricing".into()),
            ("referrer", "https://example.com/".into()),
        ])),
        ..Default::default()
    }
}

/// The bench campaign: every matching event of a user in `segment_id` makes a banner.
fn bench_campaign(segment_id: &str) -> Campaign {
    Campaign {
        name: "Bench welcome".into(),
        status: CampaignStatus::Active as i32,
        audience: Some(Audience {
            include_segment_ids: vec![segment_id.to_owned()],
            ..Default::default()
        }),
        trigger: Some(Trigger {
            kind: Some(trigger::Kind::Event(EventTrigger {
                event_name: MATCHING_EVENT.into(),
                ..Default::default()
            })),
        }),
        variants: vec![Variant {
            id: "a".into(),
            name: "A".into(),
            weight: 1,
            contents: vec![MessageContent {
                body: Some(message_content::Body::InApp(InAppContent {
                    format: InAppFormat::Banner as i32,
                    title: format!("{TITLE_PREFIX}{{{{ event.properties.seq }}}}"),
                    body: "Your {{ event.properties.plan }} plan is ready.".into(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The probe sequence number rendered into a message's title.
fn probe_seq(message: &Message) -> Option<u64> {
    let content = message.content.as_ref()?;
    match content.body.as_ref()? {
        message_content::Body::InApp(in_app) => {
            in_app.title.strip_prefix(TITLE_PREFIX)?.trim().parse().ok()
        }
        _ => None,
    }
}

pub(crate) async fn connect(url: String) -> anyhow::Result<Channel> {
    Endpoint::from_shared(url.clone())?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connect to {url}"))
}

async fn channels(url: String, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(connect(url.clone()).await?);
    }
    Ok(out)
}

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

pub async fn run_all(fleet: &mut Fleet, s: &Settings) -> anyhow::Result<Results> {
    let auth = bearer(&fleet.key);
    let backlog = Backlog::connect(fleet).await?;

    // The campaign's audience is a segment the matching event itself puts its user in,
    // so every measured message waits for segmentation to evaluate it.
    let mut segmentation =
        SegmentationServiceClient::new(fleet.channel(ServiceKind::Segmentation).await?);
    let segment = segmentation
        .create_segment(authed(
            CreateSegmentRequest {
                segment: Some(Segment {
                    name: "Bench signed up".into(),
                    rule_text: format!("performed({MATCHING_EVENT:?})"),
                    ..Default::default()
                }),
            },
            &auth,
        ))
        .await
        .context("create the bench segment")?
        .into_inner()
        .segment
        .context("no segment in the CreateSegment response")?;
    let mut trigger = TriggerServiceClient::new(fleet.channel(ServiceKind::Trigger).await?);
    let campaign = trigger
        .create_campaign(authed(
            CreateCampaignRequest {
                campaign: Some(bench_campaign(&segment.id)),
            },
            &auth,
        ))
        .await
        .context("create the bench campaign")?
        .into_inner()
        .campaign
        .context("no campaign in the CreateCampaign response")?;
    // The probes measure latency, and several reach one user within the workspace's
    // minimum interval between in-app messages (30 s by default), which would hold all
    // but the first back: the bench workspace turns it off.
    trigger
        .update_trigger_settings(authed(
            UpdateTriggerSettingsRequest {
                settings: Some(TriggerSettings {
                    min_in_app_interval: Some(prost_types::Duration::default()),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["min_in_app_interval".into()],
                }),
            },
            &auth,
        ))
        .await
        .context("turn off the minimum in-app interval")?;
    println!(
        "campaign {} active: every {MATCHING_EVENT} event makes an in-app banner titled \"{TITLE_PREFIX}{{{{ event.properties.seq }}}}\", for users in segment {} ({}); no minimum interval between in-app messages",
        campaign.id, segment.id, segment.rule_text
    );
    println!();

    // d. Baselines: a bare tonic server in this process.
    let echo = EchoServer::start().await?;
    println!(
        "[baseline] bare tonic Health/Check, {} callers over {} connections…",
        s.concurrency, s.channels
    );
    let progress = progress::timed(s.warmup + s.duration);
    let echo_unary = {
        let clients: Vec<HealthClient<Channel>> = channels(echo.url(), s.channels)
            .await?
            .into_iter()
            .map(HealthClient::new)
            .collect();
        closed_loop(
            s.concurrency,
            Window::new(s.warmup, s.duration),
            move |task, _| {
                let mut client = clients[task % clients.len()].clone();
                async move { client.check(HealthCheckRequest::default()).await.map(|_| 1) }
            },
        )
        .await
    };
    drop(progress);
    println!(
        "  {:.0} calls/s, p50 {}, p99 {}, errors {}",
        echo_unary.rate(),
        ms(echo_unary.hist.value_at_quantile(0.50)),
        ms(echo_unary.hist.value_at_quantile(0.99)),
        echo_unary.errors
    );
    println!(
        "[baseline] bare tonic stream round trip (Check pushes one item on an open Watch stream), {}/s…",
        s.probe_rate
    );
    let echo_stream = stream_round_trip(&echo, s).await?;
    println!(
        "  p50 {}, p99 {}, max {} ({} samples)",
        ms(echo_stream.value_at_quantile(0.50)),
        ms(echo_stream.value_at_quantile(0.99)),
        ms(echo_stream.max()),
        echo_stream.len()
    );
    drop(echo);
    println!();

    println!(
        "[herald] delivery hop: Deliver → the message on the user's open Subscribe stream, {}/s one at a time…",
        s.hop_rate
    );
    let hop = hop::measure(fleet, s, &campaign.id).await?;
    println!(
        "  Rust client: p50 {}, p99 {}, max {} ({} samples); the Deliver call p50 {}",
        ms(hop.rust.value_at_quantile(0.50)),
        ms(hop.rust.value_at_quantile(0.99)),
        ms(hop.rust.max()),
        hop.rust.len(),
        ms(hop.deliver_call.value_at_quantile(0.50)),
    );
    match &hop.python {
        Ok(py) => println!(
            "  Python client: p50 {:.2} ms, p99 {:.2} ms ({} samples); the Deliver call p50 {:.2} ms",
            py.p50_ms, py.p99_ms, py.samples, py.deliver_p50_ms
        ),
        Err(why) => println!("  Python client: skipped, {why}"),
    }
    // The hop's DELIVERED interactions are on their way to analytics.
    settle(fleet, &backlog, s).await?;
    println!();

    let ingest_url = fleet.url(ServiceKind::Ingest);
    let ingest: Vec<IngestServiceClient<Channel>> = channels(ingest_url, s.channels)
        .await?
        .into_iter()
        .map(IngestServiceClient::new)
        .collect();
    let phase_secs = (s.warmup + s.duration).as_secs_f64();

    // c. Event-to-stream latency under background load, on a quiet pipeline.
    println!(
        "[herald] event-to-stream latency: {} open Subscribe streams, {} matching events/s, {} background events/s…",
        s.subscribers, s.probe_rate, s.background_rate
    );
    let counter = match fleet.database_url() {
        Some(url) => Some(Counter::connect(url).await?),
        None => None,
    };
    let before = snapshot(counter.as_ref()).await?;
    let meter = CpuMeter::start(&fleet.pids());
    let progress = progress::timed(s.warmup + s.duration);
    let (latency, latency_track, background, streams_ended) =
        event_to_stream(fleet, s, &ingest, &auth).await?;
    drop(progress);
    let cpu_latency = meter.stop();
    println!(
        "  p50 {}, p95 {}, p99 {}, max {} ({} probes, {} lost); background {:.0} events/s, {} errors{}",
        ms(latency.hist.value_at_quantile(0.50)),
        ms(latency.hist.value_at_quantile(0.95)),
        ms(latency.hist.value_at_quantile(0.99)),
        ms(latency.hist.max()),
        latency.sent,
        latency.lost,
        background.rate(),
        background.errors,
        first_error(&background),
    );
    println!(
        "  the probes' own Track calls: p50 {}, p99 {}",
        ms(latency_track.value_at_quantile(0.50)),
        ms(latency_track.value_at_quantile(0.99)),
    );
    println!("  cpu: {}", cpu_latency.summary());
    let drain_after_latency = settle(fleet, &backlog, s).await?;
    let work_latency = work(
        counter.as_ref(),
        before,
        background.total_events + latency.sent,
    )
    .await?;

    let before = snapshot(counter.as_ref()).await?;

    // a. Durable Track, unary.
    println!(
        "[herald] durable Track, unary: {} callers over {} connections…",
        s.concurrency, s.channels
    );
    let meter = CpuMeter::start(&fleet.pids());
    let progress = progress::timed(s.warmup + s.duration);
    let unary = {
        let ingest = ingest.clone();
        let auth = auth.clone();
        closed_loop(
            s.concurrency,
            Window::new(s.warmup, s.duration),
            move |task, i| {
                let mut client = ingest[task % ingest.len()].clone();
                let n = task as u64 * 7919 + i;
                let request = authed(
                    TrackRequest {
                        event: Some(page_view(format!("unary-{task}-{i}"), n)),
                    },
                    &auth,
                );
                async move { client.track(request).await.map(|_| 1) }
            },
        )
        .await
    };
    drop(progress);
    let cpu_unary = meter.stop();
    println!(
        "  {:.0} events/s, p50 {}, p99 {}, errors {}{}",
        unary.rate(),
        ms(unary.hist.value_at_quantile(0.50)),
        ms(unary.hist.value_at_quantile(0.99)),
        unary.errors,
        first_error(&unary),
    );
    println!("  cpu: {}", cpu_unary.summary());
    let drain_after_unary = settle(fleet, &backlog, s).await?;
    let work_unary = work(counter.as_ref(), before, unary.total_events).await?;

    // b. Durable TrackBatch.
    println!(
        "[herald] durable TrackBatch: {} events per call, {} callers…",
        s.batch_size, s.batch_concurrency
    );
    let meter = CpuMeter::start(&fleet.pids());
    let progress = progress::timed(s.warmup + s.duration);
    let batch = {
        let ingest = ingest.clone();
        let auth = auth.clone();
        let size = s.batch_size as u64;
        closed_loop(
            s.batch_concurrency,
            Window::new(s.warmup, s.duration),
            move |task, i| {
                let mut client = ingest[task % ingest.len()].clone();
                let events = (0..size)
                    .map(|j| {
                        page_view(
                            format!("batch-{task}-{i}-{j}"),
                            (task as u64) * 1_000_003 + i * size + j,
                        )
                    })
                    .collect();
                let request = authed(TrackBatchRequest { events }, &auth);
                async move {
                    client
                        .track_batch(request)
                        .await
                        .map(|r| u64::from(r.into_inner().accepted))
                }
            },
        )
        .await
    };
    drop(progress);
    let cpu_batch = meter.stop();
    println!(
        "  {:.0} events/s ({} calls, call p50 {}, p99 {}), errors {}{}",
        batch.rate(),
        batch.calls(),
        ms(batch.hist.value_at_quantile(0.50)),
        ms(batch.hist.value_at_quantile(0.99)),
        batch.errors,
        first_error(&batch),
    );
    println!("  cpu: {}", cpu_batch.summary());
    let drain_after_batch = settle(fleet, &backlog, s).await?;

    println!("[herald] segment backfill through segmentation over every user so far…");
    let backfill = stored_backfill(&mut segmentation, &auth).await?;
    println!(
        "  {} users in {:.0} ms ({:.0} users/s)",
        backfill.users,
        backfill.ms,
        backfill.users as f64 / (backfill.ms / 1000.0)
    );

    backlog.close().await;
    Ok(Results {
        echo_unary,
        echo_stream,
        hop,
        latency,
        latency_track,
        background,
        streams_ended,
        unary,
        batch,
        drain_after_latency,
        drain_after_unary,
        drain_after_batch,
        phase_secs,
        cpu_latency,
        cpu_unary,
        cpu_batch,
        work_latency,
        work_unary,
        backfill,
    })
}

/// Creates a segment over the bench's users (those who viewed a page at least twice) and
/// waits for segmentation's backfill to evaluate every one of them, with its storage.
async fn stored_backfill(
    segmentation: &mut SegmentationServiceClient<Channel>,
    auth: &MetadataValue<tonic::metadata::Ascii>,
) -> anyhow::Result<StoredBackfill> {
    let started = Instant::now();
    let segment = segmentation
        .create_segment(authed(
            CreateSegmentRequest {
                segment: Some(Segment {
                    name: "Bench backfill".into(),
                    rule_text: r#"performed("bench_page_viewed", at_least: 2)"#.into(),
                    ..Default::default()
                }),
            },
            auth,
        ))
        .await
        .context("create the backfill segment")?
        .into_inner()
        .segment
        .context("no segment in the CreateSegment response")?;
    loop {
        let got = segmentation
            .get_segment(authed(
                herald_proto::segmentation::v1::GetSegmentRequest {
                    segment_id: segment.id.clone(),
                },
                auth,
            ))
            .await
            .context("get the backfill segment")?
            .into_inner()
            .segment
            .context("no segment in the GetSegment response")?;
        let backfill = got.backfill.unwrap_or_default();
        if backfill.state == herald_proto::segmentation::v1::BackfillState::Done as i32 {
            return Ok(StoredBackfill {
                users: backfill.users_evaluated,
                ms: started.elapsed().as_secs_f64() * 1000.0,
            });
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!(
                "the backfill evaluated {} of {} users in 300 s",
                backfill.users_evaluated,
                backfill.users_total
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn first_error(result: &LoadResult) -> String {
    match &result.first_error {
        Some(e) => format!(" (first: {e})"),
        None => String::new(),
    }
}

/// Baseline of the stream round trip: a unary `Check(PUSH)` makes the echo server push one
/// item on an already open `Watch` stream; time from before the call to the item.
async fn stream_round_trip(echo: &EchoServer, s: &Settings) -> anyhow::Result<Histogram<u64>> {
    let mut unary = HealthClient::new(connect(echo.url()).await?);
    let mut watcher = HealthClient::new(connect(echo.url()).await?);
    let mut stream = watcher
        .watch(HealthCheckRequest::default())
        .await?
        .into_inner();
    let window = Window::new(s.warmup, s.duration);
    let mut hist = load::histogram();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(s.probe_rate)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let start = Instant::now();
        if start >= window.until {
            break;
        }
        unary
            .check(HealthCheckRequest {
                service: echo::PUSH.into(),
            })
            .await?;
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .context("the echo stream item did not arrive within 5 s")?
            .context("the echo stream ended")??;
        let end = Instant::now();
        if start >= window.measure_from {
            hist.saturating_record(load::micros(end - start).max(1));
        }
    }
    Ok(hist)
}

/// c. Opens the subscribers' streams, runs the background load and the probes together,
/// then waits for the probes still in flight.
async fn event_to_stream(
    fleet: &Fleet,
    s: &Settings,
    ingest: &[IngestServiceClient<Channel>],
    auth: &MetadataValue<tonic::metadata::Ascii>,
) -> anyhow::Result<(ProbeResult, Histogram<u64>, LoadResult, u64)> {
    let probes = Arc::new(Probes::default());
    let streams_ended = Arc::new(AtomicU64::new(0));
    let delivery = DeliveryServiceClient::new(fleet.channel(ServiceKind::Delivery).await?);
    let mut readers = Vec::new();
    for u in 0..s.subscribers {
        let user = format!("probe-user-{u}");
        let token = fleet.user_token(&user)?;
        let mut stream = delivery
            .clone()
            .subscribe(authed(
                SubscribeRequest {
                    session_id: "bench".into(),
                    ..Default::default()
                },
                &bearer(&token),
            ))
            .await
            .with_context(|| format!("subscribe as {user}"))?
            .into_inner();
        let probes = probes.clone();
        let ended = streams_ended.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(item)) = stream.next().await {
                if let Some(subscribe_response::Kind::Message(message)) = item.kind
                    && let Some(seq) = probe_seq(&message)
                {
                    probes.arrived(seq);
                }
            }
            ended.fetch_add(1, Ordering::Relaxed);
        }));
    }

    let window = Window::new(s.warmup, s.duration);
    let background_tasks = ((s.background_rate / 50) as usize).clamp(4, 64);
    let background = {
        let ingest = ingest.to_vec();
        let auth = auth.clone();
        paced(
            s.background_rate,
            background_tasks,
            window,
            move |task, i| {
                let mut client = ingest[task % ingest.len()].clone();
                let n = task as u64 * 7919 + i;
                let request = authed(
                    TrackRequest {
                        event: Some(page_view(format!("bg-{task}-{i}"), n)),
                    },
                    &auth,
                );
                async move { client.track(request).await.map(|_| 1) }
            },
        )
    };

    let track_hist = Arc::new(std::sync::Mutex::new(load::histogram()));
    let probing = {
        let probes = probes.clone();
        let track_hist = track_hist.clone();
        let client = ingest[0].clone();
        let auth = auth.clone();
        let users = s.subscribers as u64;
        let rate = s.probe_rate;
        async move {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut seq = 0u64;
            let mut calls = Vec::new();
            loop {
                ticker.tick().await;
                let now = Instant::now();
                if now >= window.until {
                    break;
                }
                seq += 1;
                let user = format!("probe-user-{}", rand::random_range(0..users));
                let event = Event {
                    message_id: format!("probe-{seq}"),
                    user_id: user,
                    name: MATCHING_EVENT.into(),
                    properties: Some(properties(&[
                        ("seq", seq.to_string()),
                        ("plan", "pro".into()),
                    ])),
                    ..Default::default()
                };
                let request = authed(TrackRequest { event: Some(event) }, &auth);
                let mut client = client.clone();
                let probes = probes.clone();
                let track_hist = track_hist.clone();
                let counts = now >= window.measure_from;
                calls.push(tokio::spawn(async move {
                    probes.sending(seq, counts);
                    let start = Instant::now();
                    let outcome = client.track(request).await;
                    if counts && outcome.is_ok() {
                        track_hist
                            .lock()
                            .expect("track histogram lock")
                            .saturating_record(load::micros(start.elapsed()).max(1));
                    }
                    outcome.map(|_| ())
                }));
            }
            let mut failed = 0u64;
            let mut first = None;
            for call in calls {
                if let Ok(Err(status)) = call.await {
                    failed += 1;
                    first.get_or_insert(status);
                }
            }
            (failed, first)
        }
    };

    let (background, (failed, first)) = tokio::join!(background, probing);
    if let Some(status) = first {
        println!("  warning: {failed} probe Track calls failed, first: {status}");
    }
    let deadline = Instant::now() + PROBE_DRAIN;
    while probes.outstanding() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in &readers {
        reader.abort();
    }
    let track = track_hist.lock().expect("track histogram lock").clone();
    Ok((
        probes.result(),
        track,
        background,
        streams_ended.load(Ordering::Relaxed),
    ))
}

/// Waits until every outbox is empty, i.e. segmentation, trigger, delivery and analytics
/// have caught up with what ingest accepted; returns the backlog left at the end of the
/// phase and how long it took to drain (`None`: not within `settle_max`).
async fn snapshot(counter: Option<&Counter>) -> anyhow::Result<Option<dbwork::Snapshot>> {
    Ok(match counter {
        Some(counter) => Some(counter.snapshot().await?),
        None => None,
    })
}

/// PostgreSQL's work per event since `before`, once every session has published it.
async fn work(
    counter: Option<&Counter>,
    before: Option<dbwork::Snapshot>,
    events: u64,
) -> anyhow::Result<Option<Work>> {
    let (Some(counter), Some(before)) = (counter, before) else {
        return Ok(None);
    };
    tokio::time::sleep(dbwork::PUBLISHED_AFTER).await;
    let work = dbwork::per_event(&before, &counter.snapshot().await?, events);
    print!("{}", dbwork::render(&work));
    Ok(Some(work))
}

async fn settle(fleet: &mut Fleet, backlog: &Backlog, s: &Settings) -> anyhow::Result<Drain> {
    let start = Instant::now();
    let rows = backlog.pending().await?;
    let mut pending = rows;
    let mut reported = Instant::now();
    loop {
        fleet.check_alive()?;
        if pending > 0 && reported.elapsed() >= progress::EVERY {
            eprintln!("  … draining: {pending} outbox rows left");
            reported = Instant::now();
        }
        if pending == 0 {
            let took = start.elapsed();
            println!(
                "  backlog at the end of the phase: {rows} outbox rows; drained after {:.1} s",
                took.as_secs_f64()
            );
            return Ok(Drain {
                rows,
                took: Some(took),
                left: 0,
                waited: took,
            });
        }
        if start.elapsed() >= s.settle_max {
            println!(
                "  backlog at the end of the phase: {rows} outbox rows; {pending} still queued after {} s, going on",
                s.settle_max.as_secs()
            );
            return Ok(Drain {
                rows,
                took: None,
                left: pending,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        pending = backlog.pending().await?;
    }
}

/// The outbox backlog a phase left and how long it took to drain.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Outbox rows queued when the phase ended.
    pub rows: u64,
    /// Time until every outbox was empty, if it happened within settle-max.
    pub took: Option<Duration>,
    /// Rows still queued when the bench stopped waiting.
    pub left: u64,
    /// How long the bench waited.
    pub waited: Duration,
}

impl Drain {
    /// Events per second through the whole pipeline for a phase of `phase_secs` that
    /// acknowledged `events`: over the phase plus the drain; none when it did not drain.
    pub fn through(&self, events: u64, phase_secs: f64) -> Option<f64> {
        self.took
            .map(|t| events as f64 / (phase_secs + t.as_secs_f64()))
    }
}
