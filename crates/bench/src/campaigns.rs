//! Campaign targeting in process: no services, no database, storage not counted. What
//! trigger does per event once it holds the user's ledger (services/trigger/src/fire.rs):
//! `decision::on_event` over the workspace's compiled ACTIVE campaigns, which looks the
//! event up in the match index, cancels the timers it cancels, starts the delay and
//! inactivity timers it starts, counts goals, and takes every event and goal campaign it
//! fires through every gate (schedule, audience, entry, frequency cap, assignment,
//! locale, Liquid rendering, quiet hours, priority, minimum in-app interval, cap rules).
//!
//! The workspace: `--campaigns` ACTIVE campaigns (10,000 by default), each on one of
//! [`EVENT_NAMES`] event names or one of [`SEGMENTS`] segments, so an event concerns
//! about 18 campaigns of 10,000. The mix: 76% event triggers (two in five with property
//! filters), 10% segment entries, 6% delays (most cancelled by another event), 5%
//! inactivity windows (one in five waiting for any event at all, so every event reads
//! them), 3% goals; half with an audience (included and excluded segments, a trait
//! filter); one or two variants of an in-app content whose title and body are Liquid
//! (`{{ user.first_name | default: "there" }}`, an `if` on a trait, event properties),
//! some with French and German localizations, a control holdout, entry rules, frequency
//! caps, priorities, schedules and quiet hours of their own. The workspace has two cap
//! rules (2 modals per calendar day, 6 in-app messages per rolling day), the default
//! minimum in-app interval and quiet hours.
//!
//! [`USERS`] users, each with traits, a dozen segments and a ledger kept across events,
//! take turns (round robin), one event every 20 minutes each on average, the event's
//! name drawn uniformly from the event names. [`WARM_UP_ROUNDS`] rounds of events warm
//! the ledgers up, untimed; then `--campaign-events` events are timed one by one, `on_event` whole. Around
//! each event, untimed, the user's ledger is decoded from the bytes kept for it and
//! afterwards trimmed and encoded again, as the service does per batch of events. The index lookup alone (the campaigns an event fires or starts, and those whose
//! timers it cancels) is timed apart, over as many events.
//!
//! Everything is generated from a fixed seed, so two runs decide the same work.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use herald_campaigns::attention::Workspace;
use herald_campaigns::decision::{self, EventView, Subject};
use herald_campaigns::ledger::Ledger;
use herald_campaigns::{CompiledCampaign, MatchIndex, Outcome, render};
use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{
    Action, ActionKind, Channel, ComparisonOperator, InAppContent, InAppFormat, MessageContent,
    TooltipTarget,
};
use herald_proto::trigger::v1::{
    Audience, Campaign, CampaignStatus, CapRule, ConversionGoal, DecisionReasonCode,
    DelayAfterEvent, Entry, EntryPolicy, EventTrigger, FrequencyCap, GoalTrigger, Inactivity,
    LocalizedContents, PropertyFilter, QuietHours, QuietHoursBehavior, Schedule,
    SegmentEntryTrigger, TimeTrigger, Trigger, TriggerSettings, Variant, cap_rule, time_trigger,
    trigger,
};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// When the warm-up round starts (2026-06-01T09:00:00Z).
const T0: i64 = 1_780_304_400_000;
/// Distinct event names the campaigns trigger on and the users perform.
pub const EVENT_NAMES: usize = 500;
/// Segments the audiences and segment-entry triggers name.
pub const SEGMENTS: usize = 200;
/// Users the events are spread over, round robin.
pub const USERS: usize = 10_000;
/// The time between two events of one user, on average.
const USER_PACE_MS: i64 = 20 * MINUTE;
/// Rounds of untimed events (one per user) before the timed ones.
const WARM_UP_ROUNDS: usize = 2;
const WORKSPACE: &str = "wsp_bench";

