//! Compiled campaigns per version, so a campaign's conditions and templates are compiled
//! once per update rather than once per firing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_campaigns::CompiledCampaign;
use herald_core::FieldViolation;

use crate::store::Stored;

/// Versions kept before the cache starts over.
const CAPACITY: usize = 10_000;

/// (workspace, campaign id) → (update time, compiled campaign).
type Entries = HashMap<(String, String), (i64, Arc<CompiledCampaign>)>;

/// The compiled campaigns of every workspace, by version.
pub struct CampaignCache {
    parser: liquid::Parser,
    entries: Mutex<Entries>,
}

impl CampaignCache {
    pub fn new() -> Self {
        CampaignCache {
            parser: herald_campaigns::render::parser(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The Liquid parser, for validation.
    pub fn parser(&self) -> &liquid::Parser {
        &self.parser
    }

    /// `stored` of `workspace`, compiled (from the cache when this version was seen).
    pub fn compiled(
        &self,
        workspace: &str,
        stored: Stored,
    ) -> Result<Arc<CompiledCampaign>, Vec<FieldViolation>> {
        let key = (workspace.to_owned(), stored.campaign.id.clone());
        if let Some((version, compiled)) = self.lock().get(&key)
            && *version == stored.update_time_ms
        {
            return Ok(compiled.clone());
        }
        let version = stored.update_time_ms;
        let compiled = Arc::new(CompiledCampaign::compile(
            &self.parser,
            stored.campaign,
            version,
        )?);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (version, compiled.clone()));
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent even if a holder panicked: entries are inserted whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
