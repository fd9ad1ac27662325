//! Property and trait filters: a path into a `google.protobuf.Struct` compared with a
//! JSON value, with the type-aware semantics of `herald.common.v1.ComparisonOperator`.

use std::cmp::Ordering;

use herald_proto::common::v1::ComparisonOperator;
use herald_proto::trigger::v1::PropertyFilter;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

/// The value at the dot-separated `path` in `root`, if present.
pub fn lookup<'a>(root: Option<&'a Struct>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = root?.fields.get(parts.next()?)?;
    for part in parts {
        match &current.kind {
            Some(Kind::StructValue(s)) => current = s.fields.get(part)?,
            _ => return None,
        }
    }
    Some(current)
}

/// Whether every filter matches `root`.
pub fn all_match(filters: &[PropertyFilter], root: Option<&Struct>) -> bool {
    filters.iter().all(|f| matches(f, root))
}

/// Whether one filter matches `root`. Unknown operators never match.
pub fn matches(filter: &PropertyFilter, root: Option<&Struct>) -> bool {
    let Ok(operator) = ComparisonOperator::try_from(filter.operator) else {
        return false;
    };
    let attribute = lookup(root, &filter.property).filter(|v| !is_null(v));
    compare(operator, attribute, filter.value.as_ref())
}

/// Applies `operator` to `attribute` (None when missing or null) and `value`.
pub fn compare(
    operator: ComparisonOperator,
    attribute: Option<&Value>,
    value: Option<&Value>,
) -> bool {
    use ComparisonOperator as Op;
    let positive = |op: Op| compare(op, attribute, value);
    match operator {
        Op::Unspecified => false,
        Op::Ne => !positive(Op::Eq),
        Op::NotContains => !positive(Op::Contains),
        Op::NotIn => !positive(Op::In),
        Op::NotExists => !positive(Op::Exists),
        Op::Exists => attribute.is_some(),
        _ => {
            let (Some(attribute), Some(value)) = (attribute, value) else {
                return false;
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
                Op::Contains => match (&attribute.kind, &value.kind) {
                    (Some(Kind::StringValue(a)), Some(Kind::StringValue(v))) => {
                        a.contains(v.as_str())
                    }
                    (Some(Kind::ListValue(list)), _) => list.values.iter().any(|e| equal(e, value)),
                    _ => false,
                },
                Op::StartsWith => match (&attribute.kind, &value.kind) {
                    (Some(Kind::StringValue(a)), Some(Kind::StringValue(v))) => {
                        a.starts_with(v.as_str())
                    }
                    _ => false,
                },
                Op::EndsWith => match (&attribute.kind, &value.kind) {
                    (Some(Kind::StringValue(a)), Some(Kind::StringValue(v))) => {
                        a.ends_with(v.as_str())
                    }
                    _ => false,
                },
                Op::In => match &value.kind {
                    Some(Kind::ListValue(list)) => list.values.iter().any(|e| equal(attribute, e)),
                    _ => false,
                },
                // Handled above.
                Op::Unspecified
                | Op::Ne
                | Op::NotContains
                | Op::NotIn
                | Op::Exists
                | Op::NotExists => false,
            }
        }
    }
}

fn is_null(value: &Value) -> bool {
    matches!(value.kind, None | Some(Kind::NullValue(_)))
}

