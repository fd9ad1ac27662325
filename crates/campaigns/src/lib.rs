//! Campaigns as the engine sees them, written once and tested without a server:
//! - [`validate`]: what a campaign must satisfy, field by field, and what an ACTIVE one
//!   must not rely on yet;
//! - [`CompiledCampaign`]: a stored campaign checked once, its conditions compiled and
//!   its templates parsed;
//! - [`MatchIndex`]: which campaigns an event can fire, by event name, in priority order;
//! - [`assign`]: the deterministic variant or control assignment;
//! - [`render`]: Liquid templates over the user's traits and the event;
//! - [`decide`]: one campaign against one event, returning a [`Decision`] that keeps every
//!   gate's verdict, so "why did (or didn't) this user get it" is data, not a log search.

#![forbid(unsafe_code)]

pub mod assign;
mod compiled;
mod decision;
mod index;
pub mod render;
pub mod validate;

pub use compiled::CompiledCampaign;
pub use decision::{Decision, Gate, Occurrence, Outcome, Send, Verdict, decide, idempotency_key};
pub use index::MatchIndex;
