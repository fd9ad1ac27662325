//! Evaluation: rules answer as a person reads them, the next change is exact, and
//! incremental evaluation equals evaluation from scratch.

use std::collections::HashMap;

use herald_proto::segmentation::v1::EngagementKind;
use herald_rules::engine::{Change, Engine, Profile, SegmentDef};
use herald_rules::eval::{self, Facts, Outcome};
use herald_rules::series::Series;
use proptest::prelude::*;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-06-01T00:00:00Z.
const T0: i64 = 1_780_272_000_000;

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn num(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn object(pairs: &[(&str, Value)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn engine(segments: &[(&str, &str)]) -> Engine {
    let (engine, skipped) = Engine::new(
        segments
            .iter()
            .map(|(id, text)| SegmentDef {
                id: id.to_string(),
                rule: herald_rules::parse(text).unwrap(),
            })
            .collect(),
    );
    assert!(skipped.is_empty(), "{skipped:?}");
    engine
}

struct User {
    traits: Struct,
    profile: Profile,
}

impl User {
    fn new(traits: Struct) -> User {
        User {
            traits,
            profile: Profile::default(),
        }
    }

    fn event(&mut self, e: &Engine, name: &str, props: Option<&Struct>, at: i64) -> Vec<Change> {
        let mut dirty = e.dirty();
        e.record_event(&mut self.profile, &mut dirty, name, props, at, at);
        e.evaluate(&mut self.profile, Some(&self.traits), dirty, at)
    }

    fn at(&mut self, e: &Engine, now: i64) -> Vec<Change> {
        let mut dirty = e.dirty();
        e.time_passed(&mut self.profile, &mut dirty, now);
        e.evaluate(&mut self.profile, Some(&self.traits), dirty, now)
    }

    fn full(&mut self, e: &Engine, now: i64) -> Vec<Change> {
        e.evaluate(&mut self.profile, Some(&self.traits), e.everything(), now)
    }
}

fn entered(id: &str) -> Vec<Change> {
    vec![Change {
        segment_id: id.into(),
        entered: true,
    }]
}

fn exited(id: &str) -> Vec<Change> {
    vec![Change {
        segment_id: id.into(),
        entered: false,
    }]
}

#[test]
fn the_contract_example_reads_as_written() {
    let e = engine(&[(
        "seg_activation",
        r#"plan == "pro" and days_since(signed_up_at) >= 5 and not performed("integration_connected")"#,
    )]);
    let mut alice = User::new(object(&[
        ("plan", text("pro")),
        ("signed_up_at", text(&rfc3339(T0))),
    ]));
    // Day 0: signed up, not yet five days.
    assert_eq!(alice.full(&e, T0), vec![]);
    assert_eq!(alice.profile.next_change_ms(), Some(T0 + 5 * DAY));
    // Nothing changes a millisecond before day 5; at day 5 exactly she enters.
    assert_eq!(alice.at(&e, T0 + 5 * DAY - 1), vec![]);
    assert_eq!(alice.at(&e, T0 + 5 * DAY), entered("seg_activation"));
    assert_eq!(alice.profile.member_ids(), vec!["seg_activation"]);
    assert_eq!(alice.profile.next_change_ms(), None);
    // Connecting an integration takes her out, for good.
    assert_eq!(
        alice.event(&e, "integration_connected", None, T0 + 6 * DAY),
        exited("seg_activation")
    );
    assert_eq!(alice.profile.next_change_ms(), None);

    // A free user never enters; a pro user without the trait neither.
    let mut bob = User::new(object(&[
        ("plan", text("free")),
        ("signed_up_at", text(&rfc3339(T0))),
    ]));
    assert_eq!(bob.full(&e, T0 + 10 * DAY), vec![]);
    let mut carol = User::new(object(&[("plan", text("pro"))]));
    assert_eq!(carol.full(&e, T0 + 10 * DAY), vec![]);
    assert_eq!(carol.profile.next_change_ms(), None);
}

#[test]
fn a_window_exits_when_the_last_counted_event_slides_out() {
    let e = engine(&[
        ("seg_active", r#"performed("login", within: 7d)"#),
        ("seg_lapsed", r#"not performed("login", within: 7d)"#),
        (
            "seg_buyer",
            r#"performed("checkout", where: amount > 100, within: 30d, at_least: 2)"#,
        ),
    ]);
    let mut u = User::new(Struct::default());
    let changes = u.event(&e, "login", None, T0);
    assert_eq!(changes, entered("seg_active"));
    u.event(&e, "login", None, T0 + DAY);
    assert_eq!(u.profile.next_change_ms(), Some(T0 + 8 * DAY));
    assert_eq!(u.at(&e, T0 + 7 * DAY), vec![]);
    assert_eq!(
        u.at(&e, T0 + 8 * DAY),
        vec![
            Change {
                segment_id: "seg_active".into(),
                entered: false
            },
            Change {
                segment_id: "seg_lapsed".into(),
                entered: true
            }
        ]
    );

    let big = object(&[("amount", num(150.0))]);
    let small = object(&[("amount", num(50.0))]);
    assert_eq!(u.event(&e, "checkout", Some(&big), T0 + 10 * DAY), vec![]);
    assert_eq!(u.event(&e, "checkout", Some(&small), T0 + 11 * DAY), vec![]);
    assert_eq!(
        u.event(&e, "checkout", Some(&big), T0 + 12 * DAY),
        entered("seg_buyer")
    );
    // Out when the first big checkout leaves the 30-day window.
    assert_eq!(
        u.profile.segments["seg_buyer"].next_change_ms,
        T0 + 40 * DAY
    );
    assert_eq!(u.at(&e, T0 + 40 * DAY), exited("seg_buyer"));
}

#[test]
fn segments_that_refer_to_segments_follow_them() {
    let e = engine(&[
        ("seg_b", r#"in_segment("seg_a") and country == "FR""#),
        ("seg_a", r#"days_since(signed_up_at) >= 1"#),
        ("seg_c", r#"not in_segment("seg_b")"#),
    ]);
    let mut u = User::new(object(&[
        ("country", text("FR")),
        ("signed_up_at", text(&rfc3339(T0))),
    ]));
    assert_eq!(u.full(&e, T0), entered("seg_c"));
    // seg_b's and seg_c's next change follow seg_a's.
    assert_eq!(u.profile.segments["seg_c"].next_change_ms, T0 + DAY);
    let changes = u.at(&e, T0 + DAY);
    let ids: Vec<_> = changes
        .iter()
        .map(|c| (c.segment_id.as_str(), c.entered))
        .collect();
    assert_eq!(
        ids,
        vec![("seg_a", true), ("seg_b", true), ("seg_c", false)]
    );
}

#[test]
fn engagement_counts_interactions_with_a_campaign() {
    let e = engine(&[
        ("seg_fatigued", r#"dismissed("cmp_tour", at_least: 2)"#),
        ("seg_clicked", r#"clicked("cmp_up", within: 1d)"#),
    ]);
    let mut u = User::new(Struct::default());
    let mut dirty = e.dirty();
    e.record_interaction(
        &mut u.profile,
        &mut dirty,
        EngagementKind::Dismissed,
        "cmp_tour",
        T0,
        T0,
    );
    assert!(e.evaluate(&mut u.profile, None, dirty, T0).is_empty());
    let mut dirty = e.dirty();
    e.record_interaction(
        &mut u.profile,
        &mut dirty,
        EngagementKind::Dismissed,
        "cmp_tour",
        T0,
        T0,
    );
    assert_eq!(
        e.evaluate(&mut u.profile, None, dirty, T0),
        entered("seg_fatigued")
    );
    let mut dirty = e.dirty();
    e.record_interaction(
        &mut u.profile,
        &mut dirty,
        EngagementKind::Clicked,
        "cmp_up",
        T0,
        T0,
    );
    assert_eq!(
        e.evaluate(&mut u.profile, None, dirty, T0),
        entered("seg_clicked")
    );
    assert_eq!(u.at(&e, T0 + DAY), exited("seg_clicked"));
}

/// Facts over a plain map, for evaluating a rule alone.
struct Plain(HashMap<String, Series>, Struct);

impl Facts for Plain {
    fn traits(&self) -> Option<&Struct> {
        Some(&self.1)
    }
    fn series(&self, key: &str) -> Option<&Series> {
        self.0.get(key)
    }
    fn segment(&self, _: &str) -> Outcome {
        Outcome {
            member: false,
            next_change_ms: None,
        }
    }
}

#[test]
fn counts_compare_at_least_at_most_and_exactly() {
    let mut series = Series::default();
    for i in 0..3 {
        series.record(T0 + i * MIN, Some(DAY), T0 + i * MIN);
    }
    let facts = Plain(
        HashMap::from([(eval::event_key("open"), series)]),
        Struct::default(),
    );
    for (rule, member, next) in [
        (r#"performed("open", at_least: 3)"#, true, None),
        (r#"performed("open", exactly: 2)"#, false, None),
        (
            r#"performed("open", at_most: 2, within: 1d)"#,
            false,
            Some(T0 + DAY),
        ),
        (
            r#"performed("open", exactly: 2, within: 1d)"#,
            false,
            Some(T0 + DAY),
        ),
        (
            r#"performed("open", exactly: 1, within: 1d)"#,
            false,
            Some(T0 + DAY + MIN),
        ),
        (
            r#"performed("open", within: 1d)"#,
            true,
            Some(T0 + DAY + 2 * MIN),
        ),
        (r#"performed("other")"#, false, None),
        (r#"performed("other", at_most: 0)"#, true, None),
        (
            r#"not performed("open", since: "2026-06-01T00:01:00Z")"#,
            false,
            None,
        ),
        (
            r#"not performed("open", since: "2026-06-01T00:03:00Z")"#,
            true,
            None,
        ),
    ] {
        let compiled = eval::compile(&herald_rules::parse(rule).unwrap()).unwrap();
        assert_eq!(
            eval::eval(&compiled, &facts, T0 + 2 * MIN),
            Outcome {
                member,
                next_change_ms: next
            },
            "{rule}"
        );
    }
}

// ---- incremental == full, over random histories -------------------------------------

const RULES: &[(&str, &str)] = &[
    (
        "seg_1",
        r#"plan == "pro" and days_since(signed_up_at) >= 2"#,
    ),
    ("seg_2", r#"performed("open", within: 1h, at_least: 2)"#),
    ("seg_3", r#"not performed("open", within: 30m)"#),
    (
        "seg_4",
        r#"performed("buy", where: amount > 10, within: 1d) or in_segment("seg_1")"#,
    ),
    (
        "seg_5",
        r#"in_segment("seg_2") and not in_segment("seg_3")"#,
    ),
    (
        "seg_6",
        r#"hours_until(trial_ends_at) <= 3 and hours_until(trial_ends_at) > 0"#,
    ),
    (
        "seg_7",
        r#"performed("open", exactly: 3) and not clicked("cmp_a", within: 2h)"#,
    ),
    (
        "seg_8",
        r#"minutes_since(signed_up_at) == 90 or not performed("buy")"#,
    ),
];

#[derive(Debug, Clone)]
enum Step {
    Advance(i64),
    Event(u8, i64, f64),
    Click(i64),
    Plan(bool),
    SignedUp(i64),
    TrialEnds(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1i64..(3 * HOUR)).prop_map(Step::Advance),
        4 => (0u8..2, -2 * HOUR..MIN, 0.0f64..20.0).prop_map(|(n, back, amount)| Step::Event(n, back, amount)),
        1 => (-HOUR..MIN).prop_map(Step::Click),
        1 => any::<bool>().prop_map(Step::Plan),
        1 => (-3 * DAY..DAY).prop_map(Step::SignedUp),
        1 => (-HOUR..(6 * HOUR)).prop_map(Step::TrialEnds),
    ]
}

fn members(p: &Profile) -> Vec<(String, bool)> {
    let mut m: Vec<_> = p
        .segments
        .iter()
        .map(|(id, m)| (id.clone(), m.member))
        .filter(|(_, member)| *member)
        .collect();
    m.sort();
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After any sequence of events, trait updates and clock advances, with the timer
    /// firing exactly at each next change, the incremental memberships equal a full
    /// evaluation from scratch at every instant, and every due change fires on time.
    #[test]
    fn incremental_equals_full(steps in proptest::collection::vec(step(), 1..40)) {
        let e = engine(RULES);
        let mut now = T0;
        let mut user = User::new(Struct::default());
        user.full(&e, now);
        for s in steps {
            match s {
                Step::Advance(by) => {
                    let target = now + by;
                    // The timer fires at each next change on the way.
                    while let Some(next) = user.profile.next_change_ms() {
                        if next > target { break; }
                        prop_assert!(next > now, "a next change {next} not after now {now}");
                        now = next;
                        user.at(&e, now);
                        let full = e.evaluate_all(Some(&user.traits), &user.profile.series, now);
                        prop_assert_eq!(members(&user.profile), members(&full), "at {}", now);
                    }
                    now = target;
                }
                Step::Event(n, back, amount) => {
                    let name = ["open", "buy"][n as usize];
                    let props = object(&[("amount", num(amount))]);
                    let mut dirty = e.dirty();
                    e.record_event(&mut user.profile, &mut dirty, name, Some(&props), now + back, now);
                    e.evaluate(&mut user.profile, Some(&user.traits), dirty, now);
                }
                Step::Click(back) => {
                    let mut dirty = e.dirty();
                    e.record_interaction(&mut user.profile, &mut dirty, EngagementKind::Clicked, "cmp_a", now + back, now);
                    e.evaluate(&mut user.profile, Some(&user.traits), dirty, now);
                }
                Step::Plan(pro) => {
                    user.traits.fields.insert("plan".into(), text(if pro { "pro" } else { "free" }));
                    let mut dirty = e.dirty();
                    e.traits_changed(&mut dirty, ["plan"]);
                    e.evaluate(&mut user.profile, Some(&user.traits), dirty, now);
                }
                Step::SignedUp(offset) => {
                    user.traits.fields.insert("signed_up_at".into(), text(&rfc3339(now + offset)));
                    let mut dirty = e.dirty();
                    e.traits_changed(&mut dirty, ["signed_up_at"]);
                    e.evaluate(&mut user.profile, Some(&user.traits), dirty, now);
                }
                Step::TrialEnds(offset) => {
                    // Seconds since the epoch, the other accepted form.
                    user.traits.fields.insert("trial_ends_at".into(), num(((now + offset) / 1000) as f64));
                    let mut dirty = e.dirty();
                    e.traits_changed(&mut dirty, ["trial_ends_at"]);
                    e.evaluate(&mut user.profile, Some(&user.traits), dirty, now);
                }
            }
            let full = e.evaluate_all(Some(&user.traits), &user.profile.series, now);
            prop_assert_eq!(members(&user.profile), members(&full), "at {}", now);
            prop_assert_eq!(user.profile.next_change_ms(), full.next_change_ms(), "next change at {}", now);
        }
    }
}