/// What the campaign phase measured.
pub struct CampaignsResult {
    pub campaigns: usize,
    pub event_names: usize,
    pub users: usize,
    pub events: u64,
    /// Compiling every campaign: conditions compiled, templates parsed.
    pub compile: Duration,
    /// Building the match index over the compiled campaigns.
    pub index: Duration,
    /// Nanoseconds per event: the whole `on_event`.
    pub decide: Histogram<u64>,
    /// Nanoseconds per event: the index lookup alone.
    pub matching: Histogram<u64>,
    /// Campaigns an event can fire or start, on average, and at most.
    pub per_event: f64,
    pub per_event_max: usize,
    /// Campaigns whose pending timers an event may cancel, on average.
    pub cancel_per_event: f64,
    /// Per event, on average: decisions, contents rendered, messages sent.
    pub decisions: f64,
    pub renders: f64,
    pub sends: f64,
    /// Where the decisions ended: an outcome, or the gate that stopped them, with how
    /// many, most first.
    pub ends: Vec<(String, u64)>,
}

/// A user of the bench: what the event's `Subject` borrows, and the ledger kept between
/// events as trigger stores it (encoded).
struct User {
    id: String,
    traits: Struct,
    segment_ids: Vec<String>,
    time_zone: &'static str,
    locale: &'static str,
    ledger: Vec<u8>,
}

/// Runs the phase (CPU only; call it off the async threads).
pub fn run(campaigns: usize, events: u64) -> anyhow::Result<CampaignsResult> {
    println!(
        "[campaigns] {campaigns} active campaigns over {EVENT_NAMES} event names and {SEGMENTS} segments, {USERS} users; timing {events} events through on_event…"
    );
    let mut rng = StdRng::seed_from_u64(3);
    let names = event_names();
    let segments: Vec<String> = (0..SEGMENTS).map(|_| id("seg", &mut rng)).collect();
    let protos: Vec<Campaign> = (0..campaigns)
        .map(|i| campaign(i, &names, &segments, &mut rng))
        .collect();

    let parser = render::parser();
    let started = Instant::now();
    let mut compiled = Vec::with_capacity(protos.len());
    for campaign in protos {
        let id = campaign.id.clone();
        let c = CompiledCampaign::compile(&parser, campaign, T0 - DAY)
            .map_err(|v| anyhow::anyhow!("bench campaign {id} does not compile: {v:?}"))?;
        compiled.push(Arc::new(c));
    }
    let compile = started.elapsed();
    let started = Instant::now();
    let index = MatchIndex::new(compiled);
    let index_took = started.elapsed();
    anyhow::ensure!(index.len() == campaigns, "bench campaigns were not indexed");
    let workspace = Workspace::compile(WORKSPACE, &cap_rules(), &settings());

    let mut users: Vec<User> = (0..USERS).map(|n| user(n, &segments, &mut rng)).collect();
    let step = USER_PACE_MS / USERS as i64;
    let mut now = T0;
    // Unmeasured: the ledgers hold entries, assignments and sent messages.
    for n in 0..WARM_UP_ROUNDS * USERS {
        now += rng.random_range(0..=2 * step);
        let event = event(format!("msg_warm_{n:08}"), &names, &mut rng);
        decide(
            &index,
            &workspace,
            &mut users[n % USERS],
            &event,
            now,
            |_| {},
        );
    }

    let mut histogram = Histogram::<u64>::new(3)?;
    let (mut concerned, mut concerned_max, mut cancelling) = (0usize, 0usize, 0usize);
    let (mut decisions, mut renders, mut sends) = (0u64, 0u64, 0u64);
    let mut ends: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..events {
        now += rng.random_range(0..=2 * step);
        let user = &mut users[n as usize % USERS];
        let event = event(format!("msg_{n:012}"), &names, &mut rng);
        let took = decide(&index, &workspace, user, &event, now, |decided| {
            decisions += decided.len() as u64;
            for d in decided {
                renders += d
                    .verdicts
                    .iter()
                    .filter(|v| v.code == DecisionReasonCode::RenderFailed && v.passed)
                    .count() as u64;
                sends += d.sends.len() as u64;
                let end = match d.failed() {
                    Some(v) if d.outcome == Outcome::Suppressed => short_code(v.code),
                    _ => format!("{:?}", d.outcome).to_lowercase(),
                };
                *ends.entry(end).or_default() += 1;
            }
        });
        histogram.record((took.as_nanos() as u64).max(1))?;
        let fired = index.for_event(event.name).len();
        concerned += fired;
        concerned_max = concerned_max.max(fired);
        cancelling += index.cancelled_by(event.name).count();
    }

    let mut matching = Histogram::<u64>::new(3)?;
    for _ in 0..events {
        let name = &names[rng.random_range(0..names.len())];
        let started = Instant::now();
        let fired = index.for_event(name);
        let cancelled = index.cancelled_by(name).count();
        let took = started.elapsed();
        black_box((fired, cancelled));
        matching.record((took.as_nanos() as u64).max(1))?;
    }

    let per = |x: f64| x / events.max(1) as f64;
    let mut ends: Vec<(String, u64)> = ends.into_iter().collect();
    ends.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let result = CampaignsResult {
        campaigns: index.len(),
        event_names: EVENT_NAMES,
        users: USERS,
        events,
        compile,
        index: index_took,
        decide: histogram,
        matching,
        per_event: per(concerned as f64),
        per_event_max: concerned_max,
        cancel_per_event: per(cancelling as f64),
        decisions: per(decisions as f64),
        renders: per(renders as f64),
        sends: per(sends as f64),
        ends,
    };
    println!(
        "  compiled in {:.0} ms, indexed in {:.1} ms; an event fires or starts {:.1} campaigns on average ({} at most) and may cancel the timers of {:.1}",
        ms(result.compile),
        ms(result.index),
        result.per_event,
        result.per_event_max,
        result.cancel_per_event
    );
    println!(
        "  on_event p50 {:.2} µs, p99 {:.2} µs per event; index lookup alone p50 {} ns, p99 {} ns",
        us(&result.decide, 0.5),
        us(&result.decide, 0.99),
        result.matching.value_at_quantile(0.5),
        result.matching.value_at_quantile(0.99)
    );
    let total: u64 = result.ends.iter().map(|(_, n)| n).sum();
    let ends: Vec<String> = result
        .ends
        .iter()
        .map(|(end, n)| format!("{end} {:.0}%", 100.0 * *n as f64 / total.max(1) as f64))
        .collect();
    println!(
        "  per event {:.1} decisions, {:.1} contents rendered, {:.2} messages sent; decisions ended: {}",
        result.decisions,
        result.renders,
        result.sends,
        ends.join(", ")
    );
    Ok(result)
}

