//! Herald's segment rule language, in its two equal forms: the structured tree
//! (`herald.segmentation.v1.Rule`) and the text a person types, e.g.
//!
//! ```text
//! plan == "pro" and days_since(signed_up_at) >= 5 and not performed("integration_connected")
//! ```
//!
//! [`parse`] turns text into a tree, or into the first error with its line, column,
//! byte offset and length and what was expected there; [`format()`] turns a tree into its
//! canonical text; [`check`] holds a tree to the contract's limits, however it was
//! written, and [`check_references`] refuses cycles through `in_segment`.
//! [`eval`] answers a rule for one user at one instant, with the next instant the answer
//! can change by time; [`engine`] holds a workspace's segments for incremental
//! evaluation; [`series`] is the compact per-user counting behind `performed` and the
//! engagement conditions. No IO: storage and scheduling are the service's.
//!
//! ```
//! let text = r#"plan == "pro" and days_since(signed_up_at) >= 5"#;
//! let rule = herald_rules::parse(text)?;
//! assert_eq!(herald_rules::format(&rule), text);
//!
//! let error = herald_rules::parse("plan == ").unwrap_err();
//! assert_eq!((error.line, error.column, error.offset, error.length), (1, 9, 8, 0));
//! assert_eq!(error.message, "expected a value after `==`");
//! # Ok::<(), herald_rules::ParseError>(())
//! ```
//!
//! # The language
//!
//! The grammar is in the header of `proto/herald/segmentation/v1/rule.proto`. In short:
//!
//! - trait conditions: `plan == "pro"`, `company.size >= 50`, `country in ["FR", "DE"]`,
//!   `email ends_with "@acme.com"`, `exists(phone)`, `not_exists(churned_at)`; the value
//!   is any JSON value, compared with the semantics of `herald-conditions`;
//! - relative time on datetime traits: `days_since(signed_up_at) >= 5`,
//!   `hours_until(trial_ends_at) < 48` (minutes, hours, days, weeks; since, until);
//! - behaviour: `performed("checkout", where: amount > 100 and currency == "EUR",
//!   within: 30d, at_least: 3)` (also `at_most`, `exactly`; without a count, at least
//!   once; without `within`, all history); `not performed("login", within: 14d)`,
//!   `not performed("invoice_paid", since: "2024-01-01T00:00:00Z")`,
//!   `not performed("integration_connected")` (never);
//! - other segments: `in_segment("seg_power_users")`;
//! - Herald's own messages: `received("cmp_…")`, `displayed(…)`, `clicked(…)`,
//!   `dismissed("cmp_tour", within: 7d, at_least: 2)`, and conversions on a campaign's
//!   goal as analytics attributes them: `converted("cmp_…", within: 30d)`;
//! - `not` binds tighter than `and`, which binds tighter than `or`; parentheses group;
//!   `all(a, b)` and `any(a, b)` are `a and b` and `a or b` written as calls.
//!
//! # Decisions
//!
//! - **Tree shapes are kept.** `a and b and c` is one `all` of three; `a and (b and c)`
//!   is an `all` holding an `all`, and formats back with its parentheses. The parser
//!   never flattens and the formatter never drops a level, so `parse(format(t)) == t`
//!   holds for trees in normal form (below), and `format(parse(s))` is the canonical
//!   spelling of `s`. Otherwise parentheses appear only where precedence needs them:
//!   the contract's `country in ["FR", "DE"] or (exists(phone) and …)` is canonically
//!   written without its (redundant) parentheses.
//! - **Empty and single-rule groups** are valid trees (an empty `all` is true, an empty
//!   `any` false) that no `and`/`or` chain can write, so the text has the group calls:
//!   the formatter writes `all()`, `any()`, `all(plan == "pro")` for groups of fewer
//!   than two rules and the infix form otherwise.
//! - **`not` over `performed`.** `not performed("E")` with no count reads as
//!   not_performed (the contract's special case); a tree that really holds `not` over
//!   such a `performed` formats as `not (performed("E"))`, which keeps its shape.
//! - **Normal form.** A few trees mean the same as another and print the same:
//!   an unset relative-time direction (SINCE), an unset count comparison with a count
//!   (AT_LEAST), a value under EXISTS (ignored). [`normalize`] spells those out; for
//!   every tree that passes [`check`], `parse(&format(t)) == Ok(normalize(t))`.
//! - **Numbers** print in the shortest form that reads back as the same `f64`: integers
//!   below 10^16 in full (`100`, not `100.0` or `1e2`), others as Rust's shortest
//!   round-trip form (`0.5`, `1e16`, `1.5e-7`). JSON has no NaN or infinity, so the
//!   checker refuses them.
//! - **Strings** print JSON-escaped: `"` and `\` and control characters, nothing else.
//!   Instants print in UTC (`"2024-01-01T00:00:00Z"`). Durations print in the largest
//!   of days, hours, minutes and seconds that divides them (`90m`, `1h`, `14d`); weeks
//!   are read but written in days, as windows are counted in days and the contract's
//!   own examples (`within: 14d`) are then canonical.
//! - **Paths** are identifiers joined by dots; the first key cannot be `and`, `or` or
//!   `not`. The checker holds trees to the same rule, so every valid tree has a text.
//! - **Null** is a literal but no operator compares with it (a null trait is missing):
//!   use `exists(…)`/`not_exists(…)`. Ordering operators take numbers and strings,
//!   `starts_with`/`ends_with` strings, `in`/`not_in` lists.
//! - **Limits.** Text at most 16 KiB, checked before anything else; at most 16 levels
//!   (a condition alone is one level; parentheses add none), 256 conditions, values
//!   nested 16 deep; windows from 1 minute to 366 days in whole minutes. A tree's
//!   canonical text must fit in 16 KiB too, so both forms hold the same rules.
//! - **Error positions.** An error points at the token where something else was
//!   expected, with its length; when the text ends too early it points at the end of
//!   the text, after any trailing whitespace, with length 0 (`plan == ` fails at offset
//!   8, line 1, column 9: "expected a value after `==`"). A rule that parses but breaks
//!   a check points at the offending part (`within: 45s` underlines `45s`); of several,
//!   the first in the text. Lexing stops at the first bad character, so an earlier
//!   syntax error still comes first.

#![forbid(unsafe_code)]

mod check;
pub mod engine;
mod error;
pub mod eval;
mod format;
mod lex;
pub mod limits;
mod names;
mod normalize;
mod parse;
mod references;
pub mod series;

pub use check::check;
pub use error::ParseError;
pub use format::format;
pub use normalize::normalize;
pub use parse::parse;
pub use references::{check_references, segment_references};
