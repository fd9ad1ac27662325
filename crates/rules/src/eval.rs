//! Evaluating a rule for one user at one instant: [`compile`] turns a checked tree into
//! a [`Compiled`] rule once (paths parsed, operators resolved, each counted thing named
//! by its [`series key`](event_key)); [`eval`] answers whether the user matches now and
//! the earliest instant at which the answer can change by time alone.
//!
//! What changes by time alone: a window sliding past a counted minute (`performed`,
//! `not performed … within`, engagement with `within`) and a relative-time threshold
//! (`days_since(…) >= 5`). Traits, events and interactions change only when something
//! arrives, and then the caller evaluates again.

use herald_conditions::{Condition, Operator, Path};
use herald_proto::segmentation::v1::not_performed_condition::Since;
use herald_proto::segmentation::v1::rule::Kind;
use herald_proto::segmentation::v1::{
    CountComparison, EngagementCondition, EngagementKind, PerformedCondition, PropertyFilter, Rule,
    TimeDirection, TimeUnit,
};
use prost_types::Struct;
use prost_types::value::Kind as ValueKind;

use crate::series::{MINUTE_MS, Series};

/// The answer of [`eval`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the user matches the rule now.
    pub member: bool,
    /// The earliest instant (ms since the epoch) after now at which the answer can
    /// change without anything arriving; `None` when only an arrival can change it.
    pub next_change_ms: Option<i64>,
}

impl Outcome {
    fn fixed(member: bool) -> Outcome {
        Outcome {
            member,
            next_change_ms: None,
        }
    }
}

/// What a rule is evaluated against.
pub trait Facts {
    /// The user's merged traits.
    fn traits(&self) -> Option<&Struct>;
    /// The user's series of `key` (see [`event_key`], [`filtered_key`],
    /// [`engagement_key`]); `None` when nothing was counted.
    fn series(&self, key: &str) -> Option<&Series>;
    /// The user's membership of another segment, evaluated before this one, with the
    /// instant it can next change by time.
    fn segment(&self, segment_id: &str) -> Outcome;
    /// The instant held by the trait `value` (see [`instant_ms`]); an implementation may
    /// remember it for the rest of an evaluation, as several segments read one trait.
    fn instant(&self, value: &prost_types::Value) -> Option<i64> {
        instant_ms(value)
    }
}

/// The instants of trait values already read during one evaluation of a user, by the
/// value's address (the traits do not change while a user is evaluated).
#[derive(Debug, Default)]
pub struct Instants(std::cell::RefCell<Vec<(usize, Option<i64>)>>);

impl Instants {
    /// [`instant_ms`] of `value`, parsed once per evaluation.
    pub fn of(&self, value: &prost_types::Value) -> Option<i64> {
        let key = std::ptr::from_ref(value) as usize;
        if let Some((_, at)) = self.0.borrow().iter().find(|(k, _)| *k == key) {
            return *at;
        }
        let at = instant_ms(value);
        self.0.borrow_mut().push((key, at));
        at
    }
}

/// Something a rule counts, and how it is fed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    /// The series key.
    pub key: String,
    /// Where its occurrences come from.
    pub source: Source,
    /// The longest window the rule counts it in; `None` counts all-time only.
    pub window_ms: Option<i64>,
}

/// Where a series' occurrences come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Events with this name whose properties match every filter (none: every event).
    Event {
        name: String,
        filters: Vec<Condition>,
    },
    /// Interactions of this kind with the messages of this campaign.
    Engagement {
        kind: EngagementKind,
        campaign_id: String,
    },
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct Compiled {
    root: Node,
    /// The series the rule counts, each once, with the longest window it uses.
    pub series: Vec<SeriesSpec>,
    /// The top-level trait keys the rule reads (a change to another key cannot change
    /// its answer).
    pub trait_keys: Vec<String>,
    /// The segments the rule refers to.
    pub segments: Vec<String>,
    /// Whether the answer can change by time alone.
    pub time_dependent: bool,
}

#[derive(Debug, Clone)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Trait(Condition),
    Relative {
        path: Path,
        unit_ms: i64,
        until: bool,
        operator: Operator,
        value: i64,
    },
    Count {
        series: usize,
        comparison: Comparison,
        within_ms: Option<i64>,
    },
    NotSince {
        series: usize,
        since: Cutoff,
    },
    Segment(String),
}

