//! The limits of the contract (`rule.proto`), in one place.

/// Longest rule text, in bytes (16 KiB). A tree's canonical text must fit too.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Deepest rule: a condition alone is one level, each `all`, `any` and `not` above it
/// adds one.
pub const MAX_DEPTH: usize = 16;
/// Most conditions (leaves: trait, performed, not performed, relative time, segment and
/// engagement conditions) in one rule.
pub const MAX_CONDITIONS: usize = 256;
/// Deepest JSON value compared with (a scalar is one level, each list or object adds
/// one).
pub const MAX_VALUE_DEPTH: usize = 16;
/// Longest path of a trait or property, in characters (as `herald-conditions` checks).
pub const MAX_PATH: usize = 256;
/// Longest event name, in characters.
pub const MAX_EVENT_NAME: usize = herald_core::limits::EVENT_NAME;
/// Longest segment id, in characters.
pub const MAX_SEGMENT_ID: usize = 128;
/// Longest campaign id, in characters.
pub const MAX_CAMPAIGN_ID: usize = herald_core::limits::CAMPAIGN_ID;
/// Shortest window (`within`), in seconds: one minute.
pub const MIN_WINDOW_SECONDS: i64 = 60;
/// Longest window (`within`), in seconds: 366 days.
pub const MAX_WINDOW_SECONDS: i64 = 366 * 86_400;
