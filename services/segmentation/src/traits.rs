//! Merging trait updates into a user's traits: key by key at the top level, a null value
//! removes the trait, keys not mentioned are kept.

use prost::Message;
use prost_types::Struct;
use prost_types::value::Kind;

/// Merges `update` into `traits`; returns whether anything changed.
pub fn merge(traits: &mut Struct, update: &Struct) -> bool {
    let mut changed = false;
    for (key, value) in &update.fields {
        if matches!(value.kind, None | Some(Kind::NullValue(_))) {
            changed |= traits.fields.remove(key).is_some();
        } else if traits.fields.get(key) != Some(value) {
            traits.fields.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    changed
}

/// Decodes stored traits; empty bytes are no traits.
pub fn decode(bytes: &[u8]) -> Result<Struct, prost::DecodeError> {
    Struct::decode(bytes)
}

/// Encodes traits for storage.
pub fn encode(traits: &Struct) -> Vec<u8> {
    traits.encode_to_vec()
}

/// The traits as sent downstream: unset when the user has none.
pub fn present(traits: &Struct) -> Option<Struct> {
    (!traits.fields.is_empty()).then(|| traits.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Value;

    fn value(kind: Kind) -> Value {
        Value { kind: Some(kind) }
    }

    fn traits(pairs: &[(&str, Kind)]) -> Struct {
        Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), value(v.clone())))
                .collect(),
        }
    }

    #[test]
    fn keys_are_replaced_added_and_kept() {
        let mut t = traits(&[
            ("plan", Kind::StringValue("free".into())),
            ("seats", Kind::NumberValue(1.0)),
        ]);
        let changed = merge(
            &mut t,
            &traits(&[
                ("plan", Kind::StringValue("pro".into())),
                ("new", Kind::BoolValue(true)),
            ]),
        );
        assert!(changed);
        assert_eq!(
            t,
            traits(&[
                ("plan", Kind::StringValue("pro".into())),
                ("seats", Kind::NumberValue(1.0)),
                ("new", Kind::BoolValue(true))
            ])
        );
    }

    #[test]
    fn null_removes_and_nested_values_replace_whole() {
        let nested = Kind::StructValue(traits(&[
            ("a", Kind::NumberValue(1.0)),
            ("b", Kind::NumberValue(2.0)),
        ]));
        let mut t = traits(&[
            ("plan", Kind::StringValue("free".into())),
            ("company", nested),
        ]);
        let update = traits(&[
            ("plan", Kind::NullValue(0)),
            (
                "company",
                Kind::StructValue(traits(&[("a", Kind::NumberValue(3.0))])),
            ),
            ("absent", Kind::NullValue(0)),
        ]);
        assert!(merge(&mut t, &update));
        assert_eq!(
            t,
            traits(&[(
                "company",
                Kind::StructValue(traits(&[("a", Kind::NumberValue(3.0))]))
            )])
        );
    }

    #[test]
    fn an_empty_update_changes_nothing() {
        let mut t = traits(&[("plan", Kind::StringValue("free".into()))]);
        assert!(!merge(&mut t, &Struct::default()));
        assert!(!merge(
            &mut t,
            &traits(&[("plan", Kind::StringValue("free".into()))])
        ));
        assert!(present(&Struct::default()).is_none());
    }

    #[test]
    fn traits_round_trip_through_storage() {
        let t = traits(&[("plan", Kind::StringValue("pro".into()))]);
        assert_eq!(decode(&encode(&t)).unwrap(), t);
        assert_eq!(decode(&[]).unwrap(), Struct::default());
    }
}
