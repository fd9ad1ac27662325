//! Campaign statistics at scale: `--stats-interactions` (1,000,000) interactions of one
//! campaign, two variants and a control holdout over about 200,000 users and a few days
//! of history, recorded through analytics' internal API as trigger and delivery would
//! record them (plus the campaign's goal events, so conversions are real); then
//! `GetCampaignStats` timed one call at a time, over the campaign's lifetime (the
//! lifetime aggregates) and over the last 7 days (hourly aggregates). Analytics counts
//! interactions into maintained aggregates as they arrive, so a stats call reads
//! aggregates, not history: the same calls are timed at 1 % of the interactions too, and
//! the two should not differ by more than the noise.
//!
//! The workload is a pure function of the user's number (a fixed seed per user), so every
//! run records the same interactions, and the bench knows what the statistics must say.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use herald_proto::analytics::v1::{
    ArmWeight, CampaignStats, Experiment, GetCampaignStatsRequest, Interaction, InteractionKind,
    RecordEventsRequest, RecordInteractionsRequest,
};
use herald_proto::common::v1::Event;
use herald_runtime::ServiceKind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, Statement};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::args::{Backend, Settings};
use crate::fleet::{Backlog, Fleet};
use crate::phases::{authed, bearer};
use crate::{load, progress};

/// The campaign the interactions belong to (analytics needs no campaign in trigger).
pub const CAMPAIGN: &str = "cmp_bench_stats";
/// The campaign's goal event.
const GOAL_EVENT: &str = "purchased";
/// The campaign's attribution window.
const WINDOW_SECS: i64 = 7 * 86_400;
/// Interactions (events) per RecordInteractions (RecordEvents) call: the API's maximum.
pub const PER_CALL: usize = 1_000;
/// Record calls in flight at once.
pub const IN_FLIGHT: usize = 6;
/// GetCampaignStats calls timed per kind, one at a time, after `WARMUP_CALLS` untimed.
pub const CALLS: usize = 200;
const WARMUP_CALLS: usize = 20;
/// Attempts of a record call (each is idempotent) before the phase fails.
const ATTEMPTS: u32 = 5;
/// The range of the ranged calls: the last 7 days.
pub const RANGE_DAYS: i64 = 7;
const SEED: u64 = 0x5eed_57a7;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Users' first exposures run from this long before the phase's start…
const FIRST_EXPOSURES_FROM_MS: i64 = 4 * DAY_MS;
/// …to this long before it.
const FIRST_EXPOSURES_UNTIL_MS: i64 = DAY_MS;

/// What the stats phase measured.
pub struct StatsResult {
    pub backend: Backend,
    pub interactions: u64,
    pub users: u64,
    /// Goal events recorded through RecordEvents, and the conversions they made.
    pub events: u64,
    pub conversions: u64,
    /// The time spent in RecordInteractions calls (goal events and timing excluded).
    pub load: Duration,
    /// Record calls that failed and were retried.
    pub retries: u64,
    /// GetCampaignStats latency, µs: lifetime, and over the last 7 days.
    pub lifetime: Histogram<u64>,
    pub range: Histogram<u64>,
    /// The campaign's rows in analytics' aggregate table, when they could be counted.
    pub aggregate_rows: Option<u64>,
    /// The same calls at 1 % of the interactions, when that is at least one call's worth.
    pub small: Option<Checkpoint>,
}

impl StatsResult {
    /// Interactions recorded per second.
    pub fn load_rate(&self) -> f64 {
        self.interactions as f64 / self.load.as_secs_f64().max(1e-9)
    }
}

/// GetCampaignStats latency, µs, with only the first `interactions` recorded.
pub struct Checkpoint {
    pub interactions: u64,
    pub lifetime: Histogram<u64>,
    pub range: Histogram<u64>,
    pub aggregate_rows: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Control,
    A,
    B,
}

impl Arm {
    fn variant_id(self) -> &'static str {
        match self {
            Arm::Control => "",
            Arm::A => "a",
            Arm::B => "b",
        }
    }
}