#[derive(Debug, Clone, Copy)]
enum Cutoff {
    Ever,
    Time(i64),
    Within(i64),
}

/// A count compared with N.
#[derive(Debug, Clone, Copy)]
enum Comparison {
    AtLeast(u64),
    AtMost(u64),
    Exactly(u64),
}

impl Comparison {
    fn new(comparison: i32, count: u32) -> Comparison {
        let n = u64::from(count);
        match CountComparison::try_from(comparison) {
            Ok(CountComparison::AtMost) => Comparison::AtMost(n),
            Ok(CountComparison::Exactly) => Comparison::Exactly(n),
            _ => Comparison::AtLeast(n.max(1)),
        }
    }

    fn holds(self, count: u64) -> bool {
        match self {
            Comparison::AtLeast(n) => count >= n,
            Comparison::AtMost(n) => count <= n,
            Comparison::Exactly(n) => count == n,
        }
    }
}

/// The key of the series of every event named `name`.
pub fn event_key(name: &str) -> String {
    filtered_key(name, &[])
}

/// The key of the series of events named `name` matching `filters` (in any order).
pub fn filtered_key(name: &str, filters: &[PropertyFilter]) -> String {
    let mut filters = filters.to_vec();
    filters.sort_by_cached_key(|f| {
        crate::format(&Rule {
            kind: Some(Kind::Performed(PerformedCondition {
                event_name: String::new(),
                property_filters: vec![f.clone()],
                ..Default::default()
            })),
        })
    });
    filters.dedup();
    crate::format(&Rule {
        kind: Some(Kind::Performed(PerformedCondition {
            event_name: name.to_owned(),
            property_filters: filters,
            ..Default::default()
        })),
    })
}

/// The key of the series of `kind` interactions with `campaign_id`'s messages.
pub fn engagement_key(kind: EngagementKind, campaign_id: &str) -> String {
    crate::format(&Rule {
        kind: Some(Kind::Engagement(EngagementCondition {
            kind: kind as i32,
            campaign_id: campaign_id.to_owned(),
            ..Default::default()
        })),
    })
}

/// Compiles a rule that passed [`crate::check`]; an unchecked tree may be refused with
/// a description of what is wrong.
pub fn compile(rule: &Rule) -> Result<Compiled, String> {
    let mut compiled = Compiled {
        root: Node::All(Vec::new()),
        series: Vec::new(),
        trait_keys: Vec::new(),
        segments: Vec::new(),
        time_dependent: false,
    };
    compiled.root = node(rule, &mut compiled)?;
    Ok(compiled)
}

fn window(d: Option<&prost_types::Duration>) -> Option<i64> {
    d.map(herald_core::time::duration_ms)
}

fn add_series(
    compiled: &mut Compiled,
    key: String,
    source: Source,
    window_ms: Option<i64>,
) -> usize {
    if window_ms.is_some() {
        compiled.time_dependent = true;
    }
    if let Some(i) = compiled.series.iter().position(|s| s.key == key) {
        let spec = &mut compiled.series[i];
        spec.window_ms = spec.window_ms.max(window_ms);
        return i;
    }
    compiled.series.push(SeriesSpec {
        key,
        source,
        window_ms,
    });
    compiled.series.len() - 1
}

fn event_series(
    compiled: &mut Compiled,
    name: &str,
    filters: &[PropertyFilter],
    window_ms: Option<i64>,
) -> Result<usize, String> {
    let conditions = filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Condition::new(
                &format!("where[{i}]"),
                &f.property,
                f.operator,
                f.value.as_ref(),
            )
            .map_err(|v| format!("{v:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(add_series(
        compiled,
        filtered_key(name, filters),
        Source::Event {
            name: name.to_owned(),
            filters: conditions,
        },
        window_ms,
    ))
}

fn add_trait_key(compiled: &mut Compiled, path: &Path) {
    let dotted = path.as_dotted();
    let key = dotted.split('.').next().unwrap_or_default().to_owned();
    if !compiled.trait_keys.contains(&key) {
        compiled.trait_keys.push(key);
    }
}

