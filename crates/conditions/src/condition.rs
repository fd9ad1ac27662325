//! A checked condition: path, operator and value, compiled once and evaluated many times.

use herald_core::{FieldViolation, Len, Violations};
use herald_proto::common::v1::ComparisonOperator;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

use crate::{Path, compare};

/// The operators of `herald.common.v1.ComparisonOperator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    In,
    NotIn,
    Exists,
    NotExists,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 14] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::Contains,
        Operator::NotContains,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::In,
        Operator::NotIn,
        Operator::Exists,
        Operator::NotExists,
    ];

    /// The operator of a wire value; `None` for UNSPECIFIED and numbers no version knows.
    pub fn from_proto(value: i32) -> Option<Operator> {
        use ComparisonOperator as P;
        Some(match ComparisonOperator::try_from(value).ok()? {
            P::Unspecified => return None,
            P::Eq => Operator::Eq,
            P::Ne => Operator::Ne,
            P::Gt => Operator::Gt,
            P::Gte => Operator::Gte,
            P::Lt => Operator::Lt,
            P::Lte => Operator::Lte,
            P::Contains => Operator::Contains,
            P::NotContains => Operator::NotContains,
            P::StartsWith => Operator::StartsWith,
            P::EndsWith => Operator::EndsWith,
            P::In => Operator::In,
            P::NotIn => Operator::NotIn,
            P::Exists => Operator::Exists,
            P::NotExists => Operator::NotExists,
        })
    }

    /// The opposite operator, when the operator has one: `compare(op.negated(), …)` is
    /// always `!compare(op, …)`.
    pub fn negated(self) -> Option<Operator> {
        use Operator as Op;
        Some(match self {
            Op::Eq => Op::Ne,
            Op::Ne => Op::Eq,
            Op::Contains => Op::NotContains,
            Op::NotContains => Op::Contains,
            Op::In => Op::NotIn,
            Op::NotIn => Op::In,
            Op::Exists => Op::NotExists,
            Op::NotExists => Op::Exists,
            _ => return None,
        })
    }

    fn value_rule(self) -> ValueRule {
        match self {
            Operator::Exists | Operator::NotExists => ValueRule::Ignored,
            Operator::In | Operator::NotIn => ValueRule::List,
            _ => ValueRule::Required,
        }
    }
}

enum ValueRule {
    Ignored,
    List,
    Required,
}

/// Longest path of a condition, in characters.
pub const MAX_PATH: usize = 256;

/// A valid condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub path: Path,
    pub operator: Operator,
    /// The value compared with; `None` for EXISTS and NOT_EXISTS.
    pub value: Option<Value>,
}

impl Condition {
    /// Checks a condition as written on the wire, reporting what is wrong under `field`
    /// (`{field}.property`, `{field}.operator`, `{field}.value`).
    pub fn new(
        field: &str,
        path: &str,
        operator: i32,
        value: Option<&Value>,
    ) -> Result<Condition, Vec<FieldViolation>> {
        let mut violations = Violations::new();
        let property = format!("{field}.property");
        violations.text(&property, path, Len::required(MAX_PATH));
        let parsed = Path::parse(path);
        if parsed.is_none() && !path.is_empty() {
            violations.push(
                &property,
                "must be dot-separated non-empty keys, e.g. item.category",
            );
        }
        let operator = Operator::from_proto(operator);
        if operator.is_none() {
            violations.push(
                format!("{field}.operator"),
                "must be a known comparison operator",
            );
        }
        let value = value.filter(|v| v.kind.is_some());
        let value = match operator.map(Operator::value_rule) {
            Some(ValueRule::Ignored) | None => None,
            Some(ValueRule::List) => {
                if !matches!(
                    value.and_then(|v| v.kind.as_ref()),
                    Some(Kind::ListValue(_))
                ) {
                    violations.push(format!("{field}.value"), "must be a list for IN and NOT_IN");
                }
                value.cloned()
            }
            Some(ValueRule::Required) => {
                if value.is_none() {
                    violations.push(format!("{field}.value"), "is required for this operator");
                }
                value.cloned()
            }
        };
        violations.finish()?;
        match (parsed, operator) {
            (Some(path), Some(operator)) => Ok(Condition {
                path,
                operator,
                value,
            }),
            _ => unreachable!("a missing path or operator was reported as a violation"),
        }
    }

