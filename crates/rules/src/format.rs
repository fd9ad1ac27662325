//! The formatter: a tree as its canonical text.
//!
//! Canonical means: one space around binary operators and after commas and colons,
//! parentheses only where precedence needs them to keep the tree's shape, arguments in
//! the order `where`, `within`/`since`, count, numbers in their shortest form that reads
//! back as the same `f64`, strings JSON-escaped (only `"`, `\` and control characters),
//! instants in UTC (`Z`), and durations in the largest of days, hours, minutes and
//! seconds that divides them (weeks are read, but written in days: `14d`, as in the
//! contract's examples).

use std::fmt::Write as _;

use herald_conditions::Operator;
use herald_proto::segmentation::v1::{
    CountComparison, PropertyFilter, Rule, not_performed_condition::Since, rule::Kind,
};
use prost_types::Value;
use prost_types::value::Kind as ValueKind;

use crate::names::{DURATION_UNITS, engagement_name, operator_text, time_function_name};

/// The canonical text of `rule`. Total: any tree prints, but only a tree that passes
/// [`check`](crate::check) is guaranteed to print as text that parses back, to
/// [`normalize`](crate::normalize)`(rule)`. Parts a valid tree cannot have (an unset
/// kind or operator, a non-finite number) print as `?`.
pub fn format(rule: &Rule) -> String {
    let mut out = String::new();
    write_rule(&mut out, rule, Level::Or);
    out
}

/// How loosely an expression binds: an `or` chain, an `and` chain, or anything else
/// (`not`, a condition, a group call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Or,
    And,
    Unary,
}

fn level(rule: &Rule) -> Level {
    match &rule.kind {
        Some(Kind::Any(g)) if g.rules.len() >= 2 => Level::Or,
        Some(Kind::All(g)) if g.rules.len() >= 2 => Level::And,
        _ => Level::Unary,
    }
}

/// Writes `rule` where an expression of at least `min` is expected, in parentheses
/// when it binds more loosely. A chain inside a chain of the same kind is parenthesised
/// too, so that `a and (b and c)` keeps its nested group.
fn write_rule(out: &mut String, rule: &Rule, min: Level) {
    if level(rule) < min {
        out.push('(');
        write_bare(out, rule);
        out.push(')');
    } else {
        write_bare(out, rule);
    }
}

fn write_bare(out: &mut String, rule: &Rule) {
    let Some(kind) = &rule.kind else {
        out.push('?');
        return;
    };
    match kind {
        Kind::Any(g) | Kind::All(g) if g.rules.len() >= 2 => {
            let (separator, min) = if matches!(kind, Kind::Any(_)) {
                (" or ", Level::And)
            } else {
                (" and ", Level::Unary)
            };
            for (i, child) in g.rules.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                write_rule(out, child, min);
            }
        }
        // Groups of fewer than two rules have no infix form.
        Kind::Any(g) | Kind::All(g) => {
            out.push_str(if matches!(kind, Kind::Any(_)) {
                "any("
            } else {
                "all("
            });
            for (i, child) in g.rules.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rule(out, child, Level::Or);
            }
            out.push(')');
        }
        Kind::Not(child) => {
            out.push_str("not ");
            // `not performed("E")` without a count reads as not_performed; a not over
            // such a performed keeps its shape in parentheses.
            match &child.kind {
                Some(Kind::Performed(p)) if !has_count(p.count_comparison, p.count) => {
                    out.push('(');
                    write_bare(out, child);
                    out.push(')');
                }
                _ => write_rule(out, child, Level::Unary),
            }
        }
        Kind::TraitCondition(c) => write_comparison(out, &c.path, c.operator, c.value.as_ref()),
        Kind::Performed(c) => {
            out.push_str("performed(");
            write_string(out, &c.event_name);
            write_filters(out, &c.property_filters);
            if let Some(within) = &c.within {
                out.push_str(", within: ");
                write_duration(out, within);
            }
            write_count(out, c.count_comparison, c.count);
            out.push(')');
        }
        Kind::NotPerformed(c) => {
            out.push_str("not performed(");
            write_string(out, &c.event_name);
            write_filters(out, &c.property_filters);
            match &c.since {
                Some(Since::Within(within)) => {
                    out.push_str(", within: ");
                    write_duration(out, within);
                }
                Some(Since::SinceTime(at)) => {
                    out.push_str(", since: ");
                    match jiff::Timestamp::new(at.seconds, at.nanos) {
                        Ok(at) => write_string(out, &at.to_string()),
                        Err(_) => out.push('?'),
                    }
                }
                None => {}
            }
            out.push(')');
        }
        Kind::RelativeTime(c) => {
            out.push_str(
                time_function_name(c.unit, c.direction)
                    .as_deref()
                    .unwrap_or("?"),
            );
            out.push('(');
            out.push_str(&c.path);
            out.push_str(") ");
            out.push_str(Operator::from_proto(c.operator).map_or("?", operator_text));
            let _ = write!(out, " {}", c.value);
        }
        Kind::InSegment(c) => {
            out.push_str("in_segment(");
            write_string(out, &c.segment_id);
            out.push(')');
        }
        Kind::Engagement(c) => {
            out.push_str(engagement_name(c.kind).unwrap_or("?"));
            out.push('(');
            write_string(out, &c.campaign_id);
            if let Some(within) = &c.within {
                out.push_str(", within: ");
                write_duration(out, within);
            }
            write_count(out, c.count_comparison, c.count);
            out.push(')');
        }
    }
}

