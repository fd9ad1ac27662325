//! The comparison semantics shared by every condition Herald evaluates: trigger property
//! filters today, audience trait filters, and segment rule conditions next. One
//! implementation, so a rule means the same wherever it is written.
//!
//! A [`Condition`] is a [`Path`] into a JSON object (an event's properties or a user's
//! traits, as `google.protobuf.Struct`), an [`Operator`] and, for most operators, a value.
//! The rules:
//! - a path is dot-separated keys; a missing key, a non-object on the way, or a `null`
//!   value all mean the attribute is *missing*;
//! - positive operators (`EQ`, `GT`, `CONTAINS`, `IN`, …) are false on a missing
//!   attribute; their negations (`NE`, `NOT_CONTAINS`, `NOT_IN`, `NOT_EXISTS`) are exactly
//!   their opposites, so they are true on it;
//! - equality never coerces between types (`49` is not `"49"`); lists and objects are
//!   equal element by element;
//! - ordering compares two numbers numerically, two RFC 3339 timestamps
//!   chronologically, other pairs of strings byte-wise, and nothing else (false);
//! - `CONTAINS` is a substring on strings and membership on lists; `STARTS_WITH` and
//!   `ENDS_WITH` apply to strings only; `IN` needs a list of candidates.

#![forbid(unsafe_code)]

mod compare;
mod condition;
mod path;

pub use compare::{compare, equal, order};
pub use condition::{Condition, Operator};
pub use path::Path;
