//! The rule language as a user meets it: the contract's examples, every construct, and
//! the errors with their positions.

use herald_proto::common::v1::ComparisonOperator as Op;
use herald_proto::segmentation::v1::{
    CountComparison, EngagementCondition, EngagementKind, NotPerformedCondition,
    PerformedCondition, PropertyFilter, RelativeTimeCondition, Rule, RuleGroup, SegmentCondition,
    TimeDirection, TimeUnit, TraitCondition, not_performed_condition::Since, rule::Kind,
};
use herald_rules::{ParseError, check, format, parse};
use prost_types::value::Kind as V;
use prost_types::{Duration, ListValue, Struct, Timestamp, Value};

// ---- builders -------------------------------------------------------------------------

fn rule(kind: Kind) -> Rule {
    Rule { kind: Some(kind) }
}
fn all(rules: Vec<Rule>) -> Rule {
    rule(Kind::All(RuleGroup { rules }))
}
fn any(rules: Vec<Rule>) -> Rule {
    rule(Kind::Any(RuleGroup { rules }))
}
fn not(r: Rule) -> Rule {
    rule(Kind::Not(Box::new(r)))
}
fn text(s: &str) -> Value {
    Value {
        kind: Some(V::StringValue(s.into())),
    }
}
fn num(x: f64) -> Value {
    Value {
        kind: Some(V::NumberValue(x)),
    }
}
fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(V::ListValue(ListValue { values })),
    }
}
fn cond(path: &str, op: Op, value: Option<Value>) -> Rule {
    rule(Kind::TraitCondition(TraitCondition {
        path: path.into(),
        operator: op as i32,
        value,
    }))
}
fn filter(property: &str, op: Op, value: Option<Value>) -> PropertyFilter {
    PropertyFilter {
        property: property.into(),
        operator: op as i32,
        value,
    }
}
fn minutes(m: i64) -> Duration {
    Duration {
        seconds: m * 60,
        nanos: 0,
    }
}
fn days(d: i64) -> Duration {
    minutes(d * 1440)
}
fn performed(event: &str) -> PerformedCondition {
    PerformedCondition {
        event_name: event.into(),
        ..Default::default()
    }
}
fn not_performed(event: &str, since: Option<Since>) -> Rule {
    rule(Kind::NotPerformed(NotPerformedCondition {
        event_name: event.into(),
        property_filters: vec![],
        since,
    }))
}
fn relative(path: &str, unit: TimeUnit, direction: TimeDirection, op: Op, value: i64) -> Rule {
    rule(Kind::RelativeTime(RelativeTimeCondition {
        path: path.into(),
        unit: unit as i32,
        direction: direction as i32,
        operator: op as i32,
        value,
    }))
}

/// Parses `text`, which must be valid, and checks that it is already canonical.
fn canonical(text: &str) -> Rule {
    let rule = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(format(&rule), text, "not canonical");
    assert_eq!(check(&rule), Ok(()));
    rule
}