/// The `q` quantile of a histogram of nanoseconds, in microseconds.
pub fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Decides `user`'s event as trigger does, timing `on_event` alone, and shows the
/// decisions to `seen` (untimed). Untimed around it,
/// as trigger does per batch of events: the user's ledger is decoded from its stored
/// bytes and the traits and segments arrive decoded with the event (here, copied), and
/// afterwards the ledger is trimmed and encoded to be written back. So the user's data is
/// as fresh in the caches as the service has it, not as stale as the last time this bench
/// came round to the user (`USERS` events ago).
fn decide(
    index: &MatchIndex,
    workspace: &Workspace,
    user: &mut User,
    event: &Event,
    now_ms: i64,
    seen: impl FnOnce(&[decision::Decision]),
) -> Duration {
    let timestamp = Timestamp {
        seconds: now_ms.div_euclid(1000),
        nanos: (now_ms.rem_euclid(1000) * 1_000_000) as i32,
    };
    let mut ledger = Ledger::decode_from(&user.ledger).expect("the bench wrote this ledger");
    let (traits, segment_ids) = (user.traits.clone(), user.segment_ids.clone());
    let subject = Subject {
        user_id: &user.id,
        traits: Some(&traits),
        segment_ids: &segment_ids,
        time_zone: user.time_zone,
        locale: user.locale,
        event: Some(EventView {
            message_id: &event.message_id,
            name: event.name,
            properties: Some(&event.properties),
            timestamp: Some(&timestamp),
        }),
    };
    let started = Instant::now();
    let decisions = decision::on_event(index, workspace, &subject, &mut ledger, now_ms);
    let took = started.elapsed();
    seen(&decisions);
    drop(decisions);
    ledger.trim(now_ms);
    user.ledger = ledger.to_bytes();
    took
}

/// `Code::RenderFailed` → `render_failed`.
fn short_code(code: DecisionReasonCode) -> String {
    code.as_str_name()
        .trim_start_matches("DECISION_REASON_CODE_")
        .to_ascii_lowercase()
}