/// The allocation exposures carry: 40 / 40 and a 20 % control holdout.
fn experiment() -> Experiment {
    Experiment {
        variants: vec![
            ArmWeight {
                variant_id: Arm::A.variant_id().into(),
                weight: 40,
            },
            ArmWeight {
                variant_id: Arm::B.variant_id().into(),
                weight: 40,
            },
        ],
        control_weight: 20,
        sequential_tuning: 0,
    }
}

/// One interaction of a user: what, for which of the user's decisions, and when, in ms
/// after the user's first exposure.
#[derive(Debug, Clone, Copy)]
struct Step {
    kind: InteractionKind,
    decision: u32,
    after_ms: i64,
}

/// A user's part of the workload.
struct Plan {
    arm: Arm,
    steps: Vec<Step>,
    /// Goal events, in ms after the first exposure (before it when negative).
    goals: Vec<i64>,
}

/// User `user`'s plan. Its first step is always the first exposure. On average a user has
/// about 4.9 interactions: a fifth are held out (an ASSIGNED_CONTROL per decision), the
/// others get a message per decision (EXPOSED, SENT, DELIVERED 97 %, IMPRESSION 85 % of
/// those, then CLICK 12 % or else DISMISSAL 30 %); two users in five have a second
/// decision 1–24 h after the first. 2 % of users performed the goal before their exposure
/// (no conversion); after it, 4 % of control, 5 % of A and 6.5 % of B convert.
fn plan(user: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(SEED ^ user.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let arm = match rng.random_range(0..100) {
        0..20 => Arm::Control,
        20..60 => Arm::A,
        _ => Arm::B,
    };
    let decisions = if rng.random_bool(0.4) { 2 } else { 1 };
    let mut steps = Vec::with_capacity(12);
    let mut at = 0;
    for decision in 0..decisions {
        let mut step = |kind, after_ms| {
            steps.push(Step {
                kind,
                decision,
                after_ms,
            })
        };
        if decision > 0 {
            at += rng.random_range(HOUR_MS..=DAY_MS);
        }
        if arm == Arm::Control {
            step(InteractionKind::AssignedControl, at);
            continue;
        }
        step(InteractionKind::Exposed, at);
        step(InteractionKind::Sent, at + 50);
        if !rng.random_bool(0.97) {
            continue;
        }
        step(
            InteractionKind::Delivered,
            at + rng.random_range(200..2_000),
        );
        if !rng.random_bool(0.85) {
            continue;
        }
        let seen = at + rng.random_range(1_000..10 * MINUTE_MS);
        step(InteractionKind::Impression, seen);
        if rng.random_bool(0.12) {
            step(
                InteractionKind::Click,
                seen + rng.random_range(2_000..2 * MINUTE_MS),
            );
        } else if rng.random_bool(0.3) {
            step(
                InteractionKind::Dismissal,
                seen + rng.random_range(2_000..5 * MINUTE_MS),
            );
        }
    }
    let mut goals = Vec::new();
    if rng.random_bool(0.02) {
        goals.push(-rng.random_range(HOUR_MS..=2 * DAY_MS));
    }
    let rate = match arm {
        Arm::Control => 0.04,
        Arm::A => 0.05,
        Arm::B => 0.065,
    };
    if rng.random_bool(rate) {
        goals.push(rng.random_range(10 * MINUTE_MS..=3 * DAY_MS));
    }
    Plan { arm, steps, goals }
}

/// The workload of one run: `interactions` over `users` users, laid out before `now_ms`.
struct Workload {
    users: u64,
    now_ms: i64,
}

impl Workload {
    /// The users `interactions` takes (the last one's plan may be cut short), recorded
    /// user after user.
    fn new(interactions: u64, now_ms: i64) -> Workload {
        let (mut users, mut planned) = (0, 0);
        while planned < interactions {
            planned += plan(users).steps.len() as u64;
            users += 1;
        }
        Workload { users, now_ms }
    }

    /// When `user` was first exposed: spread over three days by the golden-ratio sequence,
    /// so that any first share of the users (the 1 % checkpoint) covers the three days as
    /// evenly as all of them, and fills the same hourly aggregates.
    fn first_exposure(&self, user: u64) -> i64 {
        const GOLDEN: f64 = 0.618_033_988_749_894_8;
        let span = FIRST_EXPOSURES_FROM_MS - FIRST_EXPOSURES_UNTIL_MS;
        let share = ((user + 1) as f64 * GOLDEN).fract();
        self.now_ms - FIRST_EXPOSURES_FROM_MS + (span as f64 * share) as i64
    }

    /// `first_exposure + after_ms`, kept at least a minute before the phase's start
    /// (analytics refuses times more than 24 h ahead of its clock; these are all past).
    fn time(&self, user: u64, after_ms: i64) -> prost_types::Timestamp {
        timestamp((self.first_exposure(user) + after_ms).min(self.now_ms - MINUTE_MS))
    }

    /// `user`'s interactions, as trigger (EXPOSED, ASSIGNED_CONTROL) and delivery (the
    /// message's) record them.
    fn interactions(&self, user: u64) -> Vec<Interaction> {
        let plan = plan(user);
        let user_id = user_id(user);
        let window = Some(prost_types::Duration {
            seconds: WINDOW_SECS,
            nanos: 0,
        });
        let times: Vec<prost_types::Timestamp> = plan
            .steps
            .iter()
            .map(|s| self.time(user, s.after_ms))
            .collect();
        plan.steps
            .into_iter()
            .zip(times)
            .enumerate()
            .map(move |(k, (step, time))| {
                let mut i = Interaction {
                    id: format!("st-{user}-{k}"),
                    campaign_id: CAMPAIGN.into(),
                    variant_id: plan.arm.variant_id().into(),
                    user_id: user_id.clone(),
                    kind: step.kind as i32,
                    time: Some(time),
                    ..Default::default()
                };
                let message = format!("st-msg-{user}-{}", step.decision);
                match step.kind {
                    InteractionKind::Exposed | InteractionKind::AssignedControl => {
                        i.goal_event_name = GOAL_EVENT.into();
                        i.attribution_window = window;
                        i.experiment = Some(experiment());
                    }
                    InteractionKind::Sent => {
                        i.delivery_idempotency_key = format!("st-key-{user}-{}", step.decision);
                        i.goal_event_name = GOAL_EVENT.into();
                        i.attribution_window = window;
                        i.message_id = message;
                    }
                    _ => i.message_id = message,
                }
                i
            })
            .collect()
    }

    /// `user`'s goal events, and whether one converts (it follows the first exposure,
    /// within the window: every such event does here, as the first exposures are at
    /// least a day old and no event is later than the phase's start).
    fn events(&self, user: u64) -> (Vec<Event>, bool) {
        let plan = plan(user);
        let converts = plan.goals.iter().any(|after| *after > 0);
        let events = plan
            .goals
            .iter()
            .enumerate()
            .map(|(k, after)| Event {
                message_id: format!("st-ev-{user}-{k}"),
                user_id: user_id(user),
                name: GOAL_EVENT.into(),
                timestamp: Some(self.time(user, *after)),
                ..Default::default()
            })
            .collect();
        (events, converts)
    }
}

/// The workload's interactions, user after user, handed out in calls that never split a
/// user's interactions (trigger and delivery relay a user's in order, and concurrent calls
/// would not keep it), up to an exact count: a user is split only where a count ends,
/// between calls that do not run at once.
struct Feed<'a> {
    workload: &'a Workload,
    /// The next user to start.
    next_user: u64,
    /// What is left of the current user's interactions.
    rest: VecDeque<Interaction>,
}

