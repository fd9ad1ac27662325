//! Applying an operator to an attribute and a value.

use std::cmp::Ordering;

use prost_types::Value;
use prost_types::value::Kind;

use crate::Operator;

/// Applies `operator` to `attribute` (`None` when missing or null) and `value`.
pub fn compare(operator: Operator, attribute: Option<&Value>, value: Option<&Value>) -> bool {
    use Operator as Op;
    match operator {
        Op::Ne => !compare(Op::Eq, attribute, value),
        Op::NotContains => !compare(Op::Contains, attribute, value),
        Op::NotIn => !compare(Op::In, attribute, value),
        Op::NotExists => attribute.is_none(),
        Op::Exists => attribute.is_some(),
        Op::Eq
        | Op::Gt
        | Op::Gte
        | Op::Lt
        | Op::Lte
        | Op::Contains
        | Op::StartsWith
        | Op::EndsWith
        | Op::In => {
            let (Some(attribute), Some(value)) = (attribute, value) else {
                return false;
            };
            positive(operator, attribute, value)
        }
    }
}

fn positive(operator: Operator, attribute: &Value, value: &Value) -> bool {
    use Operator as Op;
    let strings = || match (&attribute.kind, &value.kind) {
        (Some(Kind::StringValue(a)), Some(Kind::StringValue(v))) => Some((a, v)),
        _ => None,
    };
    match operator {
        Op::Eq => equal(attribute, value),
        Op::Gt => order(attribute, value) == Some(Ordering::Greater),
        Op::Gte => matches!(
            order(attribute, value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::Lt => order(attribute, value) == Some(Ordering::Less),
        Op::Lte => matches!(
            order(attribute, value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Contains => match &attribute.kind {
            Some(Kind::ListValue(list)) => list.values.iter().any(|e| equal(e, value)),
            _ => strings().is_some_and(|(a, v)| a.contains(v.as_str())),
        },
        Op::StartsWith => strings().is_some_and(|(a, v)| a.starts_with(v.as_str())),
        Op::EndsWith => strings().is_some_and(|(a, v)| a.ends_with(v.as_str())),
        Op::In => match &value.kind {
            Some(Kind::ListValue(list)) => list.values.iter().any(|e| equal(attribute, e)),
            _ => false,
        },
        // Negations and existence never reach here (see `compare`).
        Op::Ne | Op::NotContains | Op::NotIn | Op::Exists | Op::NotExists => false,
    }
}

/// Type-aware equality: never coerces between types; lists and objects element-wise.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (&a.kind, &b.kind) {
        (Some(Kind::NumberValue(x)), Some(Kind::NumberValue(y))) => x == y,
        (Some(Kind::StringValue(x)), Some(Kind::StringValue(y))) => x == y,
        (Some(Kind::BoolValue(x)), Some(Kind::BoolValue(y))) => x == y,
        (Some(Kind::ListValue(x)), Some(Kind::ListValue(y))) => {
            x.values.len() == y.values.len()
                && x.values.iter().zip(&y.values).all(|(x, y)| equal(x, y))
        }
        (Some(Kind::StructValue(x)), Some(Kind::StructValue(y))) => {
            x.fields.len() == y.fields.len()
                && x.fields
                    .iter()
                    .all(|(k, v)| y.fields.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => false,
    }
}

/// Numbers numerically; two RFC 3339 timestamps chronologically; other strings
/// byte-wise; anything else is unordered.
pub fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (&a.kind, &b.kind) {
        (Some(Kind::NumberValue(x)), Some(Kind::NumberValue(y))) => x.partial_cmp(y),
        (Some(Kind::StringValue(x)), Some(Kind::StringValue(y))) => {
            match (x.parse::<jiff::Timestamp>(), y.parse::<jiff::Timestamp>()) {
                (Ok(x), Ok(y)) => Some(x.cmp(&y)),
                _ => Some(x.as_bytes().cmp(y.as_bytes())),
            }
        }
        _ => None,
    }
}
