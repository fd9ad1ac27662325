//! Property tests: over random valid trees, the text form is an exact second form of the
//! tree (tree → canonical text → tree is the identity on normal trees, and canonical text
//! is a fixed point), and no text makes the parser panic.

use herald_conditions::{Condition, Operator};
use herald_proto::segmentation::v1::{
    EngagementCondition, NotPerformedCondition, PerformedCondition, PropertyFilter,
    RelativeTimeCondition, Rule, RuleGroup, SegmentCondition, TraitCondition,
    not_performed_condition::Since, rule::Kind,
};
use herald_rules::{check, format, normalize, parse};
use proptest::prelude::*;
use prost_types::value::Kind as V;
use prost_types::{Duration, ListValue, Struct, Timestamp, Value};

// ---- random valid trees ---------------------------------------------------------------

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,8}"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(ident(), 1..4)
        .prop_filter("a path cannot start with a keyword", |keys| {
            !["and", "or", "not"].contains(&keys[0].as_str())
        })
        .prop_map(|keys| keys.join("."))
}

/// Any text, with the characters that need escaping well represented.
fn text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(vec!['"', '\\', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '😀', '\u{2028}']),
        ],
        len,
    )
    .prop_map(String::from_iter)
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("JSON numbers are finite", |x| x.is_finite()),
        (-1000i64..1000).prop_map(|n| n as f64),
        prop::sample::select(vec![
            -0.0,
            0.1,
            1e15,
            1e16,
            1e21,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE
        ]),
    ]
}

fn value(kind: V) -> Value {
    Value { kind: Some(kind) }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        number().prop_map(|x| value(V::NumberValue(x))),
        text(0..8).prop_map(|s| value(V::StringValue(s))),
        any::<bool>().prop_map(|b| value(V::BoolValue(b))),
    ]
}

/// Any JSON value but a top-level null (nested nulls are fine).
fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        let element = prop_oneof![4 => inner, 1 => Just(value(V::NullValue(0)))];
        prop_oneof![
            prop::collection::vec(element.clone(), 0..4)
                .prop_map(|values| value(V::ListValue(ListValue { values }))),
            prop::collection::btree_map(text(0..4), element, 0..3)
                .prop_map(|fields| value(V::StructValue(Struct { fields }))),
        ]
    })
}

fn list() -> impl Strategy<Value = Value> {
    prop::collection::vec(json(), 0..4).prop_map(|values| value(V::ListValue(ListValue { values })))
}

/// An operator and a value of a type it compares.
fn comparison() -> impl Strategy<Value = (i32, Option<Value>)> {
    prop::sample::select(Operator::ALL.to_vec()).prop_flat_map(|op| {
        let code = proto_operator(op);
        let value: BoxedStrategy<Option<Value>> = match op {
            Operator::Exists | Operator::NotExists => Just(None).boxed(),
            Operator::In | Operator::NotIn => list().prop_map(Some).boxed(),
            Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => prop_oneof![
                number().prop_map(|x| value(V::NumberValue(x))),
                text(0..8).prop_map(|s| value(V::StringValue(s))),
            ]
            .prop_map(Some)
            .boxed(),
            Operator::StartsWith | Operator::EndsWith => text(0..8)
                .prop_map(|s| Some(value(V::StringValue(s))))
                .boxed(),
            _ => json().prop_map(Some).boxed(),
        };
        value.prop_map(move |v| (code, v))
    })
}

fn proto_operator(op: Operator) -> i32 {
    (1..=14)
        .find(|code| Operator::from_proto(*code) == Some(op))
        .expect("every operator has a code")
}

fn filters() -> impl Strategy<Value = Vec<PropertyFilter>> {
    prop::collection::vec(
        (path(), comparison()).prop_map(|(property, (operator, value))| PropertyFilter {
            property,
            operator,
            value,
        }),
        0..3,
    )
}

fn window() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1i64..=366 * 1440).prop_map(|m| Duration {
            seconds: m * 60,
            nanos: 0
        }),
        prop::sample::select(vec![1i64, 60, 1440, 7 * 1440, 366 * 1440]).prop_map(|m| Duration {
            seconds: m * 60,
            nanos: 0
        }),
    ]
}

fn instant() -> impl Strategy<Value = Timestamp> {
    (
        -62_135_596_800i64..=253_402_300_799,
        prop_oneof![Just(0), 0..1_000_000_000i32],
    )
        .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos })
}

/// A count comparison (unset included) and a count.
fn count() -> impl Strategy<Value = (i32, u32)> {
    (0..=3i32, prop_oneof![0..4u32, any::<u32>()])
}

fn name() -> impl Strategy<Value = String> {
    text(1..12)
}