/// An id as the services make them: a prefix and 32 hex digits.
fn id(prefix: &str, rng: &mut StdRng) -> String {
    format!("{prefix}_{:032x}", rng.random::<u128>())
}

/// [`EVENT_NAMES`] names of a product's events: `report_exported`, `invoice_paid`…
fn event_names() -> Vec<String> {
    const OBJECTS: [&str; 25] = [
        "page",
        "report",
        "invoice",
        "project",
        "task",
        "file",
        "comment",
        "invite",
        "plan",
        "dashboard",
        "alert",
        "export",
        "integration",
        "workspace",
        "team",
        "billing",
        "checkout",
        "cart",
        "order",
        "search",
        "video",
        "article",
        "profile",
        "api_key",
        "webhook",
    ];
    const VERBS: [&str; 20] = [
        "viewed",
        "created",
        "updated",
        "deleted",
        "shared",
        "opened",
        "closed",
        "completed",
        "started",
        "failed",
        "exported",
        "imported",
        "renamed",
        "archived",
        "restored",
        "liked",
        "paid",
        "downloaded",
        "uploaded",
        "scheduled",
    ];
    OBJECTS
        .iter()
        .flat_map(|o| VERBS.iter().map(move |v| format!("{o}_{v}")))
        .take(EVENT_NAMES)
        .collect()
}

fn string(s: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn list(values: &[&str]) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: values.iter().map(|v| string(*v)).collect(),
        })),
    }
}

fn object(fields: Vec<(&str, Value)>) -> Struct {
    Struct {
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn one_of<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values[rng.random_range(0..values.len())]
}

fn duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: 0,
    }
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms / 1000,
        nanos: 0,
    }
}

fn filter(property: &str, operator: ComparisonOperator, value: Option<Value>) -> PropertyFilter {
    PropertyFilter {
        property: property.into(),
        operator: operator as i32,
        value,
    }
}

/// One or two filters on the properties [`event`] sends.
fn property_filters(rng: &mut StdRng) -> Vec<PropertyFilter> {
    let mut filters = Vec::new();
    for _ in 0..rng.random_range(1..=2) {
        filters.push(match rng.random_range(0..4) {
            0 => filter(
                "source",
                ComparisonOperator::Eq,
                Some(string(one_of(rng, &["web", "ios", "android"]))),
            ),
            1 => filter(
                "amount",
                ComparisonOperator::Gt,
                Some(number(f64::from(rng.random_range(10..200u32)))),
            ),
            2 => filter("plan", ComparisonOperator::In, Some(list(&["pro", "team"]))),
            _ => filter("path", ComparisonOperator::StartsWith, Some(string("/app"))),
        });
    }
    filters
}

/// Who a campaign targets: included segments (half of them among the 20 large ones),
/// an excluded segment, a trait filter, or several of these.
fn audience(segments: &[String], rng: &mut StdRng) -> Audience {
    let pick = |rng: &mut StdRng| {
        let big = rng.random_bool(0.5);
        segments[if big {
            rng.random_range(0..20)
        } else {
            rng.random_range(20..segments.len())
        }]
        .clone()
    };
    let mut audience = Audience::default();
    if rng.random_bool(0.6) {
        for _ in 0..rng.random_range(1..=3) {
            audience.include_segment_ids.push(pick(rng));
        }
    }
    if rng.random_bool(0.3) {
        audience.exclude_segment_ids.push(pick(rng));
    }
    if rng.random_bool(0.4) || audience.include_segment_ids.is_empty() {
        audience.trait_filters.push(match rng.random_range(0..3) {
            0 => filter("plan", ComparisonOperator::Eq, Some(string("pro"))),
            1 => filter(
                "country",
                ComparisonOperator::In,
                Some(list(&["FR", "DE", "ES"])),
            ),
            _ => filter("first_name", ComparisonOperator::Exists, None),
        });
    }
    audience
}