/// Parses `text`, which must be valid, and returns its canonical text.
fn reformat(text: &str) -> String {
    format(&parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")))
}

/// The error of `text`: (line, column, offset, length, message).
fn error(text: &str) -> (u32, u32, u32, u32, String) {
    match parse(text) {
        Ok(rule) => panic!("{text:?} parsed: {rule:?}"),
        Err(ParseError {
            line,
            column,
            offset,
            length,
            message,
        }) => (line, column, offset, length, message),
    }
}

/// The message of the error of `text`, and the text it underlines.
fn message(text: &str) -> (String, String) {
    let (_, _, offset, length, message) = error(text);
    let (offset, length) = (offset as usize, length as usize);
    (message, text[offset..offset + length].to_owned())
}

// ---- the contract's examples ------------------------------------------------------------

#[test]
fn the_contract_example_reads_as_a_person_reads_it() {
    let rule = canonical(
        r#"plan == "pro" and days_since(signed_up_at) >= 5 and not performed("integration_connected")"#,
    );
    assert_eq!(
        rule,
        all(vec![
            cond("plan", Op::Eq, Some(text("pro"))),
            relative(
                "signed_up_at",
                TimeUnit::Days,
                TimeDirection::Since,
                Op::Gte,
                5
            ),
            not_performed("integration_connected", None),
        ])
    );
}

#[test]
fn the_grammar_examples_are_canonical() {
    let checkout =
        canonical(r#"performed("checkout", where: amount > 100, within: 30d, at_least: 3)"#);
    assert_eq!(
        checkout,
        rule_of(PerformedCondition {
            event_name: "checkout".into(),
            property_filters: vec![filter("amount", Op::Gt, Some(num(100.0)))],
            count_comparison: CountComparison::AtLeast as i32,
            count: 3,
            within: Some(days(30)),
        })
    );
    assert_eq!(
        canonical(r#"not performed("login", within: 14d)"#),
        not_performed("login", Some(Since::Within(days(14))))
    );
    assert_eq!(
        canonical(r#"not performed("invoice_paid", since: "2024-01-01T00:00:00Z")"#),
        not_performed(
            "invoice_paid",
            Some(Since::SinceTime(Timestamp {
                seconds: 1_704_067_200,
                nanos: 0
            }))
        )
    );
    // Parentheses the precedence makes redundant are dropped from the canonical text.
    let example =
        r#"country in ["FR", "DE"] or (exists(phone) and hours_until(trial_ends_at) < 48)"#;
    assert_eq!(
        reformat(example),
        r#"country in ["FR", "DE"] or exists(phone) and hours_until(trial_ends_at) < 48"#
    );
    assert_eq!(
        parse(example).unwrap(),
        any(vec![
            cond("country", Op::In, Some(list(vec![text("FR"), text("DE")]))),
            all(vec![
                cond("phone", Op::Exists, None),
                relative(
                    "trial_ends_at",
                    TimeUnit::Hours,
                    TimeDirection::Until,
                    Op::Lt,
                    48
                ),
            ]),
        ])
    );
    assert_eq!(
        canonical(r#"in_segment("seg_power_users") and not clicked("cmp_upgrade", within: 7d)"#),
        all(vec![
            rule(Kind::InSegment(SegmentCondition {
                segment_id: "seg_power_users".into()
            })),
            not(rule(Kind::Engagement(EngagementCondition {
                kind: EngagementKind::Clicked as i32,
                campaign_id: "cmp_upgrade".into(),
                within: Some(days(7)),
                ..Default::default()
            }))),
        ])
    );
    assert_eq!(
        canonical(r#"dismissed("cmp_tour", at_least: 2)"#),
        rule(Kind::Engagement(EngagementCondition {
            kind: EngagementKind::Dismissed as i32,
            campaign_id: "cmp_tour".into(),
            count_comparison: CountComparison::AtLeast as i32,
            count: 2,
            ..Default::default()
        }))
    );
}

fn rule_of(p: PerformedCondition) -> Rule {
    rule(Kind::Performed(p))
}

// ---- constructs -------------------------------------------------------------------------

#[test]
fn every_operator() {
    for (text, op) in [
        ("a == 1", Op::Eq),
        ("a != 1", Op::Ne),
        ("a > 1", Op::Gt),
        ("a >= 1", Op::Gte),
        ("a < 1", Op::Lt),
        ("a <= 1", Op::Lte),
        ("a contains 1", Op::Contains),
        ("a not_contains 1", Op::NotContains),
        ("a in [1]", Op::In),
        ("a not_in [1]", Op::NotIn),
    ] {
        let rule = canonical(text);
        let Some(Kind::TraitCondition(c)) = rule.kind else {
            panic!("{text}")
        };
        assert_eq!(c.operator, op as i32, "{text}");
    }
    canonical(r#"a starts_with "x""#);
    canonical(r#"a ends_with "x""#);
    assert_eq!(canonical("exists(a.b)"), cond("a.b", Op::Exists, None));
    assert_eq!(canonical("not_exists(a)"), cond("a", Op::NotExists, None));
}

#[test]
fn every_literal() {
    let value = |text: &str| match parse(&format!("a == {text}")).unwrap().kind {
        Some(Kind::TraitCondition(c)) => c.value.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        value("true"),
        Value {
            kind: Some(V::BoolValue(true))
        }
    );
    assert_eq!(
        value("false"),
        Value {
            kind: Some(V::BoolValue(false))
        }
    );
    assert_eq!(value("-1.5e3"), num(-1500.0));
    assert_eq!(value(r#""a\"b\u00e9""#), text("a\"bé"));
    assert_eq!(value("[]"), list(vec![]));
    assert_eq!(
        value(r#"[1, "x", [true]]"#),
        list(vec![
            num(1.0),
            text("x"),
            list(vec![Value {
                kind: Some(V::BoolValue(true))
            }])
        ])
    );
    let object = value(r#"{"b": 1, "a": {"c": null}}"#);
    let Some(V::StructValue(Struct { fields })) = object.kind else {
        panic!()
    };
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        reformat(r#"a == {"b":1,"a":{"c":null}, "e": []}"#),
        r#"a == {"a": {"c": null}, "b": 1, "e": []}"#
    );
    assert_eq!(reformat("a in [ 1 ,2,\n3 ]"), "a in [1, 2, 3]");
}

#[test]
fn canonical_spelling() {
    for (text, canonical) in [
        ("a==1", "a == 1"),
        ("  a   ==\n\t1  ", "a == 1"),
        ("a == 1.0", "a == 1"),
        ("a == 1E2", "a == 100"),
        ("a == 0.50", "a == 0.5"),
        ("a == 12345678901234567890", "a == 1.2345678901234567e19"),
        (r#"a == "\u0041\/""#, r#"a == "A/""#),
        (r#"a == "\u0007""#, r#"a == "\u0007""#),
        ("a . b == 1", "a.b == 1"),
        ("((a == 1))", "a == 1"),
        ("(a == 1) and (b == 1)", "a == 1 and b == 1"),
        (
            "(a == 1 and b == 1) or c == 1",
            "a == 1 and b == 1 or c == 1",
        ),
        ("not (a == 1)", "not a == 1"),
        ("all(a == 1, b == 1)", "a == 1 and b == 1"),
        ("any(a == 1, b == 1)", "a == 1 or b == 1"),
        (
            r#"performed( "e" , within : 60m )"#,
            r#"performed("e", within: 1h)"#,
        ),
        (
            r#"performed("e", within: 10080m)"#,
            r#"performed("e", within: 7d)"#,
        ),
        (
            r#"performed("e", within: 2w)"#,
            r#"performed("e", within: 14d)"#,
        ),
        (
            r#"performed("e", within: 1440m)"#,
            r#"performed("e", within: 1d)"#,
        ),
        (
            r#"performed("e", at_least: 2, within: 90m, where: a == 1)"#,
            r#"performed("e", where: a == 1, within: 90m, at_least: 2)"#,
        ),
        (
            r#"not performed("e", since: "2024-01-01T02:00:00+02:00")"#,
            r#"not performed("e", since: "2024-01-01T00:00:00Z")"#,
        ),
        (
            r#"not performed("e", since: "2024-01-01T00:00:00.250Z")"#,
            r#"not performed("e", since: "2024-01-01T00:00:00.25Z")"#,
        ),
        (
            r#"not performed("e", since: "1969-12-31T23:59:59.5-00:00")"#,
            r#"not performed("e", since: "1969-12-31T23:59:59.5Z")"#,
        ),
        ("days_since(a) >= -0", "days_since(a) >= 0"),
    ] {
        assert_eq!(reformat(text), canonical, "{text}");
        assert_eq!(reformat(canonical), canonical, "{canonical}");
    }
}

#[test]
fn precedence_not_then_and_then_or() {
    let (a, b, c) = (
        cond("a", Op::Eq, Some(num(1.0))),
        cond("b", Op::Eq, Some(num(1.0))),
        cond("c", Op::Eq, Some(num(1.0))),
    );
    assert_eq!(
        parse("a == 1 or b == 1 and c == 1").unwrap(),
        any(vec![a.clone(), all(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        parse("a == 1 and b == 1 or c == 1").unwrap(),
        any(vec![all(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        parse("not a == 1 and b == 1").unwrap(),
        all(vec![not(a.clone()), b.clone()])
    );
    assert_eq!(
        canonical("not (a == 1 and b == 1)"),
        not(all(vec![a.clone(), b.clone()]))
    );
    assert_eq!(
        canonical("(a == 1 or b == 1) and c == 1"),
        all(vec![any(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        parse("a == 1 and b == 1 and c == 1").unwrap(),
        all(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(canonical("not not a == 1"), not(not(a.clone())));
}

#[test]
fn nested_groups_keep_their_shape() {
    let (a, b, c) = (
        cond("a", Op::Eq, Some(num(1.0))),
        cond("b", Op::Eq, Some(num(1.0))),
        cond("c", Op::Eq, Some(num(1.0))),
    );
    assert_eq!(
        canonical("a == 1 and (b == 1 and c == 1)"),
        all(vec![a.clone(), all(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        canonical("(a == 1 or b == 1) or c == 1"),
        any(vec![any(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(canonical("all()"), all(vec![]));
    assert_eq!(canonical("any()"), any(vec![]));
    assert_eq!(canonical("all(a == 1)"), all(vec![a.clone()]));
    assert_eq!(
        canonical("any(a == 1 or b == 1)"),
        any(vec![any(vec![a.clone(), b.clone()])])
    );
    assert_eq!(canonical("not all()"), not(all(vec![])));
    assert_eq!(
        canonical("all(all(a == 1)) and any()"),
        all(vec![all(vec![all(vec![a.clone()])]), any(vec![])])
    );
    assert_eq!(
        reformat("all(a == 1 or b == 1, c == 1)"),
        "(a == 1 or b == 1) and c == 1"
    );
}

#[test]
fn relative_time_in_every_unit_and_direction() {
    for (name, unit, direction) in [
        ("minutes_since", TimeUnit::Minutes, TimeDirection::Since),
        ("hours_until", TimeUnit::Hours, TimeDirection::Until),
        ("days_until", TimeUnit::Days, TimeDirection::Until),
        ("weeks_since", TimeUnit::Weeks, TimeDirection::Since),
    ] {
        assert_eq!(
            canonical(&format!("{name}(user.t) != -3")),
            relative("user.t", unit, direction, Op::Ne, -3)
        );
    }
}

#[test]
fn performed_and_not_performed() {
    assert_eq!(canonical(r#"performed("e")"#), rule_of(performed("e")));
    assert_eq!(
        canonical(r#"performed("e", where: a.b > 1 and exists(c) and d in ["x"], at_most: 0)"#),
        rule_of(PerformedCondition {
            property_filters: vec![
                filter("a.b", Op::Gt, Some(num(1.0))),
                filter("c", Op::Exists, None),
                filter("d", Op::In, Some(list(vec![text("x")]))),
            ],
            count_comparison: CountComparison::AtMost as i32,
            ..performed("e")
        })
    );
    assert_eq!(
        canonical(r#"performed("e", exactly: 2)"#),
        rule_of(PerformedCondition {
            count_comparison: CountComparison::Exactly as i32,
            count: 2,
            ..performed("e")
        })
    );
    // `and` after the filters' closing parenthesis is the rule's own.
    assert_eq!(
        canonical(r#"performed("e", where: a == 1 and b == 2) and c == 3"#),
        all(vec![
            rule_of(PerformedCondition {
                property_filters: vec![
                    filter("a", Op::Eq, Some(num(1.0))),
                    filter("b", Op::Eq, Some(num(2.0)))
                ],
                ..performed("e")
            }),
            cond("c", Op::Eq, Some(num(3.0))),
        ])
    );
    // With a count, `not performed` is not over performed.
    assert_eq!(
        canonical(r#"not performed("e", within: 7d, at_least: 2)"#),
        not(rule_of(PerformedCondition {
            count_comparison: CountComparison::AtLeast as i32,
            count: 2,
            within: Some(days(7)),
            ..performed("e")
        }))
    );
    // A not over a count-less performed keeps its shape in parentheses.
    assert_eq!(
        canonical(r#"not (performed("e", within: 7d))"#),
        not(rule_of(PerformedCondition {
            within: Some(days(7)),
            ..performed("e")
        }))
    );
    assert_eq!(
        canonical(r#"not performed("e", where: a == 1)"#),
        rule(Kind::NotPerformed(NotPerformedCondition {
            event_name: "e".into(),
            property_filters: vec![filter("a", Op::Eq, Some(num(1.0)))],
            since: None,
        }))
    );
    assert_eq!(
        canonical(r#"not not performed("e")"#),
        not(not_performed("e", None))
    );
}

#[test]
fn engagement_in_every_kind() {
    for (name, kind) in [
        ("received", EngagementKind::Received),
        ("displayed", EngagementKind::Displayed),
        ("clicked", EngagementKind::Clicked),
        ("dismissed", EngagementKind::Dismissed),
    ] {
        assert_eq!(
            canonical(&format!(r#"{name}("cmp_1", within: 90m, exactly: 0)"#)),
            rule(Kind::Engagement(EngagementCondition {
                kind: kind as i32,
                campaign_id: "cmp_1".into(),
                within: Some(minutes(90)),
                count_comparison: CountComparison::Exactly as i32,
                count: 0,
            }))
        );
    }
}

#[test]
fn function_names_and_keywords_can_be_path_keys() {
    assert_eq!(
        canonical("performed == true"),
        cond(
            "performed",
            Op::Eq,
            Some(Value {
                kind: Some(V::BoolValue(true))
            })
        )
    );
    canonical("exists == 1 and all.any == 2 and a.not == 3 and in == 4 and where.and == 5");
    canonical(r#"performed("e", where: within == 1 and since > 2)"#);
    canonical("not performed == 1");
}

// ---- errors ------------------------------------------------------------------------------

#[test]
fn a_missing_value_is_reported_at_the_end() {
    assert_eq!(
        error("plan == "),
        (1, 9, 8, 0, "expected a value after `==`".into())
    );
    assert_eq!(
        error("plan =="),
        (1, 8, 7, 0, "expected a value after `==`".into())
    );
    assert_eq!(
        error("a == 1 and\n  plan == )"),
        (
            2,
            11,
            21,
            1,
            "expected a value after `==`, found `)`".into()
        )
    );
}

#[test]
fn syntax_errors_say_what_was_expected() {
    for (text, expected, at) in [
        ("", "expected a condition", ""),
        ("   ", "expected a condition", ""),
        ("a == 1 and", "expected a condition after `and`", ""),
        (
            "a == 1 or or b == 1",
            "expected a condition after `or`, found `or`",
            "or",
        ),
        ("not", "expected a condition after `not`", ""),
        ("(a == 1", "expected `)` to close `(`", ""),
        ("a == 1)", "unmatched `)`", ")"),
        (
            "a == 1 b == 2",
            "expected `and`, `or` or the end of the rule, found `b`",
            "b",
        ),
        (
            "plan is \"pro\"",
            "expected an operator such as `==`, `>` or `in` after `plan`, found `is`",
            "is",
        ),
        (
            "company.size",
            "expected an operator such as `==`, `>` or `in` after `company.size`",
            "",
        ),
        (
            "plan == pro",
            "expected a value after `==`, found `pro`; strings are written in double quotes",
            "pro",
        ),
        ("a. == 1", "expected a key after `.`, found `==`", "=="),
        ("a in [1, 2", "expected `,` or `]` to close `[`", ""),
        ("a in [1,]", "expected a value after `,`, found `]`", "]"),
        (
            r#"a == {"k" 1}"#,
            "expected `:` after `\"k\"`, found `1`",
            "1",
        ),
        (
            r#"a == {k: 1}"#,
            "expected a key in double quotes after `{`, found `k`",
            "k",
        ),
        (
            r#"a == {"k": 1, "k": 2}"#,
            "duplicate key `\"k\"` in an object",
            "\"k\"",
        ),
        (
            "dayz_since(a) > 1",
            "unknown function `dayz_since`; did you mean `days_since`?",
            "dayz_since",
        ),
        (
            "frobnicate(a)",
            "unknown function `frobnicate`",
            "frobnicate",
        ),
        (
            "exists(\"phone\")",
            "expected a path after `exists(`, found `\"phone\"`",
            "\"phone\"",
        ),
        ("exists(phone", "expected `)` to close `exists(`", ""),
        (
            "exists(and)",
            "`and` is a keyword and cannot start a path",
            "and",
        ),
        (
            "days_since(a) in [1]",
            "expected a comparison (`==`, `!=`, `>`, `>=`, `<` or `<=`) after `days_since(a)`, found `in`",
            "in",
        ),
        (
            "days_since(a) > 1.5",
            "expected a whole number after `>`, found `1.5`",
            "1.5",
        ),
        (
            "days_since(a) > 99999999999999999999",
            "whole number out of range",
            "99999999999999999999",
        ),
        (
            "performed(checkout)",
            "expected the event name as a string after `performed(`, found `checkout`",
            "checkout",
        ),
        (
            "performed(\"e\"",
            "expected `,` or `)` to close `performed(`",
            "",
        ),
        (
            "performed(\"e\" and a == 1)",
            "expected `,` or `)` to close `performed(`, found `and`",
            "and",
        ),
        (
            "performed(\"e\",)",
            "expected an argument (`where`, `within`, `since`, `at_least`, `at_most`, `exactly`) after `,`, found `)`",
            ")",
        ),
        (
            "performed(\"e\", whithin: 7d)",
            "unknown argument `whithin`; did you mean `within`?",
            "whithin",
        ),
        (
            "performed(\"e\", frequency: 7d)",
            "unknown argument `frequency`; the arguments of `performed(` are `where`, `within`, `since`, `at_least`, `at_most`, `exactly`",
            "frequency",
        ),
        (
            "performed(\"e\", within 7d)",
            "expected `:` after `within`, found `7d`",
            "7d",
        ),
        (
            "performed(\"e\", within: 7)",
            "expected a duration after `within:`: a whole number and a unit (s, m, h, d or w), e.g. `7d`, found `7`",
            "7",
        ),
        (
            "performed(\"e\", within: \"7d\")",
            "expected a duration such as `7d` after `within:`, found `\"7d\"`",
            "\"7d\"",
        ),
        (
            "performed(\"e\", within: 7days)",
            "unknown duration unit `days`; use s, m, h, d or w",
            "days",
        ),
        (
            "performed(\"e\", within: 7d, within: 8d)",
            "`within` is given twice",
            "within",
        ),
        (
            "performed(\"e\", at_least: 1, exactly: 2)",
            "only one of `at_least`, `at_most` and `exactly` can be given",
            "exactly",
        ),
        (
            "performed(\"e\", at_least: -1)",
            "a count cannot be negative",
            "-1",
        ),
        (
            "performed(\"e\", at_least: 4294967296)",
            "a count must be at most 4294967295",
            "4294967296",
        ),
        (
            "performed(\"e\", at_least: x)",
            "expected a whole number after `at_least:`, found `x`",
            "x",
        ),
        (
            "performed(\"e\", since: \"2024-01-01T00:00:00Z\")",
            "`since` is only allowed in `not performed(…)`; use `within` here",
            "since",
        ),
        (
            "not performed(\"e\", since: \"2024-01-01T00:00:00Z\", at_least: 2)",
            "`not performed(…)` with `since` takes no count",
            "at_least",
        ),
        (
            "not performed(\"e\", since: \"2024-01-01T00:00:00Z\", within: 1d)",
            "`since` and `within` cannot both be given",
            "within",
        ),
        (
            "not performed(\"e\", since: \"yesterday\")",
            "expected an RFC 3339 instant such as \"2024-01-01T00:00:00Z\"",
            "\"yesterday\"",
        ),
        (
            "not performed(\"e\", since: 2024)",
            "expected an RFC 3339 instant such as \"2024-01-01T00:00:00Z\" after `since:`, found `2024`",
            "2024",
        ),
        (
            "performed(\"e\", where: )",
            "expected a filter after `where:`, found `)`",
            ")",
        ),
        (
            "performed(\"e\", where: a == 1 and )",
            "expected a filter after `and`, found `)`",
            ")",
        ),
        (
            "performed(\"e\", where: days_since(a) > 1)",
            "`days_since(…)` cannot be used here; a filter is `path op value`, `exists(path)` or `not_exists(path)`",
            "days_since",
        ),
        (
            "performed(\"e\", where: (a == 1))",
            "expected a filter after `where:`, found `(`",
            "(",
        ),
        (
            "clicked(\"c\", where: a == 1)",
            "`clicked(` takes no `where`; its arguments are `within`, `at_least`, `at_most`, `exactly`",
            "where",
        ),
        (
            "clicked(\"c\", since: \"2024-01-01T00:00:00Z\")",
            "`clicked(` takes no `since`; its arguments are `within`, `at_least`, `at_most`, `exactly`",
            "since",
        ),
        (
            "clicked(cmp)",
            "expected the campaign id as a string after `clicked(`, found `cmp`",
            "cmp",
        ),
        (
            "in_segment(\"s\", within: 1d)",
            "expected `)` to close `in_segment(`, found `,`",
            ",",
        ),
        (
            "in_segment()",
            "expected the segment id as a string after `in_segment(`, found `)`",
            ")",
        ),
        (
            "all(a == 1 b == 1)",
            "expected `,` or `)` to close `all(`, found `b`",
            "b",
        ),
        (
            "a == 1 && b == 1",
            "unexpected `&`; combine conditions with `and`",
            "&&",
        ),
        ("a = 1", "unexpected `=`; compare with `==`", "="),
        ("a == 'x'", "strings are written in double quotes", "'"),
        (
            "a == \"x",
            "unterminated string; expected a closing `\"`",
            "\"x",
        ),
        ("a == 01", "numbers cannot have leading zeros", "01"),
        ("a == 1e999", "number out of range", "1e999"),
        ("a == 7d", "expected a value after `==`, found `7d`", "7d"),
    ] {
        assert_eq!(
            message(text),
            (expected.to_owned(), at.to_owned()),
            "{text}"
        );
    }
}

#[test]
fn the_first_error_in_the_text_wins() {
    // A syntax error before a bad character.
    assert_eq!(
        message("a == and @").0,
        "expected a value after `==`, found `and`"
    );
    // A bad character before a syntax error.
    assert_eq!(message("a == @ and").0, "unexpected character `@`");
    // Of two checker violations, the one written first.
    assert_eq!(
        message(r#"performed("", within: 45s)"#),
        ("the event name is empty".into(), "\"\"".into())
    );
}

#[test]
fn check_violations_point_at_their_part() {
    for (text, expected, at) in [
        (
            r#"performed("e", within: 45s)"#,
            "a window must be at least 1 minute",
            "45s",
        ),
        (
            r#"performed("e", within: 90s)"#,
            "a window must be whole minutes",
            "90s",
        ),
        (
            r#"performed("e", within: 367d)"#,
            "a window must be at most 366 days",
            "367d",
        ),
        (
            r#"not performed("e", within: 0m)"#,
            "a window must be at least 1 minute",
            "0m",
        ),
        (
            r#"clicked("c", within: 53w)"#,
            "a window must be at most 366 days",
            "53w",
        ),
        (
            r#"not performed("e", since: "0000-01-01T00:00:00Z")"#,
            "the instant must lie between the years 1 and 9999",
            "\"0000-01-01T00:00:00Z\"",
        ),
        (
            "plan > true",
            "`>` compares only numbers and strings",
            "true",
        ),
        (
            "plan in \"pro\"",
            "`in` needs a list of values, e.g. [\"a\", \"b\"]",
            "\"pro\"",
        ),
        ("plan starts_with 1", "`starts_with` needs a string", "1"),
        (
            "plan == null",
            "`==` cannot compare with null; use exists(…) or not_exists(…)",
            "null",
        ),
        (
            r#"performed("e", where: a != null)"#,
            "`!=` cannot compare with null; use exists(…) or not_exists(…)",
            "null",
        ),
        (r#"performed("")"#, "the event name is empty", "\"\""),
        (r#"in_segment("")"#, "the segment id is empty", "\"\""),
        (r#"clicked("")"#, "the campaign id is empty", "\"\""),
    ] {
        assert_eq!(
            message(text),
            (expected.to_owned(), at.to_owned()),
            "{text}"
        );
    }
    let long = "e".repeat(129);
    assert_eq!(
        message(&format!("performed(\"{long}\")")).0,
        "the event name must be at most 128 characters, got 129"
    );
    let path = vec!["a"; 129].join(".");
    assert_eq!(
        message(&format!("{path} == 1")),
        (
            "the path must be at most 256 characters, got 257".into(),
            path.clone()
        )
    );
}

#[test]
fn limits() {
    // 16 KiB of text, checked first.
    let long = format!("a == \"{}\"", "x".repeat(16 * 1024));
    let (line, column, offset, length, too_long) = error(&long);
    assert_eq!((line, column, offset), (1, 16_385, 16_384));
    assert_eq!(length as usize, long.len() - 16_384);
    assert_eq!(
        too_long,
        format!(
            "the rule text is {} bytes; at most 16384 bytes (16 KiB) are allowed",
            long.len()
        )
    );
    let fits = format!("a == \"{}\"", "x".repeat(16 * 1024 - 7));
    assert_eq!(fits.len(), 16 * 1024);
    parse(&fits).unwrap();

    // 16 levels: a condition under 15 `not`s is fine, under 16 it is too deep.
    let nested = |n: usize| format!("{}a == 1", "not ".repeat(n));
    canonical(&nested(15));
    let text = nested(16);
    assert_eq!(
        message(&text),
        (
            "the rule is nested more than 16 levels deep".into(),
            "a == 1".into()
        )
    );
    // Parentheses add no level.
    parse(&format!("{}a == 1{}", "(".repeat(40), ")".repeat(40))).unwrap();
    // But no text can nest without bound.
    let deep = format!("{}a == 1{}", "(".repeat(4_000), ")".repeat(4_000));
    assert_eq!(
        error(&deep).4,
        "the rule is nested too deeply; a rule has at most 16 levels"
    );
    let deep = format!("{}a == 1", "not ".repeat(4_000));
    assert_eq!(
        error(&deep).4,
        "the rule is nested too deeply; a rule has at most 16 levels"
    );

    // 256 conditions.
    let conditions = |n: usize| {
        (0..n)
            .map(|i| format!("a == {i}"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    parse(&conditions(256)).unwrap();
    assert_eq!(
        message(&conditions(257)),
        (
            "the rule has more than 256 conditions".into(),
            "a == 256".into()
        )
    );

    // Values nest 16 deep.
    let value = |n: usize| format!("a == {}1{}", "[".repeat(n - 1), "]".repeat(n - 1));
    parse(&value(16)).unwrap();
    assert_eq!(
        message(&value(17)),
        (
            "the value is nested more than 16 levels deep".into(),
            "1".into()
        )
    );
    let deep = format!("a == {}", "[".repeat(10_000));
    assert_eq!(
        error(&deep).4,
        "the value is nested more than 16 levels deep"
    );
}

#[test]
fn lines_and_columns_count_characters() {
    let text = "plan == \"é\" and\r\n  dayz_since(x) > 1";
    let (line, column, offset, length, _) = error(text);
    assert_eq!((line, column, length), (2, 3, 10));
    assert_eq!(&text[offset as usize..][..10], "dayz_since");
    let (line, column, _, _, _) = error("a == \"ü\" and é");
    assert_eq!((line, column), (1, 14));
}

#[test]
fn errors_convert_to_the_contract() {
    let e = parse("plan == ").unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected a value after `==` (line 1, column 9)"
    );
    let e: herald_proto::segmentation::v1::ParseError = e.into();
    assert_eq!((e.line, e.column, e.offset, e.length), (1, 9, 8, 0));
}