/// Whether a count prints as an argument: everything but the default (unset, 0).
pub(crate) fn has_count(comparison: i32, count: u32) -> bool {
    comparison != CountComparison::Unspecified as i32 || count != 0
}

fn write_count(out: &mut String, comparison: i32, count: u32) {
    if !has_count(comparison, count) {
        return;
    }
    let name = match CountComparison::try_from(comparison) {
        Ok(CountComparison::Unspecified | CountComparison::AtLeast) => "at_least",
        Ok(CountComparison::AtMost) => "at_most",
        Ok(CountComparison::Exactly) => "exactly",
        Err(_) => "?",
    };
    let _ = write!(out, ", {name}: {count}");
}

fn write_filters(out: &mut String, filters: &[PropertyFilter]) {
    for (i, f) in filters.iter().enumerate() {
        out.push_str(if i == 0 { ", where: " } else { " and " });
        write_comparison(out, &f.property, f.operator, f.value.as_ref());
    }
}

fn write_comparison(out: &mut String, path: &str, operator: i32, value: Option<&Value>) {
    match Operator::from_proto(operator) {
        Some(op @ (Operator::Exists | Operator::NotExists)) => {
            let _ = write!(out, "{}({path})", operator_text(op));
        }
        op => {
            let _ = write!(out, "{path} {} ", op.map_or("?", operator_text));
            match value {
                Some(value) => write_value(out, value),
                None => out.push('?'),
            }
        }
    }
}

/// A duration in the largest of d, h, m and s that divides it, e.g. `14d`, `90m`.
fn write_duration(out: &mut String, d: &prost_types::Duration) {
    if d.nanos != 0 || d.seconds <= 0 {
        let _ = write!(out, "?{}s", d.seconds);
        return;
    }
    for (unit, seconds) in DURATION_UNITS.iter().filter(|(u, _)| *u != "w") {
        if d.seconds % seconds == 0 {
            let _ = write!(out, "{}{unit}", d.seconds / seconds);
            return;
        }
    }
}

/// A JSON value: `, ` between elements, `: ` after keys, keys in order.
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match &value.kind {
        None => out.push('?'),
        Some(ValueKind::NullValue(_)) => out.push_str("null"),
        Some(ValueKind::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(ValueKind::NumberValue(x)) => write_number(out, *x),
        Some(ValueKind::StringValue(s)) => write_string(out, s),
        Some(ValueKind::ListValue(list)) => {
            out.push('[');
            for (i, v) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, v);
            }
            out.push(']');
        }
        Some(ValueKind::StructValue(object)) => {
            out.push('{');
            for (i, (key, v)) in object.fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// The shortest JSON number that reads back as `x`: integers below 10^16 in full
/// (`100`, `-0`), anything else as Rust's shortest round-trip form (`0.5`, `1e16`,
/// `1.5e-7`). Non-finite numbers, which JSON cannot write, print as `?`.
pub(crate) fn write_number(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push('?');
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        let _ = write!(out, "{x}");
    } else {
        let _ = write!(out, "{x:?}");
    }
}

/// A JSON string: `"` and `\` escaped, control characters as `\n`, `\t`, … or `\u00XX`.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(x: f64) -> String {
        let mut out = String::new();
        write_number(&mut out, x);
        out
    }

    fn string(s: &str) -> String {
        let mut out = String::new();
        write_string(&mut out, s);
        out
    }

    #[test]
    fn numbers_are_short_and_exact() {
        assert_eq!(number(100.0), "100");
        assert_eq!(number(-0.0), "-0");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(-12.25), "-12.25");
        assert_eq!(number(1e15), "1000000000000000");
        assert_eq!(number(1e16), "1e16");
        assert_eq!(number(1.5e-7), "1.5e-7");
        assert_eq!(number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(number(f64::MAX), "1.7976931348623157e308");
        assert_eq!(number(5e-324), "5e-324");
        assert_eq!(number(f64::NAN), "?");
    }

    #[test]
    fn strings_escape_only_what_json_needs() {
        assert_eq!(string("pro"), "\"pro\"");
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            string("\n\t\r\u{8}\u{c}\u{1}\u{1f}"),
            r#""\n\t\r\b\f\u0001\u001f""#
        );
        assert_eq!(string("é/😀\u{7f}"), "\"é/😀\u{7f}\"");
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        let d = |seconds| {
            let mut out = String::new();
            write_duration(&mut out, &prost_types::Duration { seconds, nanos: 0 });
            out
        };
        assert_eq!(d(60), "1m");
        assert_eq!(d(5400), "90m");
        assert_eq!(d(3600), "1h");
        assert_eq!(d(86_400 * 30), "30d");
        assert_eq!(d(86_400 * 14), "14d");
        assert_eq!(d(86_400 * 366), "366d");
        assert_eq!(d(45), "45s");
        assert_eq!(d(0), "?0s");
    }
}
