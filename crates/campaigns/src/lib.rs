//! Campaigns as the engine sees them, written once and tested without a server:
//! - [`validate`]: what a campaign must satisfy, field by field, and what an ACTIVE one
//!   must not rely on yet; [`budget_rules`]: the same for cap rules and settings;
//! - [`CompiledCampaign`]: a stored campaign checked once, its conditions compiled and
//!   its templates parsed;
//! - [`MatchIndex`]: which campaigns an event or a segment entry concerns;
//! - [`assign`]: the deterministic variant or control assignment;
//! - [`render`] and [`locale`]: Liquid templates, and which locale's content a user gets;
//! - [`zone`]: local times, quiet-hour windows and calendar days in a user's time zone;
//!   [`day_starts`]: the start of a calendar-day window, remembered while it holds;
//! - [`attention`]: the workspace's cap rules, minimum interval and quiet hours;
//! - [`ledger`]: what is remembered per user (messages sent, entries, assignments);
//! - [`timer`]: the durable timers of delays, inactivity and quiet-hour releases;
//! - [`why`]: a verdict's reason as data, put into words when explained;
//! - [`decision`]: one cause for one user against the campaigns it concerns, returning
//!   a [`Decision`] per campaign that keeps every gate's verdict, so "why did (or didn't)
//!   this user get it" is data, not a log search.

#![forbid(unsafe_code)]

pub mod assign;
pub mod attention;
pub mod budget_rules;
mod compact;
mod compiled;
pub mod day_starts;
pub mod decision;
mod index;
pub mod ledger;
pub mod locale;
mod membership;
pub mod render;
pub mod timer;
pub mod validate;
pub mod why;
pub mod zone;

pub use compiled::{CompiledCampaign, CompiledTrigger};
pub use decision::{Decision, Outcome, Send, Verdict, idempotency_key};
pub use index::MatchIndex;
