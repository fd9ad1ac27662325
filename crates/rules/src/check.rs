//! The checker: the limits and rules of the contract, on a tree however it was written.
//! The parser runs it too, so a rule is refused alike as text and as a tree.

use herald_conditions::Operator;
use herald_core::{FieldViolation, Violations};
use herald_proto::segmentation::v1::{
    CountComparison, EngagementKind, PropertyFilter, Rule, TimeDirection, TimeUnit,
    not_performed_condition::Since, rule::Kind,
};
use prost_types::Value;
use prost_types::value::Kind as ValueKind;

use crate::limits::{
    MAX_CAMPAIGN_ID, MAX_CONDITIONS, MAX_DEPTH, MAX_EVENT_NAME, MAX_PATH, MAX_SEGMENT_ID,
    MAX_TEXT_BYTES, MAX_VALUE_DEPTH, MAX_WINDOW_SECONDS, MIN_WINDOW_SECONDS,
};
use crate::names::{RESERVED, is_comparison, operator_text};

/// Checks `rule` against the contract: exactly one kind in every node, at most
/// [`MAX_DEPTH`] levels and [`MAX_CONDITIONS`] conditions, paths of identifiers, names
/// and ids of the allowed lengths, windows of whole minutes from one minute to 366 days,
/// instants between the years 1 and 9999, known enum values, operators with values of
/// the types they compare, and a canonical text of at most 16 KiB.
///
/// Every violation is reported, in the order of the tree, at its field path from `rule`
/// (e.g. `rule.all.rules[2].performed.within`); nest them under the request's field
/// with [`FieldViolation::nested`]. References to other segments are checked by
/// [`check_references`](crate::check_references), which needs those segments.
pub fn check(rule: &Rule) -> Result<(), Vec<FieldViolation>> {
    let mut checker = Checker {
        out: Violations::new(),
        conditions: 0,
    };
    checker.rule(rule, "rule", 1);
    if checker.out.is_empty() {
        let text = crate::format(rule).len();
        if text > MAX_TEXT_BYTES {
            checker.out.push(
                "rule",
                format!(
                    "the rule's canonical text is {text} bytes; at most {MAX_TEXT_BYTES} bytes (16 KiB) are allowed"
                ),
            );
        }
    }
    checker.out.finish()
}

struct Checker {
    out: Violations,
    conditions: usize,
}

