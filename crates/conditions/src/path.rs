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
        let mut current = root?.fields.get(first)?;
        // `rest` is empty or starts with the "." after the first key.
        for key in rest.get(1..).into_iter().flat_map(|rest| rest.split('.')) {
            match &current.kind {
                Some(Kind::StructValue(s)) => current = s.fields.get(key)?,
                _ => return None,
            }
        }
        (!matches!(current.kind, None | Some(Kind::NullValue(_)))).then_some(current)
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
}
