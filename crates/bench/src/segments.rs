//! Segment evaluation in process: no services, no database, storage not counted. Two
//! figures of the segmentation service's CPU work:
//!
//! - **per event**: a workspace of 100 segments written in the rule language, 1,000
//!   users each with a month of history (a few hundred events and some interactions with
//!   campaign messages, counted and evaluated as the service does it), then
//!   `--segment-events` events with varied names and properties for random users, the
//!   clock moving forward at each user's pace. Each user's profile is kept encoded, as
//!   stored, and decoded just before its event; the event is timed from `Engine::dirty`
//!   through `record_event` and `evaluate`, what the service does per event between
//!   loading the user and writing it back. Decoding and encoding are timed apart.
//! - **backfill**: a workspace of 10 segments evaluated from scratch
//!   (`engine.everything()`) for `--segment-users` users, one after the other on one
//!   thread, in batches of 500 as the service's backfill loads them. A batch is 500
//!   profiles with a month of history (cloned once from a few generated ones, their
//!   memberships emptied before each batch, untimed), each with a trait set drawn from
//!   a thousand generated ones.
//!
//! Everything is generated from fixed seeds, so two runs evaluate the same work.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use herald_proto::segmentation::v1::EngagementKind;
use herald_rules::engine::{Engine, Profile, SegmentDef};
use prost::Message;
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::progress;

const MINUTE: i64 = 60_000;
const DAY: i64 = 1440 * MINUTE;
/// When the measured events start (2026-06-01T00:00:00Z); history is the month before.
const T0: i64 = 1_780_272_000_000;
/// Segments of the per-event workspace.
pub const EVENT_SEGMENTS: usize = 100;
/// Segments of the backfill's workspace.
pub const BACKFILL_SEGMENTS: usize = 10;
/// Users the measured events are spread over.
pub const USERS: usize = 1_000;
/// History before the measured events.
const HISTORY: i64 = 30 * DAY;
/// A user's events per day, on average, in history and while measured.
const EVENTS_PER_DAY: i64 = 10;
/// Generated users whose profiles the backfill's users are cloned from.
const SHAPES: usize = 64;
/// Generated trait sets the backfill's users are cloned from.
const TRAIT_SETS: usize = 1_024;
/// Users the service's backfill loads, then evaluates, at a time.
const BATCH: usize = 500;

/// What the per-event phase measured.
pub struct EventEval {
    pub segments: usize,
    pub users: usize,
    pub events: u64,
    /// Nanoseconds per event: dirty set, record_event, evaluate.
    pub per_event: Histogram<u64>,
    /// Nanoseconds per event to decode the profile before and encode it after.
    pub codec: Histogram<u64>,
    /// Memberships that changed (entries and exits) over the measured events.
    pub changes: u64,
    /// Segments a user is a member of at the end, on average over the users.
    pub memberships: f64,
    /// A user's encoded `Profile` at the end: mean and largest, in bytes.
    pub profile_bytes: f64,
    pub profile_bytes_max: usize,
}

/// What the backfill phase measured.
pub struct Backfill {
    pub users: u64,
    pub segments: usize,
    /// Evaluation time only, summed over the batches.
    pub took: Duration,
    /// Memberships the backfill created, per user on average.
    pub memberships: f64,
}

/// The segment phases of a run; a phase skipped with a count of 0 is `None`.
pub struct SegmentsResult {
    pub eval: Option<EventEval>,
    pub backfill: Option<Backfill>,
}