impl Checker {
    fn rule(&mut self, rule: &Rule, field: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.out.push(
                field,
                format!("the rule is nested more than {MAX_DEPTH} levels deep"),
            );
            return;
        }
        let Some(kind) = &rule.kind else {
            self.out.push(
                field,
                "the rule is empty: set one of all, any, not, trait_condition, performed, \
                 not_performed, relative_time, in_segment or engagement",
            );
            return;
        };
        match kind {
            Kind::All(g) | Kind::Any(g) => {
                let name = if matches!(kind, Kind::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (i, child) in g.rules.iter().enumerate() {
                    self.rule(child, &format!("{field}.{name}.rules[{i}]"), depth + 1);
                }
                return;
            }
            Kind::Not(child) => {
                self.rule(child, &format!("{field}.not"), depth + 1);
                return;
            }
            _ => {}
        }
        self.conditions += 1;
        if self.conditions == MAX_CONDITIONS + 1 {
            self.out.push(
                field,
                format!("the rule has more than {MAX_CONDITIONS} conditions"),
            );
        }
        match kind {
            Kind::All(_) | Kind::Any(_) | Kind::Not(_) => {}
            Kind::TraitCondition(c) => self.comparison(
                &format!("{field}.trait_condition"),
                "path",
                &c.path,
                c.operator,
                c.value.as_ref(),
            ),
            Kind::Performed(c) => {
                let field = format!("{field}.performed");
                self.text(
                    &field,
                    "event_name",
                    "the event name",
                    &c.event_name,
                    MAX_EVENT_NAME,
                );
                self.filters(&field, &c.property_filters);
                if let Some(within) = &c.within {
                    self.window(&format!("{field}.within"), within);
                }
                self.count_comparison(&field, c.count_comparison);
            }
            Kind::NotPerformed(c) => {
                let field = format!("{field}.not_performed");
                self.text(
                    &field,
                    "event_name",
                    "the event name",
                    &c.event_name,
                    MAX_EVENT_NAME,
                );
                self.filters(&field, &c.property_filters);
                match &c.since {
                    Some(Since::Within(within)) => self.window(&format!("{field}.within"), within),
                    Some(Since::SinceTime(at)) => self.instant(&format!("{field}.since_time"), at),
                    None => {}
                }
            }
            Kind::RelativeTime(c) => {
                let field = format!("{field}.relative_time");
                self.path(&format!("{field}.path"), &c.path);
                match TimeUnit::try_from(c.unit) {
                    Ok(TimeUnit::Unspecified) => {
                        self.out
                            .push(format!("{field}.unit"), "the time unit is not set");
                    }
                    Err(_) => self.out.push(
                        format!("{field}.unit"),
                        format!("unknown time unit {}", c.unit),
                    ),
                    Ok(_) => {}
                }
                if TimeDirection::try_from(c.direction).is_err() {
                    self.out.push(
                        format!("{field}.direction"),
                        format!("unknown time direction {}", c.direction),
                    );
                }
                if !Operator::from_proto(c.operator).is_some_and(is_comparison) {
                    self.out.push(
                        format!("{field}.operator"),
                        "a relative time is compared with `==`, `!=`, `>`, `>=`, `<` or `<=`",
                    );
                }
            }
            Kind::InSegment(c) => self.text(
                &format!("{field}.in_segment"),
                "segment_id",
                "the segment id",
                &c.segment_id,
                MAX_SEGMENT_ID,
            ),
            Kind::Engagement(c) => {
                let field = format!("{field}.engagement");
                match EngagementKind::try_from(c.kind) {
                    Ok(EngagementKind::Unspecified) => self
                        .out
                        .push(format!("{field}.kind"), "the engagement kind is not set"),
                    Err(_) => self.out.push(
                        format!("{field}.kind"),
                        format!("unknown engagement kind {}", c.kind),
                    ),
                    Ok(_) => {}
                }
                self.text(
                    &field,
                    "campaign_id",
                    "the campaign id",
                    &c.campaign_id,
                    MAX_CAMPAIGN_ID,
                );
                if let Some(within) = &c.within {
                    self.window(&format!("{field}.within"), within);
                }
                self.count_comparison(&field, c.count_comparison);
            }
        }
    }

    /// A required text field of at most `max` characters.
    fn text(&mut self, parent: &str, name: &str, subject: &str, value: &str, max: usize) {
        let length = value.chars().count();
        if length == 0 {
            self.out
                .push(format!("{parent}.{name}"), format!("{subject} is empty"));
        } else if length > max {
            self.out.push(
                format!("{parent}.{name}"),
                format!("{subject} must be at most {max} characters, got {length}"),
            );
        }
    }

    fn path(&mut self, field: &str, path: &str) {
        let length = path.chars().count();
        if length == 0 {
            self.out.push(field, "the path is empty");
        } else if length > MAX_PATH {
            self.out.push(
                field,
                format!("the path must be at most {MAX_PATH} characters, got {length}"),
            );
        } else if !path.split('.').all(is_ident) {
            self.out.push(
                field,
                "the path must be identifiers joined by dots (letters, digits and `_`, \
                 not starting with a digit), e.g. company.size",
            );
        } else if let Some(first) = RESERVED.iter().find(|r| path.split('.').next() == Some(r)) {
            self.out.push(
                field,
                format!("the path cannot start with the keyword `{first}`"),
            );
        }
    }

    fn filters(&mut self, parent: &str, filters: &[PropertyFilter]) {
        for (i, f) in filters.iter().enumerate() {
            self.comparison(
                &format!("{parent}.property_filters[{i}]"),
                "property",
                &f.property,
                f.operator,
                f.value.as_ref(),
            );
        }
    }

