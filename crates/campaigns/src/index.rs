//! Which campaigns an event can fire: an index by event name, never a scan of all
//! campaigns, in the order they are considered.

use std::collections::HashMap;
use std::sync::Arc;

use crate::CompiledCampaign;

/// ACTIVE campaigns by the event name their trigger fires on.
#[derive(Debug, Default)]
pub struct MatchIndex {
    by_event: HashMap<String, Vec<Arc<CompiledCampaign>>>,
}

impl MatchIndex {
    /// Indexes `campaigns` (those without an event trigger are left out). Each list is in
    /// the order the campaigns are considered: higher priority first, then the older
    /// campaign, then the id.
    pub fn new(campaigns: impl IntoIterator<Item = Arc<CompiledCampaign>>) -> MatchIndex {
        let mut by_event: HashMap<String, Vec<Arc<CompiledCampaign>>> = HashMap::new();
        for campaign in campaigns {
            if let Some(name) = campaign.event_name() {
                by_event.entry(name.to_owned()).or_default().push(campaign);
            }
        }
        for list in by_event.values_mut() {
            list.sort_by(|a, b| {
                b.campaign
                    .priority
                    .cmp(&a.campaign.priority)
                    .then(a.create_ms().cmp(&b.create_ms()))
                    .then_with(|| a.id().cmp(b.id()))
            });
        }
        MatchIndex { by_event }
    }

    /// The campaigns `event_name` can fire, in the order they are considered.
    pub fn for_event(&self, event_name: &str) -> &[Arc<CompiledCampaign>] {
        self.by_event.get(event_name).map_or(&[], Vec::as_slice)
    }
}