/// Runs both phases (CPU only; call it off the async threads).
pub fn run(events: u64, users: u64) -> anyhow::Result<SegmentsResult> {
    let eval = if events > 0 {
        println!(
            "[segments] {EVENT_SEGMENTS} segments, {USERS} users with {} days of history; timing {events} events, record_event + evaluate…",
            HISTORY / DAY
        );
        let e = per_event(events)?;
        println!(
            "  p50 {:.2} µs, p99 {:.2} µs per event, {} memberships changed; a user is in {:.1} of {} segments on average",
            us(&e.per_event, 0.5),
            us(&e.per_event, 0.99),
            e.changes,
            e.memberships,
            e.segments,
        );
        println!(
            "  profile {:.0} bytes encoded on average ({} at most); decoding it and encoding it back p50 {:.2} µs, p99 {:.2} µs",
            e.profile_bytes,
            e.profile_bytes_max,
            us(&e.codec, 0.5),
            us(&e.codec, 0.99),
        );
        Some(e)
    } else {
        None
    };
    let backfill = if users > 0 {
        println!(
            "[segments] backfill: {users} users x {BACKFILL_SEGMENTS} segments, evaluation only…"
        );
        let b = backfill(users)?;
        println!(
            "  {:.0} ms ({:.2} µs per user), {:.1} memberships per user",
            b.took.as_secs_f64() * 1000.0,
            b.took.as_secs_f64() * 1e6 / b.users as f64,
            b.memberships
        );
        Some(b)
    } else {
        None
    };
    Ok(SegmentsResult { eval, backfill })
}

/// The `q` quantile of a histogram of nanoseconds, in microseconds.
pub fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A user as the service stores it: traits, and the profile encoded.
struct User {
    traits: Struct,
    profile: Vec<u8>,
}

fn per_event(events: u64) -> anyhow::Result<EventEval> {
    let mut rng = StdRng::seed_from_u64(1);
    let campaigns = campaign_ids(&mut rng);
    let engine = engine(&segment_rules(EVENT_SEGMENTS, &campaigns, &mut rng))?;
    let mut users: Vec<User> = (0..USERS)
        .map(|_| {
            let traits = traits(&mut rng);
            let profile = history(&engine, &traits, &campaigns, &mut rng).encode_to_vec();
            User { traits, profile }
        })
        .collect();

    let mut per_event = Histogram::<u64>::new(3)?;
    let mut codec = Histogram::<u64>::new(3)?;
    let mut changes = 0u64;
    // Events of all users together arrive USERS times as often as one user's.
    let mean_step = DAY / (EVENTS_PER_DAY * USERS as i64);
    let mut now = T0;
    for _ in 0..events {
        now += rng.random_range(0..=2 * mean_step);
        let user = &mut users[rng.random_range(0..USERS)];
        let (name, properties) = event(&mut rng);
        // Loaded as the service loads it: decoded just before, so as warm in the cache.
        let decoding = Instant::now();
        let mut profile = Profile::decode(user.profile.as_slice())?;
        let decoded = decoding.elapsed();
        // The service's timer moves the answers due to change by time; not an event's
        // work, so untimed.
        if profile.next_change_ms().is_some_and(|due| due <= now) {
            let mut dirty = engine.dirty();
            engine.time_passed(&mut profile, &mut dirty, now);
            engine.evaluate(&mut profile, Some(&user.traits), dirty, now);
        }
        let started = Instant::now();
        let mut dirty = engine.dirty();
        engine.record_event(
            &mut profile,
            &mut dirty,
            name,
            properties.as_ref(),
            now,
            now,
        );
        let changed = engine.evaluate(&mut profile, Some(&user.traits), dirty, now);
        let took = started.elapsed();
        per_event.record((took.as_nanos() as u64).max(1))?;
        changes += changed.len() as u64;
        let encoding = Instant::now();
        user.profile.clear();
        profile.encode(&mut user.profile)?;
        codec.record(((decoded + encoding.elapsed()).as_nanos() as u64).max(1))?;
    }

    let sizes: Vec<usize> = users.iter().map(|u| u.profile.len()).collect();
    let mut members = 0;
    for user in &users {
        let profile = Profile::decode(user.profile.as_slice())?;
        members += profile.segments.values().filter(|m| m.member).count();
    }
    Ok(EventEval {
        segments: engine.len(),
        users: USERS,
        events,
        per_event,
        codec,
        changes,
        memberships: members as f64 / USERS as f64,
        profile_bytes: sizes.iter().sum::<usize>() as f64 / USERS as f64,
        profile_bytes_max: sizes.iter().copied().max().unwrap_or(0),
    })
}

