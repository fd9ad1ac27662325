//! What every decision path shares: the database, the outbox, the compiled campaigns, the
//! clock, the timers, and the connection to segmentation (a timer that comes due asks it
//! for the user's current segments and traits).

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_runtime::{Clock, Downstream};
use herald_timers::Timers;
use sea_orm::DatabaseConnection;

use crate::cache::CampaignCache;

/// The decision machinery of one replica; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub cache: Arc<CampaignCache>,
    pub clock: Clock,
    pub timers: Timers,
    pub segmentation: Arc<Downstream>,
}

/// What a handler of a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub handled: u32,
    pub duplicates: u32,
}
