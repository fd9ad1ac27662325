//! The checker and the normal form on trees as the API receives them, including what the
//! text form cannot even write.

use herald_proto::common::v1::ComparisonOperator as Op;
use herald_proto::segmentation::v1::{
    CountComparison, EngagementCondition, NotPerformedCondition, PerformedCondition,
    PropertyFilter, RelativeTimeCondition, Rule, RuleGroup, TimeDirection, TimeUnit,
    TraitCondition, not_performed_condition::Since, rule::Kind,
};
use herald_rules::{check, format, normalize, parse};
use prost_types::value::Kind as V;
use prost_types::{Duration, ListValue, Timestamp, Value};

fn rule(kind: Kind) -> Rule {
    Rule { kind: Some(kind) }
}
fn all(rules: Vec<Rule>) -> Rule {
    rule(Kind::All(RuleGroup { rules }))
}
fn not(r: Rule) -> Rule {
    rule(Kind::Not(Box::new(r)))
}
fn num(x: f64) -> Value {
    Value {
        kind: Some(V::NumberValue(x)),
    }
}
fn cond(path: &str, operator: i32, value: Option<Value>) -> Rule {
    rule(Kind::TraitCondition(TraitCondition {
        path: path.into(),
        operator,
        value,
    }))
}
fn ok(path: &str) -> Rule {
    cond(path, Op::Eq as i32, Some(num(1.0)))
}
fn performed(within: Option<Duration>) -> Rule {
    rule(Kind::Performed(PerformedCondition {
        event_name: "e".into(),
        within,
        ..Default::default()
    }))
}

/// The violations of `rule` as (field, description).
fn violations(rule: &Rule) -> Vec<(String, String)> {
    check(rule)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn fields(rule: &Rule) -> Vec<String> {
    violations(rule).into_iter().map(|(f, _)| f).collect()
}

#[test]
fn every_violation_is_named_by_its_field() {
    let tree = all(vec![
        ok("a"),
        Rule { kind: None },
        not(cond("b", 0, Some(num(1.0)))),
        cond("c", 99, None),
        cond("first-name", Op::Eq as i32, Some(num(1.0))),
        cond("not.x", Op::Eq as i32, Some(num(1.0))),
        cond("d", Op::Eq as i32, Some(num(f64::NAN))),
        cond(
            "e",
            Op::In as i32,
            Some(Value {
                kind: Some(V::ListValue(ListValue {
                    values: vec![Value { kind: None }],
                })),
            }),
        ),
        cond("f", Op::Gt as i32, None),
        rule(Kind::RelativeTime(RelativeTimeCondition {
            path: "g".into(),
            unit: 0,
            direction: 7,
            operator: Op::Contains as i32,
            value: 1,
        })),
        rule(Kind::Performed(PerformedCondition {
            event_name: String::new(),
            property_filters: vec![PropertyFilter {
                property: String::new(),
                operator: Op::Exists as i32,
                value: None,
            }],
            count_comparison: 9,
            count: 1,
            within: Some(Duration {
                seconds: 60,
                nanos: 1,
            }),
        })),
        rule(Kind::NotPerformed(NotPerformedCondition {
            event_name: "e".into(),
            property_filters: vec![],
            since: Some(Since::SinceTime(Timestamp {
                seconds: 0,
                nanos: -1,
            })),
        })),
        rule(Kind::Engagement(EngagementCondition::default())),
    ]);
    assert_eq!(
        violations(&tree),
        [
            ("rule.all.rules[1]", "the rule is empty: set one of all, any, not, trait_condition, performed, not_performed, relative_time, in_segment or engagement"),
            ("rule.all.rules[2].not.trait_condition.operator", "the operator is not set"),
            ("rule.all.rules[3].trait_condition.operator", "unknown operator 99"),
            ("rule.all.rules[4].trait_condition.path", "the path must be identifiers joined by dots (letters, digits and `_`, not starting with a digit), e.g. company.size"),
            ("rule.all.rules[5].trait_condition.path", "the path cannot start with the keyword `not`"),
            ("rule.all.rules[6].trait_condition.value", "numbers must be finite"),
            ("rule.all.rules[7].trait_condition.value", "the value holds an element with no kind"),
            ("rule.all.rules[8].trait_condition.value", "`>` needs a value"),
            ("rule.all.rules[9].relative_time.unit", "the time unit is not set"),
            ("rule.all.rules[9].relative_time.direction", "unknown time direction 7"),
            ("rule.all.rules[9].relative_time.operator", "a relative time is compared with `==`, `!=`, `>`, `>=`, `<` or `<=`"),
            ("rule.all.rules[10].performed.event_name", "the event name is empty"),
            ("rule.all.rules[10].performed.property_filters[0].property", "the path is empty"),
            ("rule.all.rules[10].performed.within", "a window must be whole minutes"),
            ("rule.all.rules[10].performed.count_comparison", "unknown count comparison 9"),
            ("rule.all.rules[11].not_performed.since_time", "the instant must lie between the years 1 and 9999"),
            ("rule.all.rules[12].engagement.kind", "the engagement kind is not set"),
            ("rule.all.rules[12].engagement.campaign_id", "the campaign id is empty"),
        ]
        .map(|(f, d)| (f.to_owned(), d.to_owned()))
    );
}

#[test]
fn windows_run_from_one_minute_to_366_days() {
    let within = |seconds, nanos| performed(Some(Duration { seconds, nanos }));
    assert!(check(&within(60, 0)).is_ok());
    assert!(check(&within(366 * 86_400, 0)).is_ok());
    assert_eq!(fields(&within(59, 0)), ["rule.performed.within"]);
    assert_eq!(fields(&within(-60, 0)), ["rule.performed.within"]);
    assert_eq!(fields(&within(0, 0)), ["rule.performed.within"]);
    assert_eq!(fields(&within(366 * 86_400, 1)), ["rule.performed.within"]);
    assert_eq!(fields(&within(120, -1)), ["rule.performed.within"]);
    assert_eq!(fields(&within(61, 0)), ["rule.performed.within"]);
}

#[test]
fn depth_and_condition_limits_hold_for_trees() {
    let mut deep = ok("a");
    for _ in 0..15 {
        deep = not(deep);
    }
    assert!(check(&deep).is_ok());
    let too_deep = not(deep.clone());
    let field = format!("rule{}", ".not".repeat(16));
    assert_eq!(
        violations(&too_deep),
        [(
            field,
            "the rule is nested more than 16 levels deep".to_owned()
        )]
    );
    let wide = |n: usize| all((0..n).map(|_| ok("a")).collect());
    assert!(check(&wide(256)).is_ok());
    assert_eq!(
        violations(&wide(257)),
        [(
            "rule.all.rules[256]".to_owned(),
            "the rule has more than 256 conditions".to_owned()
        )]
    );
}

#[test]
fn a_tree_whose_text_is_over_16_kib_is_refused() {
    let long = Value {
        kind: Some(V::StringValue("x".repeat(8 * 1024))),
    };
    let tree = all(vec![
        cond("a", Op::Eq as i32, Some(long.clone())),
        cond("b", Op::Eq as i32, Some(long)),
    ]);
    let found = violations(&tree);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "rule");
    assert!(
        found[0]
            .1
            .starts_with("the rule's canonical text is 16403 bytes"),
        "{}",
        found[0].1
    );
}