impl<'a> Feed<'a> {
    fn new(workload: &'a Workload) -> Feed<'a> {
        Feed {
            workload,
            next_user: 0,
            rest: VecDeque::new(),
        }
    }

    /// The next call's interactions: whole users' (unless `left` ends within one), at
    /// most `PER_CALL` and at most `left`.
    fn next_call(&mut self, left: u64) -> Vec<Interaction> {
        let limit = PER_CALL.min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut call = Vec::with_capacity(limit);
        while call.len() < limit {
            if self.rest.is_empty() {
                if self.next_user >= self.workload.users {
                    break;
                }
                self.rest = self.workload.interactions(self.next_user).into();
                self.next_user += 1;
            }
            let room = limit - call.len();
            if self.rest.len() <= room {
                call.extend(self.rest.drain(..));
            } else if limit < PER_CALL {
                // The count ends within this user: the rest opens the next count.
                call.extend(self.rest.drain(..room));
            } else {
                // Kept whole for the next call.
                break;
            }
        }
        call
    }

    /// Users started so far (all of whose goal events may be recorded).
    fn users(&self) -> u64 {
        self.next_user
    }
}

fn user_id(user: u64) -> String {
    format!("stats-user-{user}")
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn now_ms() -> i64 {
    herald_runtime::Clock::system().now_ms()
}

type Auth = MetadataValue<Ascii>;

/// Whether a failed record call is worth another attempt (a conflict between concurrent
/// writers, a busy database), as an outbox relay would retry it.
fn retryable(status: &tonic::Status) -> bool {
    !matches!(
        status.code(),
        tonic::Code::InvalidArgument
            | tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::NotFound
            | tonic::Code::Unimplemented
    )
}

/// Calls `call` until it succeeds, at most `ATTEMPTS` times; returns its answer and how
/// many attempts failed.
async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<(T, u64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut failed = 0;
    loop {
        match call().await {
            Ok(answer) => return Ok((answer, failed)),
            Err(status) if failed + 1 < u64::from(ATTEMPTS) && retryable(&status) => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(100 * failed)).await;
            }
            Err(status) => bail!(
                "{what} failed after {} attempts: {:?}: {}",
                failed + 1,
                status.code(),
                status.message()
            ),
        }
    }
}