/// Type-aware equality: never coerces between types.
fn equal(a: &Value, b: &Value) -> bool {
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

/// Numbers numerically; two RFC 3339 timestamps chronologically; other strings byte-wise.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ComparisonOperator as Op;

    fn num(n: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }
    fn text(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }
    fn list(values: Vec<Value>) -> Value {
        Value {
            kind: Some(Kind::ListValue(prost_types::ListValue { values })),
        }
    }
    fn object(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }
    fn filter(property: &str, op: Op, value: Option<Value>) -> PropertyFilter {
        PropertyFilter {
            property: property.into(),
            operator: op as i32,
            value,
        }
    }

    fn props() -> Struct {
        object(vec![
            ("plan", text("pro")),
            ("amount", num(49.0)),
            ("tags", list(vec![text("a"), text("b")])),
            ("signed_up_at", text("2024-05-01T10:00:00Z")),
            (
                "nothing",
                Value {
                    kind: Some(Kind::NullValue(0)),
                },
            ),
            (
                "item",
                Value {
                    kind: Some(Kind::StructValue(object(vec![("category", text("books"))]))),
                },
            ),
        ])
    }

    fn check(property: &str, op: Op, value: Option<Value>) -> bool {
        matches(&filter(property, op, value), Some(&props()))
    }

    #[test]
    fn equality_is_type_aware() {
        assert!(check("plan", Op::Eq, Some(text("pro"))));
        assert!(!check("plan", Op::Eq, Some(text("Pro"))));
        assert!(check("amount", Op::Eq, Some(num(49.0))));
        assert!(!check("amount", Op::Eq, Some(text("49"))));
        assert!(check("plan", Op::Ne, Some(text("free"))));
        assert!(check("item.category", Op::Eq, Some(text("books"))));
    }

    #[test]
    fn ordering_compares_numbers_and_timestamps() {
        assert!(check("amount", Op::Gt, Some(num(10.0))));
        assert!(check("amount", Op::Gte, Some(num(49.0))));
        assert!(!check("amount", Op::Lt, Some(num(49.0))));
        assert!(check("amount", Op::Lte, Some(num(49.0))));
        assert!(!check("amount", Op::Gt, Some(text("10"))));
        // Chronological, although "2024-05-01T10:00:00Z" < "2024-05-01T09:00:00-05:00" byte-wise.
        assert!(check(
            "signed_up_at",
            Op::Lt,
            Some(text("2024-05-01T09:00:00-05:00"))
        ));
        assert!(check("plan", Op::Gt, Some(text("basic"))));
    }

    #[test]
    fn contains_works_on_strings_and_lists() {
        assert!(check("plan", Op::Contains, Some(text("r"))));
        assert!(check("tags", Op::Contains, Some(text("b"))));
        assert!(!check("tags", Op::Contains, Some(text("c"))));
        assert!(check("tags", Op::NotContains, Some(text("c"))));
        assert!(check("plan", Op::StartsWith, Some(text("pr"))));
        assert!(check("plan", Op::EndsWith, Some(text("ro"))));
        assert!(!check("amount", Op::StartsWith, Some(text("4"))));
    }

    #[test]
    fn in_needs_a_list() {
        assert!(check(
            "plan",
            Op::In,
            Some(list(vec![text("free"), text("pro")]))
        ));
        assert!(!check("plan", Op::In, Some(text("pro"))));
        assert!(check("plan", Op::NotIn, Some(list(vec![text("free")]))));
    }

    #[test]
    fn missing_and_null_attributes() {
        assert!(check("plan", Op::Exists, None));
        assert!(!check("nothing", Op::Exists, None));
        assert!(check("nothing", Op::NotExists, None));
        assert!(check("missing.deeper", Op::NotExists, None));
        // Positive operators are false on a missing attribute, negative ones true.
        assert!(!check("missing", Op::Eq, Some(text("x"))));
        assert!(check("missing", Op::Ne, Some(text("x"))));
        assert!(check("missing", Op::NotIn, Some(list(vec![text("x")]))));
        assert!(!matches(&filter("plan", Op::Eq, Some(text("pro"))), None));
    }

    #[test]
    fn unknown_operators_never_match() {
        assert!(!check("plan", Op::Unspecified, Some(text("pro"))));
        let unknown = PropertyFilter {
            property: "plan".into(),
            operator: 99,
            value: Some(text("pro")),
        };
        assert!(!matches(&unknown, Some(&props())));
    }
}
