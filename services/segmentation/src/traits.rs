//! Merging trait updates into a user's traits: key by key at the top level, a null value
//! removes the trait, keys not mentioned are kept, and for each key the update with the
//! latest version wins whatever order updates arrive in. A version is the identity's
//! timestamp, then its message_id to break ties, so replicas of ingest relaying one
//! user's identities in either order end with the same traits.

use std::collections::HashMap;

use prost::Message;
use prost_types::Struct;
use prost_types::value::Kind;

/// When a trait was last written: by which identity, at what time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Message)]
pub struct Version {
    /// The identity's timestamp, milliseconds since the epoch.
    #[prost(int64, tag = "1")]
    pub at_ms: i64,
    /// The identity's message_id.
    #[prost(string, tag = "2")]
    pub message_id: String,
}

/// The version of every trait key ever written, removed ones included (so a late, older
/// update cannot bring a removed trait back).
#[derive(Clone, PartialEq, Message)]
pub struct Versions {
    #[prost(map = "string, message", tag = "1")]
    pub by_key: HashMap<String, Version>,
}

/// Merges `update`, written at `version`, into `traits`; returns whether anything changed.
pub fn merge(
    traits: &mut Struct,
    versions: &mut Versions,
    update: &Struct,
    version: &Version,
) -> bool {
    let mut changed = false;
    for (key, value) in &update.fields {
        if versions
            .by_key
            .get(key)
            .is_some_and(|current| current > version)
        {
            // A later update of this trait was applied already.
            continue;
        }
        if versions.by_key.get(key) != Some(version) {
            versions.by_key.insert(key.clone(), version.clone());
            changed = true;
        }
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

/// Decodes stored versions; none stored are no versions.
pub fn decode_versions(bytes: Option<&[u8]>) -> Result<Versions, prost::DecodeError> {
    Versions::decode(bytes.unwrap_or_default())
}

/// Encodes traits for storage.
pub fn encode(traits: &Struct) -> Vec<u8> {
    traits.encode_to_vec()
}

/// The traits as sent downstream: unset when the user has none.
pub fn present(traits: &Struct) -> Option<Struct> {
    (!traits.fields.is_empty()).then(|| traits.clone())
}

/// The user's time zone: the `time_zone` trait when it is a non-empty string.
pub fn time_zone(traits: &Struct) -> Option<&str> {
    text(traits, "time_zone")
}

/// The non-empty string trait `key`, if any.
pub fn text<'t>(traits: &'t Struct, key: &str) -> Option<&'t str> {
    match traits.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
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

    fn v(at_ms: i64, id: &str) -> Version {
        Version {
            at_ms,
            message_id: id.into(),
        }
    }

    fn text(s: &str) -> Kind {
        Kind::StringValue(s.into())
    }

    #[test]
    fn keys_are_replaced_added_and_kept() {
        let mut t = traits(&[("plan", text("free")), ("seats", Kind::NumberValue(1.0))]);
        let mut versions = Versions::default();
        let changed = merge(
            &mut t,
            &mut versions,
            &traits(&[("plan", text("pro")), ("new", Kind::BoolValue(true))]),
            &v(1, "a"),
        );
        assert!(changed);
        assert_eq!(
            t,
            traits(&[
                ("plan", text("pro")),
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
        let mut t = traits(&[("plan", text("free")), ("company", nested)]);
        let update = traits(&[
            ("plan", Kind::NullValue(0)),
            (
                "company",
                Kind::StructValue(traits(&[("a", Kind::NumberValue(3.0))])),
            ),
            ("absent", Kind::NullValue(0)),
        ]);
        assert!(merge(&mut t, &mut Versions::default(), &update, &v(1, "a")));
        assert_eq!(
            t,
            traits(&[(
                "company",
                Kind::StructValue(traits(&[("a", Kind::NumberValue(3.0))]))
            )])
        );
    }

    #[test]
    fn the_latest_version_wins_in_either_order() {
        let older = (
            traits(&[("plan", text("free")), ("seats", Kind::NumberValue(1.0))]),
            v(100, "m1"),
        );
        let newer = (
            traits(&[("plan", text("pro")), ("gone", Kind::NullValue(0))]),
            v(200, "m2"),
        );
        let mut results = Vec::new();
        for order in [[&older, &newer], [&newer, &older]] {
            let mut t = traits(&[("gone", text("x"))]);
            let mut versions = Versions::default();
            for (update, version) in order {
                merge(&mut t, &mut versions, update, version);
            }
            results.push(t);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(
            results[0],
            traits(&[("plan", text("pro")), ("seats", Kind::NumberValue(1.0))])
        );
    }

    #[test]
    fn a_late_older_update_cannot_bring_back_a_removed_trait() {
        let mut t = Struct::default();
        let mut versions = Versions::default();
        merge(
            &mut t,
            &mut versions,
            &traits(&[("plan", Kind::NullValue(0))]),
            &v(200, "m2"),
        );
        assert!(!merge(
            &mut t,
            &mut versions,
            &traits(&[("plan", text("free"))]),
            &v(100, "m1")
        ));
        assert!(t.fields.is_empty());
    }

    #[test]
    fn an_empty_update_changes_nothing() {
        let mut t = traits(&[("plan", text("free"))]);
        let mut versions = Versions::default();
        assert!(!merge(
            &mut t,
            &mut versions,
            &Struct::default(),
            &v(1, "a")
        ));
        assert!(present(&Struct::default()).is_none());
    }

    #[test]
    fn only_non_empty_strings_are_text() {
        let t = traits(&[
            ("time_zone", text("Europe/Paris")),
            ("locale", text("")),
            ("seats", Kind::NumberValue(1.0)),
        ]);
        assert_eq!(time_zone(&t), Some("Europe/Paris"));
        assert_eq!(super::text(&t, "locale"), None);
        assert_eq!(super::text(&t, "seats"), None);
        assert_eq!(super::text(&t, "absent"), None);
    }

    #[test]
    fn traits_and_versions_round_trip_through_storage() {
        let t = traits(&[("plan", text("pro"))]);
        assert_eq!(decode(&encode(&t)).unwrap(), t);
        assert_eq!(decode(&[]).unwrap(), Struct::default());
        let mut versions = Versions::default();
        versions.by_key.insert("plan".into(), v(5, "m"));
        assert_eq!(
            decode_versions(Some(&versions.encode_to_vec())).unwrap(),
            versions
        );
        assert_eq!(decode_versions(None).unwrap(), Versions::default());
    }
}