/// An in-app content with Liquid in its title and body (and, sometimes, its action's URL).
fn content(i: usize, rng: &mut StdRng, locale: &str) -> MessageContent {
    let title = match (locale, rng.random_range(0..10)) {
        ("fr", _) => r#"Bonjour {{ user.first_name | default: "toi" }}"#.to_owned(),
        ("de", _) => r#"Hallo {{ user.first_name | default: "du" }}"#.to_owned(),
        (_, 0..5) => r#"Hi {{ user.first_name | default: "there" }}"#.to_owned(),
        (_, 5..8) => r#"{{ user.first_name | default: "Hey" }}, something new for you"#.to_owned(),
        _ => format!("What's new, part {}", i % 97),
    };
    let body = match rng.random_range(0..4) {
        0 => r#"Thanks for using {{ campaign.name }}, {{ user.first_name | default: "there" }}."#
            .to_owned(),
        1 => r#"{% if user.plan == "pro" %}Your Pro perks are waiting.{% else %}Upgrade to Pro for more.{% endif %}"#.to_owned(),
        2 => "You have {{ event.properties.amount | default: 0 }} credits left.".to_owned(),
        _ => format!("Take a look at feature {} in the dashboard.", i % 89),
    };
    let format = match rng.random_range(0..10) {
        0..4 => InAppFormat::Banner,
        4..7 => InAppFormat::Modal,
        7 => InAppFormat::Tooltip,
        _ => InAppFormat::InboxOnly,
    };
    let url = if rng.random_bool(0.3) {
        format!("https://app.example.com/c/{i}?u={{{{ user.id }}}}")
    } else {
        format!("https://app.example.com/c/{i}")
    };
    let mut actions = vec![Action {
        id: "open".into(),
        label: "Open".into(),
        kind: ActionKind::Url as i32,
        url,
    }];
    if rng.random_bool(0.5) {
        actions.push(Action {
            id: "later".into(),
            label: "Not now".into(),
            kind: ActionKind::Dismiss as i32,
            url: String::new(),
        });
    }
    MessageContent {
        body: Some(Body::InApp(InAppContent {
            format: format as i32,
            title,
            body,
            image_url: if rng.random_bool(0.3) {
                format!("https://cdn.example.com/img/{i}.png")
            } else {
                String::new()
            },
            actions,
            tooltip_target: (format == InAppFormat::Tooltip).then(|| TooltipTarget {
                selector: format!("#feature-{i}"),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// Campaign `i` of the bench's workspace (see the module's documentation for the mix).
fn campaign(i: usize, names: &[String], segments: &[String], rng: &mut StdRng) -> Campaign {
    let name = |rng: &mut StdRng| names[rng.random_range(0..names.len())].clone();
    let kind = match rng.random_range(0..100) {
        0..76 => trigger::Kind::Event(EventTrigger {
            event_name: name(rng),
            property_filters: if rng.random_bool(0.4) {
                property_filters(rng)
            } else {
                Vec::new()
            },
        }),
        76..86 => trigger::Kind::SegmentEntry(SegmentEntryTrigger {
            segment_id: segments[rng.random_range(0..segments.len())].clone(),
            ..Default::default()
        }),
        86..92 => trigger::Kind::Time(TimeTrigger {
            kind: Some(time_trigger::Kind::DelayAfterEvent(DelayAfterEvent {
                event_name: name(rng),
                property_filters: Vec::new(),
                delay: Some(duration(rng.random_range(1..=72) * HOUR)),
                cancel_event_name: if rng.random_bool(0.6) {
                    name(rng)
                } else {
                    String::new()
                },
            })),
        }),
        92..97 => trigger::Kind::Time(TimeTrigger {
            kind: Some(time_trigger::Kind::Inactivity(Inactivity {
                event_name: name(rng),
                expected_event_name: if rng.random_bool(0.8) {
                    name(rng)
                } else {
                    String::new()
                },
                within: Some(duration(rng.random_range(1..=7) * DAY)),
            })),
        }),
        _ => trigger::Kind::Goal(GoalTrigger {
            event_name: name(rng),
            occurrence: rng.random_range(1..=5),
            property_filters: Vec::new(),
        }),
    };
    let two = rng.random_bool(0.3);
    let variants = (0..if two { 2 } else { 1 })
        .map(|v| {
            let mut localizations = Vec::new();
            if rng.random_bool(0.25) {
                localizations.push(LocalizedContents {
                    locale: "fr".into(),
                    contents: vec![content(i, rng, "fr")],
                });
            }
            if rng.random_bool(0.1) {
                localizations.push(LocalizedContents {
                    locale: "de".into(),
                    contents: vec![content(i, rng, "de")],
                });
            }
            Variant {
                id: format!("v{v}"),
                name: format!("Variant {v}"),
                weight: 50,
                contents: vec![content(i, rng, "")],
                localizations,
            }
        })
        .collect();
    let created = T0 - rng.random_range(DAY..180 * DAY);
    Campaign {
        id: id("cmp", rng),
        name: format!("Campaign {i}"),
        status: CampaignStatus::Active as i32,
        trigger: Some(Trigger { kind: Some(kind) }),
        audience: rng.random_bool(0.5).then(|| audience(segments, rng)),
        variants,
        control_weight: if rng.random_bool(0.2) { 10 } else { 0 },
        frequency_cap: match rng.random_range(0..10) {
            0..3 => Some(FrequencyCap {
                max_deliveries: 3,
                window: Some(duration(DAY)),
            }),
            3 => Some(FrequencyCap {
                max_deliveries: 1,
                window: None,
            }),
            _ => None,
        },
        priority: if rng.random_bool(0.15) {
            rng.random_range(1..=5)
        } else {
            0
        },
        quiet_hours: rng.random_bool(0.05).then(|| QuietHours {
            start_local_time: "21:00".into(),
            end_local_time: "08:00".into(),
            behavior: QuietHoursBehavior::Delay as i32,
            default_time_zone: "Europe/Paris".into(),
            channels: vec![Channel::InApp as i32],
            release_jitter: Some(duration(30 * MINUTE)),
        }),
        schedule: rng.random_bool(0.1).then(|| Schedule {
            start_time: Some(timestamp(T0 - 30 * DAY)),
            end_time: Some(timestamp(T0 + 30 * DAY)),
        }),
        conversion_goal: rng.random_bool(0.3).then(|| ConversionGoal {
            event_name: name(rng),
            attribution_window: None,
        }),
        create_time: Some(timestamp(created)),
        update_time: Some(timestamp(created)),
        activate_time: Some(timestamp(created)),
        message_ttl: rng.random_bool(0.5).then(|| duration(7 * DAY)),
        entry: match rng.random_range(0..10) {
            0..5 => None,
            5..7 => Some(Entry {
                policy: EntryPolicy::Once as i32,
                cooldown: None,
            }),
            _ => Some(Entry {
                policy: EntryPolicy::Cooldown as i32,
                cooldown: Some(duration([HOUR, 6 * HOUR, DAY][rng.random_range(0..3)])),
            }),
        },
        exempt_from_cap_rules: rng.random_bool(0.02),
        critical: rng.random_bool(0.02),
        ..Default::default()
    }
}

/// The workspace's cap rules: 2 modals per calendar day, 6 in-app messages per rolling
/// day.
fn cap_rules() -> Vec<CapRule> {
    vec![
        CapRule {
            id: "cap_modals".into(),
            name: "At most 2 modals a day".into(),
            max_messages: 2,
            window: Some(cap_rule::Window::CalendarDays(1)),
            channel: Channel::InApp as i32,
            in_app_format: InAppFormat::Modal as i32,
            default_time_zone: "Europe/Paris".into(),
            ..Default::default()
        },
        CapRule {
            id: "cap_in_app".into(),
            name: "At most 6 in-app messages a day".into(),
            max_messages: 6,
            window: Some(cap_rule::Window::Rolling(duration(DAY))),
            channel: Channel::InApp as i32,
            ..Default::default()
        },
    ]
}

/// The workspace's settings: the default minimum in-app interval, night-time quiet
/// hours (which hold no in-app message), English by default.
fn settings() -> TriggerSettings {
    TriggerSettings {
        min_in_app_interval: None,
        quiet_hours: Some(QuietHours {
            start_local_time: "22:00".into(),
            end_local_time: "08:00".into(),
            default_time_zone: "Europe/Paris".into(),
            ..Default::default()
        }),
        default_locale: "en".into(),
    }
}

/// User `n`: traits (a first name four times in five), a dozen segments (each of the 20
/// large ones with a chance of 30%, the others 3%), a time zone and a locale from the
/// event's context half the time, and an empty ledger.
fn user(n: usize, segments: &[String], rng: &mut StdRng) -> User {
    const FIRST_NAMES: [&str; 8] = [
        "Ada", "Grace", "Alan", "Linus", "Marie", "Emil", "Zoé", "Jon",
    ];
    let mut fields = vec![
        (
            "plan",
            string(one_of(rng, &["free", "free", "pro", "team", "enterprise"])),
        ),
        (
            "country",
            string(one_of(rng, &["FR", "DE", "ES", "US", "GB", "BR"])),
        ),
        ("email", string(format!("user{n}@example.com"))),
        ("seats", number(f64::from(rng.random_range(1..50u32)))),
    ];
    if rng.random_bool(0.8) {
        fields.push(("first_name", string(one_of(rng, &FIRST_NAMES))));
    }
    let locale = one_of(rng, &["en", "en-US", "fr", "fr-CA", "de", "es"]);
    fields.push(("locale", string(locale)));
    let zone = one_of(
        rng,
        &["Europe/Paris", "Europe/Berlin", "America/New_York", "UTC"],
    );
    fields.push(("time_zone", string(zone)));
    let segment_ids = segments
        .iter()
        .enumerate()
        .filter(|(s, _)| rng.random_bool(if *s < 20 { 0.3 } else { 0.03 }))
        .map(|(_, id)| id.clone())
        .collect();
    let from_context = rng.random_bool(0.5);
    User {
        id: format!("user-{n}"),
        traits: object(fields),
        segment_ids,
        time_zone: if from_context { zone } else { "" },
        locale: if from_context { locale } else { "" },
        ledger: Vec::new(),
    }
}

/// A user's event, before the clock and the user are set.
struct Event<'a> {
    message_id: String,
    name: &'a str,
    properties: Struct,
}

/// An event: a name drawn uniformly, with the properties the campaigns' filters read.
fn event<'a>(message_id: String, names: &'a [String], rng: &mut StdRng) -> Event<'a> {
    let name = &names[rng.random_range(0..names.len())];
    let properties = object(vec![
        (
            "source",
            string(one_of(rng, &["web", "web", "ios", "android"])),
        ),
        ("plan", string(one_of(rng, &["free", "pro", "team"]))),
        (
            "amount",
            number(f64::from(rng.random_range(0..30_000u32)) / 100.0),
        ),
        (
            "path",
            string(one_of(
                rng,
                &["/app/dashboard", "/app/settings", "/pricing"],
            )),
        ),
    ]);
    Event {
        message_id,
        name,
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_campaigns::{budget_rules, validate};

    /// The bench's campaigns and budget stay valid ACTIVE campaigns and settings as the
    /// contract's checks change, so the bench decides what a workspace could hold.
    #[test]
    fn the_bench_campaigns_are_valid_active_campaigns() {
        let parser = render::parser();
        let mut rng = StdRng::seed_from_u64(3);
        let names = event_names();
        assert_eq!(names.len(), EVENT_NAMES);
        let segments: Vec<String> = (0..SEGMENTS).map(|_| id("seg", &mut rng)).collect();
        for i in 0..500 {
            let c = campaign(i, &names, &segments, &mut rng);
            let mut violations = validate::campaign(&parser, &c);
            violations.extend(validate::completeness(&c));
            assert!(violations.is_empty(), "campaign {i}: {violations:?}");
        }
        for rule in cap_rules() {
            assert!(budget_rules::cap_rule(&rule).is_empty(), "{rule:?}");
        }
        assert!(budget_rules::settings(&settings()).is_empty());
    }

    /// A small run decides, renders and sends: the figures measure real decisions.
    #[test]
    fn a_small_run_decides_renders_and_sends() {
        let r = run(2_000, 3_000).unwrap();
        assert_eq!(r.campaigns, 2_000);
        assert!(r.per_event > 1.0, "{}", r.per_event);
        assert!(
            r.renders > 0.0 && r.sends > 0.0,
            "{} {}",
            r.renders,
            r.sends
        );
        assert_eq!(r.decide.len(), 3_000);
        assert!(r.ends.iter().any(|(end, _)| end == "sent"), "{:?}", r.ends);
    }
}