fn leaf() -> impl Strategy<Value = Rule> {
    let kind = prop_oneof![
        (path(), comparison()).prop_map(|(path, (operator, value))| {
            Kind::TraitCondition(TraitCondition {
                path,
                operator,
                value,
            })
        }),
        (name(), filters(), count(), prop::option::of(window())).prop_map(
            |(event_name, property_filters, (count_comparison, count), within)| {
                Kind::Performed(PerformedCondition {
                    event_name,
                    property_filters,
                    count_comparison,
                    count,
                    within,
                })
            }
        ),
        (
            name(),
            filters(),
            prop_oneof![
                Just(None),
                window().prop_map(|w| Some(Since::Within(w))),
                instant().prop_map(|t| Some(Since::SinceTime(t))),
            ]
        )
            .prop_map(|(event_name, property_filters, since)| {
                Kind::NotPerformed(NotPerformedCondition {
                    event_name,
                    property_filters,
                    since,
                })
            }),
        (path(), 1..=4i32, 0..=2i32, 1..=6i32, any::<i64>()).prop_map(
            |(path, unit, direction, operator, value)| {
                Kind::RelativeTime(RelativeTimeCondition {
                    path,
                    unit,
                    direction,
                    operator,
                    value,
                })
            }
        ),
        name().prop_map(|segment_id| Kind::InSegment(SegmentCondition { segment_id })),
        (1..=4i32, name(), prop::option::of(window()), count()).prop_map(
            |(kind, campaign_id, within, (count_comparison, count))| {
                Kind::Engagement(EngagementCondition {
                    kind,
                    campaign_id,
                    within,
                    count_comparison,
                    count,
                })
            }
        ),
    ];
    kind.prop_map(|kind| Rule { kind: Some(kind) })
}

/// Valid trees of up to 5 levels: groups of 0 to 4 rules (so empty and single-rule
/// groups, and groups directly inside groups of the same kind), `not` over anything.
fn tree() -> impl Strategy<Value = Rule> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|rules| Rule {
                kind: Some(Kind::All(RuleGroup { rules }))
            }),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|rules| Rule {
                kind: Some(Kind::Any(RuleGroup { rules }))
            }),
            inner.prop_map(|r| Rule {
                kind: Some(Kind::Not(Box::new(r)))
            }),
        ]
    })
}

/// Every trait condition and property filter of `rule`.
fn comparisons(rule: &Rule, out: &mut Vec<(String, i32, Option<Value>)>) {
    let mut filters = |fs: &[PropertyFilter]| {
        for f in fs {
            out.push((f.property.clone(), f.operator, f.value.clone()));
        }
    };
    match &rule.kind {
        Some(Kind::All(g) | Kind::Any(g)) => g.rules.iter().for_each(|r| comparisons(r, out)),
        Some(Kind::Not(r)) => comparisons(r, out),
        Some(Kind::TraitCondition(c)) => out.push((c.path.clone(), c.operator, c.value.clone())),
        Some(Kind::Performed(c)) => filters(&c.property_filters),
        Some(Kind::NotPerformed(c)) => filters(&c.property_filters),
        _ => {}
    }
}

proptest! {
    // Integration tests have no lib.rs beside them to keep regression files next to.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tree_to_text_to_tree_is_the_identity_on_normal_trees(t in tree()) {
        prop_assert_eq!(check(&t), Ok(()));
        let text = format(&t);
        let normal = normalize(&t);
        prop_assert_eq!(parse(&text), Ok(normal.clone()), "text: {}", text);
        prop_assert_eq!(normalize(&normal).clone(), normal.clone());
        prop_assert_eq!(check(&normal), Ok(()));
        prop_assert_eq!(format(&normal), text.clone());
    }

    #[test]
    fn canonical_text_is_a_fixed_point(t in tree()) {
        let text = format(&t);
        let again = format(&parse(&text).expect("canonical text parses"));
        prop_assert_eq!(again, text);
    }

    #[test]
    fn checked_conditions_compile_with_the_shared_semantics(t in tree()) {
        let mut found = Vec::new();
        comparisons(&t, &mut found);
        for (path, operator, value) in found {
            prop_assert!(Condition::new("f", &path, operator, value.as_ref()).is_ok());
        }
    }

    #[test]
    fn numbers_read_back_bit_for_bit(x in number()) {
        let t = Rule { kind: Some(Kind::TraitCondition(TraitCondition {
            path: "a".into(),
            operator: proto_operator(Operator::Eq),
            value: Some(value(V::NumberValue(x))),
        })) };
        let parsed = parse(&format(&t)).expect("parses");
        let Some(Kind::TraitCondition(c)) = parsed.kind else { panic!() };
        let Some(V::NumberValue(y)) = c.value.and_then(|v| v.kind) else { panic!() };
        prop_assert_eq!(y.to_bits(), x.to_bits());
    }

    #[test]
    fn any_text_parses_or_fails_without_panicking(s in "\\PC{0,48}") {
        if let Ok(rule) = parse(&s) {
            prop_assert_eq!(parse(&format(&rule)), Ok(rule));
        }
    }

    #[test]
    fn damaged_rules_fail_cleanly_with_a_position_inside_the_text(
        t in tree(),
        cut in any::<prop::sample::Index>(),
        insert in prop::sample::select(vec!["", "(", ")", ",", " and", "not ", "\"", "[", "{", "==", "@", "7d", "é"]),
    ) {
        let text = format(&t);
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        for damaged in [format!("{}{insert}", &text[..at]), format!("{}{insert}{}", &text[..at], &text[at..])] {
            match parse(&damaged) {
                Ok(rule) => prop_assert_eq!(parse(&format(&rule)), Ok(rule)),
                Err(e) => {
                    let end = e.offset as usize + e.length as usize;
                    prop_assert!(end <= damaged.len());
                    prop_assert!(damaged.is_char_boundary(e.offset as usize));
                    prop_assert!(damaged.is_char_boundary(end));
                    prop_assert!(e.line >= 1 && e.column >= 1);
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