#[test]
fn the_normal_form_spells_out_defaults() {
    let relative = |direction| {
        rule(Kind::RelativeTime(RelativeTimeCondition {
            path: "t".into(),
            unit: TimeUnit::Days as i32,
            direction,
            operator: Op::Gte as i32,
            value: 5,
        }))
    };
    let counted = |comparison, count| {
        rule(Kind::Performed(PerformedCondition {
            event_name: "e".into(),
            count_comparison: comparison as i32,
            count,
            ..Default::default()
        }))
    };
    for (tree, normal, text) in [
        (
            relative(TimeDirection::Unspecified as i32),
            relative(TimeDirection::Since as i32),
            "days_since(t) >= 5",
        ),
        (
            counted(CountComparison::Unspecified, 3),
            counted(CountComparison::AtLeast, 3),
            r#"performed("e", at_least: 3)"#,
        ),
        (
            counted(CountComparison::Unspecified, 0),
            counted(CountComparison::Unspecified, 0),
            r#"performed("e")"#,
        ),
        (
            counted(CountComparison::AtLeast, 0),
            counted(CountComparison::AtLeast, 0),
            r#"performed("e", at_least: 0)"#,
        ),
        (
            cond("a", Op::Exists as i32, Some(num(1.0))),
            cond("a", Op::Exists as i32, None),
            "exists(a)",
        ),
        (
            cond(
                "a",
                Op::In as i32,
                Some(Value {
                    kind: Some(V::ListValue(ListValue {
                        values: vec![Value {
                            kind: Some(V::NullValue(3)),
                        }],
                    })),
                }),
            ),
            cond(
                "a",
                Op::In as i32,
                Some(Value {
                    kind: Some(V::ListValue(ListValue {
                        values: vec![Value {
                            kind: Some(V::NullValue(0)),
                        }],
                    })),
                }),
            ),
            "a in [null]",
        ),
    ] {
        assert_eq!(check(&tree), Ok(()), "{text}");
        assert_eq!(normalize(&tree), normal, "{text}");
        assert_eq!(format(&tree), text);
        assert_eq!(parse(text), Ok(normal));
    }
}

#[test]
fn format_never_panics_on_invalid_trees() {
    let tree = all(vec![
        Rule { kind: None },
        cond("a", 0, None),
        cond("b", Op::Eq as i32, Some(num(f64::INFINITY))),
        performed(Some(Duration {
            seconds: 0,
            nanos: 5,
        })),
        rule(Kind::RelativeTime(RelativeTimeCondition::default())),
        rule(Kind::Engagement(EngagementCondition {
            kind: 42,
            ..Default::default()
        })),
    ]);
    assert_eq!(
        format(&tree),
        r#"? and a ? ? and b == ? and performed("e", within: ?0s) and ?() ? 0 and ?("")"#
    );
    assert!(parse(&format(&tree)).is_err());
}