fn node(rule: &Rule, compiled: &mut Compiled) -> Result<Node, String> {
    let Some(kind) = &rule.kind else {
        return Err("a rule node has no kind".into());
    };
    Ok(match kind {
        Kind::All(group) => Node::All(
            group
                .rules
                .iter()
                .map(|r| node(r, compiled))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Any(group) => Node::Any(
            group
                .rules
                .iter()
                .map(|r| node(r, compiled))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Not(inner) => Node::Not(Box::new(node(inner, compiled)?)),
        Kind::TraitCondition(c) => {
            let condition = Condition::new("trait", &c.path, c.operator, c.value.as_ref())
                .map_err(|v| format!("{v:?}"))?;
            add_trait_key(compiled, &condition.path);
            Node::Trait(condition)
        }
        Kind::RelativeTime(c) => {
            let path = Path::parse(&c.path).ok_or_else(|| format!("bad path {:?}", c.path))?;
            add_trait_key(compiled, &path);
            compiled.time_dependent = true;
            let unit_ms = match TimeUnit::try_from(c.unit) {
                Ok(TimeUnit::Minutes) => MINUTE_MS,
                Ok(TimeUnit::Hours) => 60 * MINUTE_MS,
                Ok(TimeUnit::Days) => 1440 * MINUTE_MS,
                Ok(TimeUnit::Weeks) => 7 * 1440 * MINUTE_MS,
                _ => return Err("a relative time has no unit".into()),
            };
            let operator = Operator::from_proto(c.operator)
                .filter(|o| {
                    matches!(
                        o,
                        Operator::Eq
                            | Operator::Ne
                            | Operator::Gt
                            | Operator::Gte
                            | Operator::Lt
                            | Operator::Lte
                    )
                })
                .ok_or("a relative time needs a comparison")?;
            Node::Relative {
                path,
                unit_ms,
                until: c.direction == TimeDirection::Until as i32,
                operator,
                value: c.value,
            }
        }
        Kind::Performed(c) => {
            let within_ms = window(c.within.as_ref());
            Node::Count {
                series: event_series(compiled, &c.event_name, &c.property_filters, within_ms)?,
                comparison: Comparison::new(c.count_comparison, c.count),
                within_ms,
            }
        }
        Kind::NotPerformed(c) => {
            let (since, within_ms) = match &c.since {
                None => (Cutoff::Ever, None),
                Some(Since::SinceTime(t)) => {
                    (Cutoff::Time(herald_core::time::ms_of_proto(t)), None)
                }
                Some(Since::Within(d)) => {
                    let w = herald_core::time::duration_ms(d);
                    (Cutoff::Within(w), Some(w))
                }
            };
            Node::NotSince {
                series: event_series(compiled, &c.event_name, &c.property_filters, within_ms)?,
                since,
            }
        }
        Kind::Engagement(c) => {
            let kind = EngagementKind::try_from(c.kind)
                .ok()
                .filter(|k| *k != EngagementKind::Unspecified)
                .ok_or("an engagement has no kind")?;
            let within_ms = window(c.within.as_ref());
            let series = add_series(
                compiled,
                engagement_key(kind, &c.campaign_id),
                Source::Engagement {
                    kind,
                    campaign_id: c.campaign_id.clone(),
                },
                within_ms,
            );
            Node::Count {
                series,
                comparison: Comparison::new(c.count_comparison, c.count),
                within_ms,
            }
        }
        Kind::InSegment(c) => {
            if !compiled.segments.contains(&c.segment_id) {
                compiled.segments.push(c.segment_id.clone());
            }
            Node::Segment(c.segment_id.clone())
        }
    })
}

/// Whether the user of `facts` matches `rule` at `now_ms`, and when that can next change
/// by time alone.
pub fn eval<F: Facts + ?Sized>(rule: &Compiled, facts: &F, now_ms: i64) -> Outcome {
    eval_node(&rule.root, rule, facts, now_ms)
}

fn eval_node<F: Facts + ?Sized>(node: &Node, rule: &Compiled, facts: &F, now: i64) -> Outcome {
    match node {
        Node::All(children) => combine(children, rule, facts, now, true),
        Node::Any(children) => combine(children, rule, facts, now, false),
        Node::Not(inner) => {
            let o = eval_node(inner, rule, facts, now);
            Outcome {
                member: !o.member,
                next_change_ms: o.next_change_ms,
            }
        }
        Node::Trait(condition) => Outcome::fixed(condition.matches(facts.traits())),
        Node::Relative {
            path,
            unit_ms,
            until,
            operator,
            value,
        } => match path.lookup(facts.traits()).and_then(|v| facts.instant(v)) {
            None => Outcome::fixed(false),
            Some(at) => relative(at, *unit_ms, *until, *operator, *value, now),
        },
        Node::Count {
            series,
            comparison,
            within_ms,
        } => {
            let s = facts.series(&rule.series[*series].key);
            match (s, within_ms) {
                (None, _) => Outcome::fixed(comparison.holds(0)),
                (Some(s), None) => Outcome::fixed(comparison.holds(s.total)),
                (Some(s), Some(w)) => {
                    let mut count = s.within(*w, now);
                    let member = comparison.holds(count);
                    // The count only falls as minutes leave the window: find the first
                    // exit after which the answer differs.
                    let mut next = None;
                    for (leaves_at, n) in s.leaving(*w, now) {
                        count -= n;
                        if comparison.holds(count) != member {
                            next = Some(leaves_at);
                            break;
                        }
                    }
                    Outcome {
                        member,
                        next_change_ms: next,
                    }
                }
            }
        }
        Node::NotSince { series, since } => {
            let s = facts
                .series(&rule.series[*series].key)
                .filter(|s| s.total > 0);
            match (s, since) {
                (None, _) => Outcome::fixed(true),
                (Some(_), Cutoff::Ever) => Outcome::fixed(false),
                (Some(s), Cutoff::Time(t)) => Outcome::fixed(s.last_ms < *t),
                (Some(s), Cutoff::Within(w)) => match s.leaving(*w, now).last() {
                    None => Outcome::fixed(true),
                    Some((leaves_at, _)) => Outcome {
                        member: false,
                        next_change_ms: Some(leaves_at),
                    },
                },
            }
        }
        Node::Segment(id) => facts.segment(id),
    }
}

/// `all` (`conjunction`) or `any` of `children`. The answer can change only once the
/// children that decide it change: for a false `all`, every false child must turn true,
/// so not before the latest of their next changes (never, if one cannot change); for a
/// true `all`, as soon as any child can change. `any` is the mirror image.
fn combine<F: Facts + ?Sized>(
    children: &[Node],
    rule: &Compiled,
    facts: &F,
    now: i64,
    conjunction: bool,
) -> Outcome {
    // One pass: whether every child is the identity element (true for all, false for
    // any), the earliest next change of all children, and the latest next change of the
    // deciding children (None once one of them cannot change).
    let mut undecided = true;
    let mut earliest: Option<i64> = None;
    let mut latest = Some(i64::MIN);
    for child in children {
        let o = eval_node(child, rule, facts, now);
        if let Some(t) = o.next_change_ms {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        if o.member != conjunction {
            undecided = false;
            latest = match (latest, o.next_change_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
    Outcome {
        member: if undecided { conjunction } else { !conjunction },
        next_change_ms: if undecided { earliest } else { latest },
    }
}

/// An instant held by a trait, in milliseconds since the epoch: an RFC 3339 string
/// (`2026-06-01T09:00:00Z`, any offset), or, read as UTC, a date and time without an offset
/// (`2026-06-01T09:00:00`) or a date alone (`2026-06-01`, midnight); or a number of
/// seconds since the epoch. Anything else is no instant.
pub fn instant_ms(value: &prost_types::Value) -> Option<i64> {
    match value.kind.as_ref()? {
        ValueKind::StringValue(s) => {
            if let Ok(t) = s.parse::<jiff::Timestamp>() {
                return Some(t.as_millisecond());
            }
            let civil = s.parse::<jiff::civil::DateTime>().ok()?;
            civil
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp().as_millisecond())
        }
        ValueKind::NumberValue(n) if n.is_finite() && n.abs() < 1e14 => {
            Some((n * 1000.0).floor() as i64)
        }
        _ => None,
    }
}

/// The whole units between the trait's instant `at` and `now` (since: now − at; until:
/// at − now), truncated towards zero.
fn units(at: i64, unit_ms: i64, until: bool, now: i64) -> i64 {
    let elapsed = if until { at - now } else { now - at };
    elapsed / unit_ms
}

fn holds(operator: Operator, left: i64, right: i64) -> bool {
    match operator {
        Operator::Eq => left == right,
        Operator::Ne => left != right,
        Operator::Gt => left > right,
        Operator::Gte => left >= right,
        Operator::Lt => left < right,
        _ => left <= right,
    }
}

/// A relative-time comparison now, and the first later instant its answer differs.
/// The unit count is monotone in time (rising since, falling until), so the answer can
/// only change where the count crosses `value - 1`, `value` or `value + 1`.
fn relative(
    at: i64,
    unit_ms: i64,
    until: bool,
    operator: Operator,
    value: i64,
    now: i64,
) -> Outcome {
    let member = holds(operator, units(at, unit_ms, until, now), value);
    let mut candidates: Vec<i64> = [value - 1, value, value + 1]
        .into_iter()
        .map(|m| first_instant_at(at, unit_ms, until, m))
        .filter(|t| *t > now)
        .collect();
    candidates.sort_unstable();
    let next_change_ms = candidates
        .into_iter()
        .find(|t| holds(operator, units(at, unit_ms, until, *t), value) != member);
    Outcome {
        member,
        next_change_ms,
    }
}

/// The first instant at which the unit count reaches `m`: at least `m` for since (the
/// count rises), at most `m` for until (it falls). Integer milliseconds; saturating.
fn first_instant_at(at: i64, unit: i64, until: bool, m: i64) -> i64 {
    let u = |k: i64| k.saturating_mul(unit);
    if !until {
        // (now − at) / unit ≥ m, truncated towards zero.
        if m > 0 {
            at.saturating_add(u(m))
        } else {
            at.saturating_add(u(m - 1)).saturating_add(1)
        }
    } else if m >= 0 {
        // (at − now) / unit ≤ m  ⇔  at − now < (m + 1)·unit.
        at.saturating_sub(u(m + 1)).saturating_add(1)
    } else {
        // at − now ≤ m·unit.
        at.saturating_sub(u(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn first_instants_match_the_truncated_counts() {
        for until in [false, true] {
            for m in -3..=3 {
                let t = first_instant_at(10 * DAY, DAY, until, m);
                let reached = |now| {
                    let k = units(10 * DAY, DAY, until, now);
                    if until { k <= m } else { k >= m }
                };
                assert!(reached(t), "until={until} m={m}");
                assert!(!reached(t - 1), "until={until} m={m}");
            }
        }
    }

    #[test]
    fn trait_instants_read_as_a_person_writes_them() {
        let text = |s: &str| prost_types::Value {
            kind: Some(ValueKind::StringValue(s.into())),
        };
        let number = |n: f64| prost_types::Value {
            kind: Some(ValueKind::NumberValue(n)),
        };
        let june = 1_780_272_000_000; // 2026-06-01T00:00:00Z
        for (value, expected) in [
            (text("2026-06-01T00:00:00Z"), Some(june)),
            (text("2026-06-01T02:00:00+02:00"), Some(june)),
            (text("2026-06-01T00:00:00.250Z"), Some(june + 250)),
            (
                text("2026-06-01T09:30:00"),
                Some(june + 9 * 3_600_000 + 1_800_000),
            ),
            (text("2026-06-01"), Some(june)),
            (number(1_780_272_000.5), Some(june + 500)),
            (text("yesterday"), None),
            (text(""), None),
            (
                prost_types::Value {
                    kind: Some(ValueKind::BoolValue(true)),
                },
                None,
            ),
        ] {
            assert_eq!(instant_ms(&value), expected, "{value:?}");
        }
    }

    #[test]
    fn relative_time_changes_exactly_once_per_threshold() {
        // days_since(at) >= 5 with at = day 10: false until day 15, then for good.
        let o = relative(10 * DAY, DAY, false, Operator::Gte, 5, 12 * DAY);
        assert_eq!(
            o,
            Outcome {
                member: false,
                next_change_ms: Some(15 * DAY)
            }
        );
        let o = relative(10 * DAY, DAY, false, Operator::Gte, 5, 15 * DAY);
        assert_eq!(
            o,
            Outcome {
                member: true,
                next_change_ms: None
            }
        );
        // days_since(at) == 5: in from day 15 until day 16.
        let o = relative(10 * DAY, DAY, false, Operator::Eq, 5, 15 * DAY);
        assert_eq!(
            o,
            Outcome {
                member: true,
                next_change_ms: Some(16 * DAY)
            }
        );
        // hours_until(at) < 48 with at = day 10: true from day 8 + 1 ms.
        let o = relative(10 * DAY, DAY / 24, true, Operator::Lt, 48, 0);
        assert_eq!(
            o,
            Outcome {
                member: false,
                next_change_ms: Some(8 * DAY + 1)
            }
        );
    }
}
