//! Dot-separated paths into nested JSON objects.

use prost_types::value::Kind;
use prost_types::{Struct, Value};

/// A path such as `plan` or `item.category`, checked once. Kept as written, in one piece:
/// matching a condition then follows one pointer to its keys rather than two (with many
/// campaigns' conditions, each is a cache miss), and splitting at "." is cheap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    dotted: Box<str>,
    /// The length of the first key (most paths have only one): found without a scan.
    first: usize,
}

impl Path {
    /// The path `text`; every key must be non-empty.
    pub fn parse(text: &str) -> Option<Path> {
        if text.split('.').any(str::is_empty) {
            return None;
        }
        Some(Path {
            dotted: text.into(),
            first: text.find('.').unwrap_or(text.len()),
        })
    }

    /// The path as written, borrowed.
    pub fn as_str(&self) -> &str {
        &self.dotted
    }

    /// The path as written.
    pub fn as_dotted(&self) -> String {
        self.dotted.to_string()
    }

    /// The value at this path in `root`; `None` when a key is missing, a step is not an
    /// object, or the value is `null`.
    pub fn lookup<'a>(&self, root: Option<&'a Struct>) -> Option<&'a Value> {
        let (first, rest) = self.dotted.split_at(self.first);
        let mut current = field(root?, first)?;
        // `rest` is empty or starts with the "." after the first key.
        for key in rest.get(1..).into_iter().flat_map(|rest| rest.split('.')) {
            match &current.kind {
                Some(Kind::StructValue(s)) => current = field(s, key)?,
                _ => return None,
            }
        }
        (!matches!(current.kind, None | Some(Kind::NullValue(_)))).then_some(current)
    }
}

/// The value of `key` in `object`. A small object (most traits and event properties) is
/// scanned comparing lengths first: keys mostly differ in length, so the bytes of one or
/// two are compared, where the map's ordered search compares the bytes of every key it
/// passes.
fn field<'a>(object: &'a Struct, key: &str) -> Option<&'a Value> {
    const SCANNED: usize = 16;
    if object.fields.len() <= SCANNED {
        object
            .fields
            .iter()
            .find_map(|(k, v)| (k.len() == key.len() && k == key).then_some(v))
    } else {
        object.fields.get(key)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dotted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_every_key() {
        assert!(Path::parse("a.b").is_some());
        for bad in ["", ".", "a.", ".a", "a..b"] {
            assert!(Path::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            Path::parse("item.category").unwrap().to_string(),
            "item.category"
        );
    }

    #[test]
    fn a_key_is_found_in_small_and_large_objects_alike() {
        let text = |s: &str| Value {
            kind: Some(Kind::StringValue(s.into())),
        };
        for size in [1, 4, 16, 17, 40] {
            // Keys of one length and of several, the nested object among them.
            let mut object = Struct::default();
            for i in 0..size {
                object
                    .fields
                    .insert(format!("k{i:02}"), text(&format!("v{i}")));
                object
                    .fields
                    .insert(format!("key_{i}"), text(&format!("w{i}")));
            }
            let inner = Struct {
                fields: object.fields.clone(),
            };
            object.fields.insert(
                "item".into(),
                Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            );
            let root = Some(&object);
            for i in 0..size {
                let at = |p: &str| Path::parse(p).and_then(|p| p.lookup(root).cloned());
                assert_eq!(at(&format!("k{i:02}")), Some(text(&format!("v{i}"))));
                assert_eq!(at(&format!("item.key_{i}")), Some(text(&format!("w{i}"))));
                assert_eq!(at(&format!("k{:02}", i + size)), None);
                assert_eq!(at(&format!("item.k{i:02}.x")), None);
            }
        }
    }
}