    /// Whether the attribute at the path of `root` satisfies the condition.
    pub fn matches(&self, root: Option<&Struct>) -> bool {
        compare(self.operator, self.path.lookup(root), self.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compare, equal};
    use ComparisonOperator as P;
    use proptest::prelude::*;

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
    fn null() -> Value {
        Value {
            kind: Some(Kind::NullValue(0)),
        }
    }
    fn object(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn props() -> Struct {
        object(vec![
            ("plan", text("pro")),
            ("amount", num(49.0)),
            ("tags", list(vec![text("a"), text("b")])),
            ("signed_up_at", text("2024-05-01T10:00:00Z")),
            ("nothing", null()),
            (
                "item",
                Value {
                    kind: Some(Kind::StructValue(object(vec![("category", text("books"))]))),
                },
            ),
        ])
    }

    fn check(path: &str, op: P, value: Option<Value>) -> bool {
        Condition::new("f", path, op as i32, value.as_ref())
            .expect("a valid condition")
            .matches(Some(&props()))
    }

    #[test]
    fn equality_is_type_aware() {
        assert!(check("plan", P::Eq, Some(text("pro"))));
        assert!(!check("plan", P::Eq, Some(text("Pro"))));
        assert!(check("amount", P::Eq, Some(num(49.0))));
        assert!(!check("amount", P::Eq, Some(text("49"))));
        assert!(check("plan", P::Ne, Some(text("free"))));
        assert!(check("item.category", P::Eq, Some(text("books"))));
    }

    #[test]
    fn ordering_compares_numbers_and_timestamps() {
        assert!(check("amount", P::Gt, Some(num(10.0))));
        assert!(check("amount", P::Gte, Some(num(49.0))));
        assert!(!check("amount", P::Lt, Some(num(49.0))));
        assert!(check("amount", P::Lte, Some(num(49.0))));
        assert!(!check("amount", P::Gt, Some(text("10"))));
        // Chronological, although "2024-05-01T10:00:00Z" < "2024-05-01T09:00:00-05:00" byte-wise.
        assert!(check(
            "signed_up_at",
            P::Lt,
            Some(text("2024-05-01T09:00:00-05:00"))
        ));
        assert!(check("plan", P::Gt, Some(text("basic"))));
    }

    #[test]
    fn contains_works_on_strings_and_lists() {
        assert!(check("plan", P::Contains, Some(text("r"))));
        assert!(check("tags", P::Contains, Some(text("b"))));
        assert!(!check("tags", P::Contains, Some(text("c"))));
        assert!(check("tags", P::NotContains, Some(text("c"))));
        assert!(check("plan", P::StartsWith, Some(text("pr"))));
        assert!(check("plan", P::EndsWith, Some(text("ro"))));
        assert!(!check("amount", P::StartsWith, Some(text("4"))));
    }

    #[test]
    fn in_needs_a_list() {
        assert!(check(
            "plan",
            P::In,
            Some(list(vec![text("free"), text("pro")]))
        ));
        assert!(check("plan", P::NotIn, Some(list(vec![text("free")]))));
        let error = Condition::new("f", "plan", P::In as i32, Some(&text("pro"))).unwrap_err();
        assert_eq!(error[0].field, "f.value");
    }

    #[test]
    fn missing_and_null_attributes() {
        assert!(check("plan", P::Exists, None));
        assert!(!check("nothing", P::Exists, None));
        assert!(check("nothing", P::NotExists, None));
        assert!(check("missing.deeper", P::NotExists, None));
        assert!(!check("missing", P::Eq, Some(text("x"))));
        assert!(check("missing", P::Ne, Some(text("x"))));
        assert!(check("missing", P::NotIn, Some(list(vec![text("x")]))));
        let plan = Condition::new("f", "plan", P::Eq as i32, Some(&text("pro"))).unwrap();
        assert!(!plan.matches(None));
    }

    #[test]
    fn bad_conditions_name_every_field() {
        let error = Condition::new("filters[2]", "a..b", 99, None).unwrap_err();
        let fields: Vec<&str> = error.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["filters[2].property", "filters[2].operator"]);
        let error = Condition::new("f", "", P::Gt as i32, None).unwrap_err();
        let fields: Vec<&str> = error.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["f.property", "f.value"]);
        assert!(Condition::new("f", "x", P::Unspecified as i32, Some(&num(1.0))).is_err());
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<f64>().prop_map(num),
            "[a-c]{0,3}".prop_map(|s| text(&s)),
            any::<bool>().prop_map(|b| Value {
                kind: Some(Kind::BoolValue(b))
            }),
            Just(null()),
            Just(text("2024-05-01T10:00:00Z")),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(list),
                prop::collection::btree_map("[a-c]", inner, 0..3).prop_map(|m| Value {
                    kind: Some(Kind::StructValue(Struct {
                        fields: m.into_iter().collect()
                    }))
                }),
            ]
        })
    }

    fn operator() -> impl Strategy<Value = Operator> {
        prop::sample::select(Operator::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn negations_are_exact_opposites(op in operator(), a in prop::option::of(value()), v in prop::option::of(value())) {
            if let Some(negated) = op.negated() {
                prop_assert_eq!(compare(negated, a.as_ref(), v.as_ref()), !compare(op, a.as_ref(), v.as_ref()));
            }
        }

        #[test]
        fn positive_operators_never_match_a_missing_attribute(op in operator(), v in prop::option::of(value())) {
            let positive = !matches!(op, Operator::Ne | Operator::NotContains | Operator::NotIn | Operator::NotExists);
            if positive {
                prop_assert!(!compare(op, None, v.as_ref()));
            }
        }

        #[test]
        fn ordering_is_antisymmetric(a in value(), b in value()) {
            prop_assert_eq!(
                compare(Operator::Gt, Some(&a), Some(&b)),
                compare(Operator::Lt, Some(&b), Some(&a))
            );
        }

        #[test]
        fn equality_is_symmetric_and_in_agrees_with_it(a in value(), b in value()) {
            prop_assert_eq!(equal(&a, &b), equal(&b, &a));
            prop_assert_eq!(compare(Operator::In, Some(&a), Some(&list(vec![b.clone()]))), equal(&a, &b));
        }

        #[test]
        fn a_value_is_found_at_the_path_it_was_put(key in "[a-z]{1,5}", inner in "[a-z]{1,5}", v in scalar()) {
            let root = object(vec![(key.as_str(), Value {
                kind: Some(Kind::StructValue(object(vec![(inner.as_str(), v.clone())]))),
            })]);
            let path = Path::parse(&format!("{key}.{inner}")).unwrap();
            let found = path.lookup(Some(&root));
            if matches!(v.kind, Some(Kind::NullValue(_))) {
                prop_assert!(found.is_none());
            } else {
                prop_assert!(found.is_some_and(|f| f == &v));
            }
        }

        #[test]
        fn checking_any_input_never_panics(path in ".{0,40}", op in -2i32..20, v in prop::option::of(value()), root in prop::option::of(value())) {
            let root = root.and_then(|r| match r.kind { Some(Kind::StructValue(s)) => Some(s), _ => None });
            if let Ok(condition) = Condition::new("f", &path, op, v.as_ref()) {
                let _ = condition.matches(root.as_ref());
            }
        }
    }
}