    /// A trait condition or a property filter, at `field`.
    fn comparison(
        &mut self,
        field: &str,
        path_field: &str,
        path: &str,
        operator: i32,
        value: Option<&Value>,
    ) {
        self.path(&format!("{field}.{path_field}"), path);
        match Operator::from_proto(operator) {
            Some(op) => {
                if let Some(problem) = value_problem(op, value) {
                    self.out.push(format!("{field}.value"), problem);
                }
            }
            None if operator == 0 => {
                self.out
                    .push(format!("{field}.operator"), "the operator is not set");
            }
            None => self.out.push(
                format!("{field}.operator"),
                format!("unknown operator {operator}"),
            ),
        }
    }

    fn count_comparison(&mut self, parent: &str, comparison: i32) {
        if CountComparison::try_from(comparison).is_err() {
            self.out.push(
                format!("{parent}.count_comparison"),
                format!("unknown count comparison {comparison}"),
            );
        }
    }

    fn window(&mut self, field: &str, d: &prost_types::Duration) {
        let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
        let minute = i128::from(MIN_WINDOW_SECONDS) * 1_000_000_000;
        let problem = if nanos < minute {
            "a window must be at least 1 minute"
        } else if nanos > i128::from(MAX_WINDOW_SECONDS) * 1_000_000_000 {
            "a window must be at most 366 days"
        } else if nanos % minute != 0 {
            "a window must be whole minutes"
        } else {
            return;
        };
        self.out.push(field, problem);
    }

    fn instant(&mut self, field: &str, at: &prost_types::Timestamp) {
        // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of protobuf's Timestamp.
        const FIRST: i64 = -62_135_596_800;
        const LAST: i64 = 253_402_300_799;
        if !(FIRST..=LAST).contains(&at.seconds) || !(0..1_000_000_000).contains(&at.nanos) {
            self.out
                .push(field, "the instant must lie between the years 1 and 9999");
        }
    }
}

fn is_ident(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What is wrong with comparing by `op` with `value`, if anything.
fn value_problem(op: Operator, value: Option<&Value>) -> Option<String> {
    use Operator as Op;
    let text = operator_text(op);
    if matches!(op, Op::Exists | Op::NotExists) {
        return None;
    }
    let Some(kind) = value.and_then(|v| v.kind.as_ref()) else {
        return Some(format!("`{text}` needs a value"));
    };
    if let Some(problem) = value.and_then(|v| shape_problem(v, 1)) {
        return Some(problem);
    }
    match (op, kind) {
        (_, ValueKind::NullValue(_)) => Some(format!(
            "`{text}` cannot compare with null; use exists(…) or not_exists(…)"
        )),
        (Op::In | Op::NotIn, ValueKind::ListValue(_)) => None,
        (Op::In | Op::NotIn, _) => Some(format!(
            "`{text}` needs a list of values, e.g. [\"a\", \"b\"]"
        )),
        (
            Op::Gt | Op::Gte | Op::Lt | Op::Lte,
            ValueKind::NumberValue(_) | ValueKind::StringValue(_),
        ) => None,
        (Op::Gt | Op::Gte | Op::Lt | Op::Lte, _) => {
            Some(format!("`{text}` compares only numbers and strings"))
        }
        (Op::StartsWith | Op::EndsWith, ValueKind::StringValue(_)) => None,
        (Op::StartsWith | Op::EndsWith, _) => Some(format!("`{text}` needs a string")),
        _ => None,
    }
}

/// What makes `value` impossible to write as JSON text, if anything.
fn shape_problem(value: &Value, depth: usize) -> Option<String> {
    if depth > MAX_VALUE_DEPTH {
        return Some(format!(
            "the value is nested more than {MAX_VALUE_DEPTH} levels deep"
        ));
    }
    match &value.kind {
        None => Some("the value holds an element with no kind".to_owned()),
        Some(ValueKind::NumberValue(x)) if !x.is_finite() => {
            Some("numbers must be finite".to_owned())
        }
        Some(ValueKind::ListValue(list)) => {
            list.values.iter().find_map(|v| shape_problem(v, depth + 1))
        }
        Some(ValueKind::StructValue(object)) => object
            .fields
            .values()
            .find_map(|v| shape_problem(v, depth + 1)),
        _ => None,
    }
}