/// What a series of record calls did.
#[derive(Debug, Default, Clone, Copy)]
struct Recorded {
    /// Items newly recorded, and those the service had already (a retried call).
    recorded: u64,
    duplicates: u64,
    conversions: u64,
    retries: u64,
}

impl Recorded {
    fn add(&mut self, other: Recorded) {
        self.recorded += other.recorded;
        self.duplicates += other.duplicates;
        self.conversions += other.conversions;
        self.retries += other.retries;
    }
}

/// The internal client and what its calls carry.
struct Internal {
    client: AnalyticsInternalServiceClient<Channel>,
    auth: Auth,
    workspace: String,
}

impl Internal {
    /// One RecordInteractions call, retried until it succeeds.
    async fn record(&self, interactions: Vec<Interaction>) -> anyhow::Result<Recorded> {
        let request = RecordInteractionsRequest {
            workspace_id: self.workspace.clone(),
            interactions,
        };
        let (answer, retries) = with_retries("RecordInteractions", || {
            let mut client = self.client.clone();
            let request = authed(request.clone(), &self.auth);
            async move { client.record_interactions(request).await }
        })
        .await?;
        let answer = answer.into_inner();
        Ok(Recorded {
            recorded: answer.recorded.into(),
            duplicates: answer.duplicates.into(),
            conversions: 0,
            retries,
        })
    }

