//! The normal form of a tree: the tree its canonical text parses to.

use herald_conditions::Operator;
use herald_proto::segmentation::v1::{CountComparison, Rule, TimeDirection, rule::Kind};
use prost_types::Value;
use prost_types::value::Kind as ValueKind;

/// `rule` with the defaults the text form cannot tell apart spelt out, so that
/// `parse(&format(rule)) == Ok(normalize(rule))` for every rule that passes
/// [`check`](crate::check):
/// - an unset relative-time direction becomes SINCE (`days_since`);
/// - an unset count comparison with a count above 0 becomes AT_LEAST (`at_least: N`);
///   unset with count 0 stays (the default, no count argument);
/// - the value of EXISTS and NOT_EXISTS, which is ignored, is dropped;
/// - `null` values take the one value of `google.protobuf.NullValue`.
///
/// Everything else (group shapes, nesting, order) is kept as it is.
pub fn normalize(rule: &Rule) -> Rule {
    let mut rule = rule.clone();
    normalize_in_place(&mut rule);
    rule
}

fn normalize_in_place(rule: &mut Rule) {
    let Some(kind) = &mut rule.kind else {
        return;
    };
    match kind {
        Kind::All(g) | Kind::Any(g) => g.rules.iter_mut().for_each(normalize_in_place),
        Kind::Not(child) => normalize_in_place(child),
        Kind::TraitCondition(c) => comparison(c.operator, &mut c.value),
        Kind::Performed(c) => {
            for f in &mut c.property_filters {
                comparison(f.operator, &mut f.value);
            }
            count(&mut c.count_comparison, c.count);
        }
        Kind::NotPerformed(c) => {
            for f in &mut c.property_filters {
                comparison(f.operator, &mut f.value);
            }
        }
        Kind::RelativeTime(c) => {
            if c.direction == TimeDirection::Unspecified as i32 {
                c.direction = TimeDirection::Since as i32;
            }
        }
        Kind::InSegment(_) => {}
        Kind::Engagement(c) => count(&mut c.count_comparison, c.count),
    }
}

fn count(comparison: &mut i32, count: u32) {
    if *comparison == CountComparison::Unspecified as i32 && count > 0 {
        *comparison = CountComparison::AtLeast as i32;
    }
}

fn comparison(operator: i32, value: &mut Option<Value>) {
    if matches!(
        Operator::from_proto(operator),
        Some(Operator::Exists | Operator::NotExists)
    ) {
        *value = None;
    } else if let Some(value) = value {
        nulls(value);
    }
}

fn nulls(value: &mut Value) {
    match &mut value.kind {
        Some(ValueKind::NullValue(n)) => *n = 0,
        Some(ValueKind::ListValue(list)) => list.values.iter_mut().for_each(nulls),
        Some(ValueKind::StructValue(object)) => object.fields.values_mut().for_each(nulls),
        _ => {}
    }
}