fn backfill(users: u64) -> anyhow::Result<Backfill> {
    let mut rng = StdRng::seed_from_u64(2);
    let campaigns = campaign_ids(&mut rng);
    let engine = engine(&segment_rules(BACKFILL_SEGMENTS, &campaigns, &mut rng))?;
    // Users with history from before the segments existed: series, no memberships.
    let shapes: Vec<Profile> = (0..SHAPES)
        .map(|_| {
            let traits = traits(&mut rng);
            let mut profile = history(&engine, &traits, &campaigns, &mut rng);
            profile.segments.clear();
            profile
        })
        .collect();
    let trait_sets: Vec<Struct> = (0..TRAIT_SETS).map(|_| traits(&mut rng)).collect();
    // One batch of profiles, as the service loads BATCH users at a time, evaluated
    // afresh for every batch with other traits: the evaluation writes only memberships.
    let mut batch: Vec<Profile> = (0..BATCH)
        .map(|_| shapes[rng.random_range(0..SHAPES)].clone())
        .collect();

    let done = Arc::new(AtomicU64::new(0));
    let _progress = progress::counted(done.clone(), users, "users evaluated");
    let mut took = Duration::ZERO;
    let mut entered = 0u64;
    let mut left = users;
    while left > 0 {
        let n = left.min(BATCH as u64) as usize;
        let traits: Vec<&Struct> = (0..n)
            .map(|_| &trait_sets[rng.random_range(0..TRAIT_SETS)])
            .collect();
        for profile in &mut batch[..n] {
            profile.segments = HashMap::new();
        }
        let started = Instant::now();
        for (profile, traits) in batch.iter_mut().zip(traits) {
            let changes = engine.evaluate(profile, Some(traits), engine.everything(), T0);
            entered += changes.len() as u64;
        }
        took += started.elapsed();
        left -= n as u64;
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(Backfill {
        users,
        segments: engine.len(),
        took,
        memberships: entered as f64 / users as f64,
    })
}

/// Compiles `rules` as the service does: parsed from text, checked, then the engine.
fn engine(rules: &[(String, String)]) -> anyhow::Result<Engine> {
    let mut defs = Vec::with_capacity(rules.len());
    for (id, text) in rules {
        let rule = herald_rules::parse(text)
            .map_err(|e| anyhow::anyhow!("bench segment {text:?} does not parse: {e}"))?;
        herald_rules::check(&rule)
            .map_err(|v| anyhow::anyhow!("bench segment {text:?} fails the checks: {v:?}"))?;
        defs.push(SegmentDef {
            id: id.clone(),
            rule,
        });
    }
    let (engine, skipped) = Engine::new(defs);
    anyhow::ensure!(skipped.is_empty(), "bench segments skipped: {skipped:?}");
    Ok(engine)
}

/// An id as the services make them: a prefix and 32 hex digits.
fn id(prefix: &str, rng: &mut StdRng) -> String {
    format!("{prefix}_{:032x}", rng.random::<u128>())
}

fn campaign_ids(rng: &mut StdRng) -> Vec<String> {
    (0..5).map(|_| id("cmp", rng)).collect()
}

/// `n` segments over a handful of event names and traits: twenty kinds of rule, each in
/// up to five variants (`n` = 100 has them all; `n` = 10 one of each of the first ten,
/// which include a trait, `days_since`, `performed` with a filter, a window and a count,
/// `not performed … within`, `clicked(…, within: …)`, `any`, `all` and `in_segment`).
/// `in_segment` refers to an earlier segment of the same twenty, so every prefix of the
/// list is complete.
fn segment_rules(n: usize, campaigns: &[String], rng: &mut StdRng) -> Vec<(String, String)> {
    const PLANS: [&str; 5] = ["free", "pro", "team", "enterprise", "trial"];
    const FEATURES: [&str; 5] = ["reports", "alerts", "api", "sso", "export"];
    const DOMAINS: [&str; 5] = [
        "acme.com",
        "globex.com",
        "initech.com",
        "umbrella.com",
        "hooli.com",
    ];
    let ids: Vec<String> = (0..n).map(|_| id("seg", rng)).collect();
    (0..n)
        .map(|i| {
            let k = (i / 20) % 5;
            let pick = |values: [i64; 5]| values[k];
            let cmp = &campaigns[k % campaigns.len()];
            let earlier = |back: usize| &ids[i - back];
            let text = match i % 20 {
                0 => format!(
                    r#"plan == "{}" and days_since(signed_up_at) >= {}"#,
                    PLANS[k],
                    pick([1, 3, 7, 14, 30])
                ),
                1 => format!(
                    r#"performed("checkout", where: amount > {}, within: 7d, at_least: {})"#,
                    pick([20, 50, 100, 200, 400]),
                    pick([1, 1, 2, 2, 3])
                ),
                2 => format!(
                    r#"not performed("login", within: {}d)"#,
                    pick([3, 7, 14, 21, 30])
                ),
                3 => format!(r#"clicked("{cmp}", within: 7d)"#),
                4 => format!(
                    r#"country in ["FR", "DE", "ES"] and performed("page_viewed", within: 1d, at_least: {})"#,
                    pick([2, 3, 5, 8, 12])
                ),
                5 => format!(
                    "any(company.size >= {}, seats > {})",
                    pick([10, 50, 200, 1000, 5000]),
                    pick([2, 5, 10, 25, 50])
                ),
                6 => format!(
                    r#"performed("feature_used", where: feature == "{}", within: 30d, at_least: {})"#,
                    FEATURES[k],
                    pick([1, 3, 5, 2, 4])
                ),
                7 => format!(
                    r#"plan == "trial" and hours_until(trial_ends_at) < {}"#,
                    pick([24, 48, 72, 120, 168])
                ),
                8 => format!(
                    r#"in_segment("{}") and performed("invite_sent", within: 14d)"#,
                    earlier(8)
                ),
                9 => format!(
                    "all(exists(company.name), not_exists(churned_at), days_since(last_paid_at) <= {})",
                    pick([7, 14, 30, 60, 90])
                ),
                10 => format!(
                    r#"performed("page_viewed", where: path starts_with "/pricing", within: 7d, at_least: {}) and plan != "enterprise""#,
                    pick([1, 2, 3, 5, 8])
                ),
                11 => format!(
                    r#"not performed("integration_connected") and days_since(signed_up_at) >= {}"#,
                    pick([2, 5, 10, 20, 40])
                ),
                12 => format!(
                    r#"dismissed("{cmp}", at_least: 2) or displayed("{cmp}", within: 1d, at_least: 3)"#
                ),
                13 => format!(
                    r#"in_segment("{}") or in_segment("{}")"#,
                    earlier(12),
                    earlier(10)
                ),
                14 => format!(
                    r#"role in ["admin", "owner"] and performed("export_created", within: {}d)"#,
                    pick([7, 14, 14, 30, 30])
                ),
                15 => r#"performed("support_ticket", where: priority == "high", within: 30d) and not performed("checkout", within: 14d)"#.to_owned(),
                16 => format!(
                    r#"email ends_with "@{}" or (company.size >= 500 and exists(phone))"#,
                    DOMAINS[k]
                ),
                17 => format!(
                    r#"performed("login", within: 7d, at_least: {})"#,
                    pick([1, 3, 5, 10, 20])
                ),
                18 => format!(
                    r#"any(performed("checkout", within: 30d), clicked("{cmp}", within: 7d)) and days_since(signed_up_at) >= 7"#
                ),
                _ => format!(
                    r#"not in_segment("{}") and performed("feature_used", within: 7d)"#,
                    earlier(17)
                ),
            };
            (ids[i].clone(), text)
        })
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

fn object(fields: Vec<(&str, Value)>) -> Struct {
    Struct {
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn one_of<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values[rng.random_range(0..values.len())]
}

/// A user's traits: plan, country, role, company, seats, email, phone, and the instants
/// the relative-time rules read (RFC 3339 strings, and seconds since the epoch).
fn traits(rng: &mut StdRng) -> Struct {
    let plan = match rng.random_range(0..100) {
        0..40 => "free",
        40..65 => "pro",
        65..80 => "team",
        80..90 => "enterprise",
        _ => "trial",
    };
    let n = rng.random_range(0..1_000_000u32);
    let mut fields = vec![
        ("plan", string(plan)),
        (
            "country",
            string(one_of(
                rng,
                &["FR", "DE", "ES", "US", "GB", "IT", "NL", "BR"],
            )),
        ),
        (
            "role",
            string(one_of(
                rng,
                &["admin", "owner", "member", "member", "viewer"],
            )),
        ),
        ("seats", number(f64::from(rng.random_range(1..60u32)))),
        (
            "email",
            string(format!(
                "user{n}@{}",
                one_of(
                    rng,
                    &[
                        "acme.com",
                        "globex.com",
                        "initech.com",
                        "gmail.com",
                        "example.org"
                    ]
                )
            )),
        ),
        (
            "signed_up_at",
            string(rfc3339(T0 - rng.random_range(DAY..200 * DAY))),
        ),
    ];
    let size = 10f64.powf(rng.random_range(0.0..4.0)).round();
    let company = if rng.random_bool(0.8) {
        vec![
            ("name", string(format!("Company {n}"))),
            ("size", number(size)),
        ]
    } else {
        vec![("size", number(size))]
    };
    fields.push((
        "company",
        Value {
            kind: Some(Kind::StructValue(object(company))),
        },
    ));
    if rng.random_bool(0.5) {
        fields.push(("phone", string(format!("+3361234{n:04}"))));
    }
    if rng.random_bool(0.05) {
        fields.push(("churned_at", string(rfc3339(T0 - 3 * DAY))));
    }
    if plan == "trial" {
        let ends = T0 + rng.random_range(-2 * DAY..14 * DAY);
        fields.push(("trial_ends_at", string(rfc3339(ends))));
    } else if plan != "free" {
        let paid = T0 - rng.random_range(0..90 * DAY);
        fields.push(("last_paid_at", number((paid / 1000) as f64)));
    }
    object(fields)
}

/// An event of a web product: mostly page views and feature use, some logins and
/// checkouts, a few rare ones, and some no segment reads.
fn event(rng: &mut StdRng) -> (&'static str, Option<Struct>) {
    match rng.random_range(0..100) {
        0..35 => {
            let path = one_of(
                rng,
                &[
                    "/pricing",
                    "/pricing/teams",
                    "/docs",
                    "/app/dashboard",
                    "/app/settings",
                    "/blog",
                ],
            );
            (
                "page_viewed",
                Some(object(vec![
                    ("path", string(path)),
                    (
                        "referrer",
                        string(one_of(rng, &["", "google", "newsletter"])),
                    ),
                ])),
            )
        }
        35..55 => (
            "feature_used",
            Some(object(vec![(
                "feature",
                string(one_of(rng, &["reports", "alerts", "api", "sso", "export"])),
            )])),
        ),
        55..67 => (
            "login",
            Some(object(vec![(
                "method",
                string(one_of(rng, &["password", "sso"])),
            )])),
        ),
        67..75 => (
            "checkout",
            Some(object(vec![
                (
                    "amount",
                    number(f64::from(rng.random_range(500..60_000u32)) / 100.0),
                ),
                ("currency", string(one_of(rng, &["EUR", "USD"]))),
            ])),
        ),
        75..80 => ("invite_sent", None),
        80..85 => (
            "export_created",
            Some(object(vec![("format", string("csv"))])),
        ),
        85..88 => (
            "support_ticket",
            Some(object(vec![(
                "priority",
                string(one_of(rng, &["low", "normal", "normal", "high"])),
            )])),
        ),
        88..89 => ("integration_connected", None),
        89..95 => ("settings_changed", None),
        _ => ("email_opened", None),
    }
}

/// A user's profile after `HISTORY` of events and interactions with campaign messages
/// (from sign-up, if later), each counted and evaluated as it arrived; the first
/// evaluates every segment, as for a user the service has not seen.
fn history(engine: &Engine, traits: &Struct, campaigns: &[String], rng: &mut StdRng) -> Profile {
    let signed_up = match traits
        .fields
        .get("signed_up_at")
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(s)) => s
            .parse::<jiff::Timestamp>()
            .map_or(T0 - HISTORY, |t| t.as_millisecond()),
        _ => T0 - HISTORY,
    };
    let start = signed_up.max(T0 - HISTORY);
    // Between half and twice the average pace.
    let days = (T0 - start) as f64 / DAY as f64;
    let events = (days * EVENTS_PER_DAY as f64 * rng.random_range(0.5..2.0)).round() as usize;
    let interactions = events / 10;
    enum Item {
        Event(&'static str, Option<Struct>),
        Interaction(EngagementKind, usize),
    }
    let mut items: Vec<(i64, Item)> = Vec::with_capacity(events + interactions);
    for _ in 0..events {
        let (name, properties) = event(rng);
        items.push((rng.random_range(start..T0), Item::Event(name, properties)));
    }
    for _ in 0..interactions {
        let kind = match rng.random_range(0..10) {
            0..6 => EngagementKind::Displayed,
            6..8 => EngagementKind::Clicked,
            _ => EngagementKind::Dismissed,
        };
        let campaign = rng.random_range(0..campaigns.len());
        items.push((
            rng.random_range(start..T0),
            Item::Interaction(kind, campaign),
        ));
    }
    items.sort_by_key(|(at, _)| *at);
    let mut profile = Profile::default();
    for (n, (at, item)) in items.into_iter().enumerate() {
        let mut dirty = if n == 0 {
            engine.everything()
        } else {
            engine.dirty()
        };
        match item {
            Item::Event(name, properties) => {
                engine.record_event(&mut profile, &mut dirty, name, properties.as_ref(), at, at)
            }
            Item::Interaction(kind, c) => {
                engine.record_interaction(&mut profile, &mut dirty, kind, &campaigns[c], at, at)
            }
        }
        engine.evaluate(&mut profile, Some(traits), dirty, at);
    }
    // The timer the service keeps per user: answers due to change by time, moved to now.
    let mut dirty = engine.dirty();
    engine.time_passed(&mut profile, &mut dirty, T0);
    engine.evaluate(&mut profile, Some(traits), dirty, T0);
    profile
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's segments stay valid rules as the language changes, and each
    /// `in_segment` names a segment of its own workspace.
    #[test]
    fn the_bench_segments_parse_check_and_compile() {
        for n in [EVENT_SEGMENTS, BACKFILL_SEGMENTS] {
            let mut rng = StdRng::seed_from_u64(1);
            let campaigns = campaign_ids(&mut rng);
            let rules = segment_rules(n, &campaigns, &mut rng);
            let engine = engine(&rules).unwrap();
            assert_eq!(engine.len(), n);
            for (_, text) in &rules {
                for (at, _) in text.match_indices("in_segment(\"") {
                    let id = &text[at + 12..at + 12 + 36];
                    assert!(rules.iter().any(|(other, _)| other == id), "{text}");
                }
            }
        }
    }
}