    /// Records the next `count` interactions of `feed`, `IN_FLIGHT` calls at once; the
    /// very first call goes alone, as it makes the campaign's goal version (concurrent
    /// first calls would race to make it, and all but one fail and be retried).
    async fn interactions(
        &self,
        feed: &mut Feed<'_>,
        count: u64,
        done: &AtomicU64,
    ) -> anyhow::Result<Recorded> {
        let mut total = Recorded::default();
        let mut left = count;
        if feed.users() == 0 && left > 0 {
            let call = feed.next_call(left);
            let sent = call.len() as u64;
            left -= sent;
            total.add(self.record(call).await?);
            done.fetch_add(sent, Ordering::Relaxed);
        }
        let calls = std::iter::from_fn(|| {
            let call = feed.next_call(left);
            left -= call.len() as u64;
            (!call.is_empty()).then_some(call)
        });
        let mut calls = futures::stream::iter(calls)
            .map(|call| {
                let sent = call.len() as u64;
                async move {
                    let recorded = self.record(call).await?;
                    done.fetch_add(sent, Ordering::Relaxed);
                    anyhow::Ok(recorded)
                }
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some(recorded) = calls.next().await {
            total.add(recorded?);
        }
        Ok(total)
    }

    /// Records the goal events of `users`, `PER_CALL` per call, `IN_FLIGHT` calls at
    /// once.
    async fn events(
        &self,
        workload: &Workload,
        users: std::ops::Range<u64>,
    ) -> anyhow::Result<Recorded> {
        let mut events = users.flat_map(|user| workload.events(user).0);
        let calls = std::iter::from_fn(|| {
            let call: Vec<Event> = events.by_ref().take(PER_CALL).collect();
            (!call.is_empty()).then_some(call)
        });
        let mut calls = futures::stream::iter(calls)
            .map(|call| async move {
                let request = RecordEventsRequest {
                    workspace_id: self.workspace.clone(),
                    events: call,
                };
                let (answer, retries) = with_retries("RecordEvents", || {
                    let mut client = self.client.clone();
                    let request = authed(request.clone(), &self.auth);
                    async move { client.record_events(request).await }
                })
                .await?;
                let answer = answer.into_inner();
                anyhow::Ok(Recorded {
                    recorded: answer.recorded.into(),
                    duplicates: answer.duplicates.into(),
                    conversions: answer.conversions.into(),
                    retries,
                })
            })
            .buffer_unordered(IN_FLIGHT);
        let mut total = Recorded::default();
        while let Some(recorded) = calls.next().await {
            total.add(recorded?);
        }
        Ok(total)
    }
}

/// Times `CALLS` GetCampaignStats calls of `request`, one after another, after
/// `WARMUP_CALLS` untimed ones.
async fn time_calls(
    client: &mut AnalyticsServiceClient<Channel>,
    auth: &Auth,
    request: &GetCampaignStatsRequest,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = load::histogram();
    for call in 0..WARMUP_CALLS + CALLS {
        let started = Instant::now();
        client
            .get_campaign_stats(authed(request.clone(), auth))
            .await
            .context("GetCampaignStats")?;
        if call >= WARMUP_CALLS {
            hist.saturating_record(load::micros(started.elapsed()).max(1));
        }
    }
    Ok(hist)
}

/// The lifetime request, and one over the last `RANGE_DAYS` days (to now).
fn requests() -> [GetCampaignStatsRequest; 2] {
    let now = now_ms();
    let lifetime = GetCampaignStatsRequest {
        campaign_id: CAMPAIGN.into(),
        ..Default::default()
    };
    let range = GetCampaignStatsRequest {
        start_time: Some(timestamp(now - RANGE_DAYS * DAY_MS)),
        end_time: Some(timestamp(now)),
        ..lifetime.clone()
    };
    [lifetime, range]
}

/// The campaign's rows in analytics' aggregate table, `analytics_counts` (hourly and
/// lifetime: what a stats call reads), counted straight from analytics' database; `None`
/// when that fails (the table is analytics' own, and may change).
async fn aggregate_rows(fleet: &Fleet) -> Option<u64> {
    let url = match fleet.database_url() {
        Some(url) => url.to_owned(),
        None => format!(
            "sqlite://{}?mode=ro",
            fleet.dir().join("analytics.db").display()
        ),
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .min_connections(0)
        .sqlx_logging(false);
    let db = Database::connect(options).await.ok()?;
    let sql =
        format!("SELECT COUNT(*) AS n FROM analytics_counts WHERE campaign_id = '{CAMPAIGN}'");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await;
    let _ = db.close().await;
    let n: i64 = row.ok()??.try_get("", "n").ok()?;
    Some(n.max(0) as u64)
}

/// Times both kinds of call; prints and returns their latencies.
async fn time_both(
    client: &mut AnalyticsServiceClient<Channel>,
    auth: &Auth,
    interactions: u64,
    rows: Option<u64>,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let rows = rows.map_or(String::new(), |n| format!(" ({n} aggregate rows)"));
    println!(
        "  timing {CALLS} GetCampaignStats calls of each kind, one at a time, at {interactions} interactions{rows}…"
    );
    let [lifetime, range] = requests();
    let lifetime = time_calls(client, auth, &lifetime).await?;
    let range = time_calls(client, auth, &range).await?;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  lifetime: p50 {:.2} ms, p99 {:.2} ms; last {RANGE_DAYS} days (hourly aggregates): p50 {:.2} ms, p99 {:.2} ms",
        ms(&lifetime, 0.5),
        ms(&lifetime, 0.99),
        ms(&range, 0.5),
        ms(&range, 0.99),
    );
    Ok((lifetime, range))
}

/// Waits (at most `--settle-max-secs`) for the earlier phases' outbox backlog to drain,
/// so the relays do not share the machine with this phase.
async fn quiet(fleet: &mut Fleet, s: &Settings) -> anyhow::Result<()> {
    let backlog = Backlog::connect(fleet).await?;
    let start = Instant::now();
    loop {
        fleet.check_alive()?;
        let pending = backlog.pending().await?;
        if pending == 0 {
            break;
        }
        if start.elapsed() >= s.settle_max {
            println!(
                "  {pending} outbox rows of the earlier phases still queued after {} s: their relay shares the machine with this phase",
                s.settle_max.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    backlog.close().await;
    Ok(())
}

/// One line per arm of a campaign's lifetime statistics, and the interactions and
/// conversions they count.
fn summary(stats: &CampaignStats) -> (String, u64, u64) {
    let mut lines = Vec::new();
    let (mut counted, mut conversions) = (0, 0);
    for v in &stats.variants {
        counted += v.sent + v.delivered + v.impressions + v.clicks + v.dismissals + v.exposures;
        conversions += v.conversions;
        let arm = if v.control {
            "control".to_owned()
        } else {
            format!("variant {}", v.variant_id)
        };
        lines.push(format!(
            "    {arm}: {} exposed users, {} exposures, {} sent, {} delivered, {} impressions, {} clicks, {} dismissals, {} conversions ({:.2} %)",
            v.exposed,
            v.exposures,
            v.sent,
            v.delivered,
            v.impressions,
            v.clicks,
            v.dismissals,
            v.conversions,
            v.conversion_rate * 100.0
        ));
    }
    (lines.join("\n"), counted, conversions)
}

/// Records the workload and times GetCampaignStats, at 1 % of it and at all of it.
pub async fn run(fleet: &mut Fleet, s: &Settings, backend: Backend) -> anyhow::Result<StatsResult> {
    quiet(fleet, s).await?;
    let total = s.stats_interactions;
    let workload = Workload::new(total, now_ms());
    println!(
        "[analytics] recording {total} interactions of campaign {CAMPAIGN} (variants a and b and a 20 % control holdout, {} users, first exposures over 3 days) through RecordInteractions, {PER_CALL} per call, {IN_FLIGHT} calls in flight…",
        workload.users
    );
    let channel = fleet.channel(ServiceKind::Analytics).await?;
    let internal = Internal {
        client: AnalyticsInternalServiceClient::new(channel.clone()),
        auth: bearer(&fleet.internal_key),
        workspace: fleet.workspace.id.clone(),
    };
    let admin = bearer(&fleet.key);
    let mut stats = AnalyticsServiceClient::new(channel);

    let mut feed = Feed::new(&workload);
    let done = Arc::new(AtomicU64::new(0));
    let checkpoint = Some(total / 100).filter(|n| *n >= PER_CALL as u64);
    let mut recorded = Recorded::default();
    let mut events = Recorded::default();
    let mut load = Duration::ZERO;
    // Interactions sent so far, and the users whose goal events are recorded.
    let (mut sent, mut users_done) = (0, 0);
    let mut small = None;
    for (upto, last) in checkpoint
        .map(|n| (n, false))
        .into_iter()
        .chain([(total, true)])
    {
        let progress = progress::counted(done.clone(), total, "interactions");
        let started = Instant::now();
        recorded.add(internal.interactions(&mut feed, upto - sent, &done).await?);
        load += started.elapsed();
        drop(progress);
        sent = upto;
        let users = feed.users();
        events.add(internal.events(&workload, users_done..users).await?);
        users_done = users;
        if !last {
            println!("  {upto} interactions and the goal events of their {users} users recorded");
            let rows = aggregate_rows(fleet).await;
            let (lifetime, range) = time_both(&mut stats, &admin, upto, rows).await?;
            small = Some(Checkpoint {
                interactions: upto,
                lifetime,
                range,
                aggregate_rows: rows,
            });
        }
    }
    let expected = (0..workload.users)
        .filter(|user| workload.events(*user).1)
        .count() as u64;
    let events_sent = events.recorded + events.duplicates;
    anyhow::ensure!(
        recorded.recorded + recorded.duplicates == total,
        "analytics acknowledged {} of {total} interactions",
        recorded.recorded + recorded.duplicates
    );
    let retries = recorded.retries + events.retries;
    println!(
        "  {total} interactions recorded in {:.1} s: {:.0} interactions/s (untimed); {} goal events through RecordEvents made {} conversions (expected {expected}); {retries} calls retried",
        load.as_secs_f64(),
        total as f64 / load.as_secs_f64().max(1e-9),
        events_sent,
        events.conversions,
    );

    let [lifetime_request, _] = requests();
    let answer = stats
        .get_campaign_stats(authed(lifetime_request, &admin))
        .await
        .context("GetCampaignStats")?
        .into_inner()
        .stats
        .context("no stats in the GetCampaignStats response")?;
    let (lines, counted, conversions) = summary(&answer);
    println!("  the campaign's lifetime statistics:\n{lines}");
    if counted != total || conversions != expected {
        println!(
            "  note: the lifetime counts add up to {counted} interactions (expected {total}) and {conversions} conversions (expected {expected})"
        );
    }
    if let Some(srm) = &answer.sample_ratio
        && srm.mismatch
    {
        println!(
            "  note: sample ratio mismatch flagged (p = {:.2e}) for a workload drawn 40 / 40 / 20",
            srm.p_value
        );
    }

    let rows = aggregate_rows(fleet).await;
    let (lifetime, range) = time_both(&mut stats, &admin, total, rows).await?;
    Ok(StatsResult {
        backend,
        interactions: total,
        users: workload.users,
        events: events_sent,
        conversions: events.conversions,
        load,
        retries,
        lifetime,
        range,
        aggregate_rows: rows,
        small,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_of(i: &Interaction) -> u64 {
        i.user_id["stats-user-".len()..]
            .parse()
            .expect("a user number")
    }

    #[test]
    fn the_feed_hands_out_exactly_its_interactions_without_splitting_a_user_in_a_count() {
        let now = 1_800_000_000_000;
        let w = Workload::new(10_000, now);
        // About 4.9 interactions per user.
        assert!((1_900..=2_200).contains(&w.users), "{} users", w.users);
        let mut feed = Feed::new(&w);
        let mut counts = Vec::new();
        for count in [3_333u64, 6_667] {
            let mut calls = Vec::new();
            let mut left = count;
            while left > 0 {
                let call = feed.next_call(left);
                assert!(!call.is_empty() && call.len() <= PER_CALL);
                left -= call.len() as u64;
                calls.push(call);
            }
            for pair in calls.windows(2) {
                let (end, start) = (pair[0].last().unwrap(), pair[1].first().unwrap());
                assert_ne!(
                    user_of(end),
                    user_of(start),
                    "a user split between two calls"
                );
            }
            counts.push(calls);
        }
        assert_eq!(feed.users(), w.users);
        // Past the count, at most the rest of the last user, cut short.
        let rest = feed.next_call(u64::MAX);
        assert!(rest.iter().all(|i| user_of(i) == w.users - 1));
        let items: Vec<&Interaction> = counts.iter().flatten().flatten().collect();
        assert_eq!(items.len(), 10_000);
        assert_eq!(items.last().map(|i| user_of(i)), Some(w.users - 1));
        let ids: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids.len(), items.len());
        let mut hours = std::collections::HashSet::new();
        for i in &items {
            let t = i.time.expect("a time");
            let ms = t.seconds * 1000 + i64::from(t.nanos / 1_000_000);
            assert!(ms <= now - MINUTE_MS && ms >= now - FIRST_EXPOSURES_FROM_MS);
            hours.insert(ms / HOUR_MS);
        }
        assert!(hours.len() >= 72, "{} hours", hours.len());
        // The first 200 users alone fill most of the 72 hours of first exposures.
        let early: std::collections::HashSet<i64> =
            (0..200).map(|u| w.first_exposure(u) / HOUR_MS).collect();
        assert!(early.len() >= 60, "{} hours", early.len());
    }

    #[test]
    fn every_user_starts_with_an_exposure() {
        for user in 0..1_000 {
            let plan = plan(user);
            let first = plan.steps[0];
            assert_eq!(first.after_ms, 0);
            let exposure = match plan.arm {
                Arm::Control => InteractionKind::AssignedControl,
                _ => InteractionKind::Exposed,
            };
            assert_eq!(first.kind, exposure);
        }
    }
}
