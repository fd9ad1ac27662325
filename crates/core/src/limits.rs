//! The limits the contracts state, in one place, so every service checks the same
//! numbers (lengths are in characters).

/// `workspace_id` everywhere.
pub const WORKSPACE_ID: usize = 128;
/// A client's `message_id` (events and identities).
pub const MESSAGE_ID: usize = 128;
/// `user_id` everywhere.
pub const USER_ID: usize = 256;
/// An event name.
pub const EVENT_NAME: usize = 128;
/// A campaign id, as carried by deliveries and interactions.
pub const CAMPAIGN_ID: usize = 128;
/// A variant id, as carried by deliveries and interactions.
pub const VARIANT_ID: usize = 128;
/// A delivery's idempotency key.
pub const IDEMPOTENCY_KEY: usize = 128;
/// A message category.
pub const CATEGORY: usize = 64;
/// Items (events, identities, deliveries, interactions) in one batch call.
pub const MAX_BATCH: usize = 1000;
