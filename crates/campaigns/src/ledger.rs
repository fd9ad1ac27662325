//! A user's ledger: what trigger must remember about one user to decide the next time,
//! kept as one encoded value per user so that a decision reads and writes it under one
//! row lock (which is what makes the attention budget atomic across replicas):
//! - the recent messages sent, for the workspace's cap rules and minimum in-app interval;
//! - per campaign: entries (for the entry policy and the frequency cap), the sticky
//!   variant or control assignment, the goal trigger's count, and pending delay timers.
//!
//! Everything that only matters for a while is trimmed when the ledger is written
//! ([`Ledger::trim`]), so a ledger stays small however long the user lives.

use herald_proto::common::v1::{Channel, InAppFormat};
use prost::Message;

/// How long sent messages are kept: the longest cap rule window (31 days) plus a day for
/// calendar days that start before the rolling instant.
pub const SENT_RETENTION_MS: i64 = 32 * 86_400_000;

/// One message sent to the user.
#[derive(Clone, PartialEq, Message)]
pub struct SentMessage {
    #[prost(string, tag = "1")]
    pub campaign_id: String,
    /// The `Channel` number.
    #[prost(int32, tag = "2")]
    pub channel: i32,
    /// The `InAppFormat` number of an in-app message; 0 otherwise.
    #[prost(int32, tag = "3")]
    pub format: i32,
    #[prost(int64, tag = "4")]
    pub at_ms: i64,
}

impl SentMessage {
    pub fn channel(&self) -> Channel {
        Channel::try_from(self.channel).unwrap_or(Channel::Unspecified)
    }

    pub fn format(&self) -> InAppFormat {
        InAppFormat::try_from(self.format).unwrap_or(InAppFormat::Unspecified)
    }
}

/// What the ledger keeps of one campaign.
#[derive(Clone, PartialEq, Message)]
pub struct CampaignEntries {
    #[prost(string, tag = "1")]
    pub campaign_id: String,
    /// Entries (deliveries or control assignments) ever.
    #[prost(uint32, tag = "2")]
    pub entries: u32,
    /// The instants of the latest entries, oldest first, as many as the frequency cap
    /// needs.
    #[prost(int64, repeated, tag = "3")]
    pub recent: Vec<i64>,
    /// Whether the user was assigned; then `variant_id` (empty for control) holds.
    #[prost(bool, tag = "4")]
    pub assigned: bool,
    #[prost(string, tag = "5")]
    pub variant_id: String,
    /// Events counted by a goal trigger.
    #[prost(uint32, tag = "6")]
    pub goal_count: u32,
    /// Keys of pending delay timers, cancelled by the campaign's cancel event.
    #[prost(string, repeated, tag = "7")]
    pub pending_delays: Vec<String>,
    /// Whether an inactivity timer is pending.
    #[prost(bool, tag = "8")]
    pub inactivity_pending: bool,
}

impl CampaignEntries {
    /// The instant of the latest entry, if any.
    pub fn last_entry_ms(&self) -> Option<i64> {
        self.recent.last().copied()
    }
}

/// The ledger of one user.
#[derive(Clone, PartialEq, Message)]
pub struct Ledger {
    /// Recent messages, oldest first.
    #[prost(message, repeated, tag = "1")]
    pub sent: Vec<SentMessage>,
    /// The campaigns the user has state in, by id.
    #[prost(message, repeated, tag = "2")]
    pub campaigns: Vec<CampaignEntries>,
}

/// Entries kept per campaign: enough for any frequency cap and the cooldown.
const MAX_RECENT: usize = 1_000;

impl Ledger {
    /// Decodes a stored ledger; an empty value is an empty ledger.
    pub fn decode_from(bytes: &[u8]) -> Result<Ledger, prost::DecodeError> {
        let mut ledger = Ledger::decode(bytes)?;
        ledger
            .campaigns
            .sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        Ok(ledger)
    }

    /// The state of `campaign_id`, if any.
    pub fn campaign(&self, campaign_id: &str) -> Option<&CampaignEntries> {
        self.campaigns
            .binary_search_by(|c| c.campaign_id.as_str().cmp(campaign_id))
            .ok()
            .map(|at| &self.campaigns[at])
    }

    /// The state of `campaign_id`, created when missing.
    pub fn campaign_mut(&mut self, campaign_id: &str) -> &mut CampaignEntries {
        // Kept sorted by id, so a lookup is a binary search.
        let at = match self
            .campaigns
            .binary_search_by(|c| c.campaign_id.as_str().cmp(campaign_id))
        {
            Ok(at) => at,
            Err(at) => {
                self.campaigns.insert(
                    at,
                    CampaignEntries {
                        campaign_id: campaign_id.to_owned(),
                        ..Default::default()
                    },
                );
                at
            }
        };
        &mut self.campaigns[at]
    }

    /// Records an entry of `campaign_id` at `at_ms`, keeping at most `keep` instants.
    pub fn enter(&mut self, campaign_id: &str, at_ms: i64, keep: usize) {
        let state = self.campaign_mut(campaign_id);
        state.entries = state.entries.saturating_add(1);
        state.recent.push(at_ms);
        let keep = keep.clamp(1, MAX_RECENT);
        if state.recent.len() > keep {
            let extra = state.recent.len() - keep;
            state.recent.drain(..extra);
        }
    }

    /// Records a message sent at `at_ms`.
    pub fn sent(&mut self, campaign_id: &str, channel: Channel, format: InAppFormat, at_ms: i64) {
        self.sent.push(SentMessage {
            campaign_id: campaign_id.to_owned(),
            channel: channel as i32,
            format: format as i32,
            at_ms,
        });
    }

    /// The latest in-app message sent, if any.
    pub fn last_in_app_ms(&self) -> Option<i64> {
        self.sent
            .iter()
            .rev()
            .find(|m| m.channel() == Channel::InApp)
            .map(|m| m.at_ms)
    }

    /// Drops sent messages older than [`SENT_RETENTION_MS`] before `now_ms`, and
    /// campaigns with nothing left to remember.
    pub fn trim(&mut self, now_ms: i64) {
        let horizon = now_ms.saturating_sub(SENT_RETENTION_MS);
        self.sent.retain(|m| m.at_ms >= horizon);
        self.campaigns.retain(|c| {
            c.entries > 0
                || c.assigned
                || c.goal_count > 0
                || !c.pending_delays.is_empty()
                || c.inactivity_pending
        });
    }

    /// The encoded ledger.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_only_what_is_needed_and_round_trip() {
        let mut ledger = Ledger::default();
        for at in 0..5 {
            ledger.enter("cmp_a", at, 2);
        }
        let a = ledger.campaign("cmp_a").unwrap();
        assert_eq!(a.entries, 5);
        assert_eq!(a.recent, [3, 4]);
        assert_eq!(a.last_entry_ms(), Some(4));
        ledger.sent("cmp_a", Channel::InApp, InAppFormat::Modal, 10);
        ledger.sent("cmp_a", Channel::Email, InAppFormat::Unspecified, 20);
        assert_eq!(ledger.last_in_app_ms(), Some(10));
        let decoded = Ledger::decode_from(&ledger.to_bytes()).unwrap();
        assert_eq!(decoded, ledger);
        assert_eq!(Ledger::decode_from(&[]).unwrap(), Ledger::default());
    }

    #[test]
    fn trimming_forgets_old_messages_and_empty_campaigns() {
        let mut ledger = Ledger::default();
        ledger.sent("cmp_a", Channel::InApp, InAppFormat::Modal, 0);
        ledger.sent(
            "cmp_a",
            Channel::InApp,
            InAppFormat::Modal,
            SENT_RETENTION_MS,
        );
        ledger.campaign_mut("cmp_empty");
        ledger.campaign_mut("cmp_goal").goal_count = 1;
        ledger.trim(SENT_RETENTION_MS + 1);
        assert_eq!(ledger.sent.len(), 1);
        let ids: Vec<&str> = ledger
            .campaigns
            .iter()
            .map(|c| c.campaign_id.as_str())
            .collect();
        assert_eq!(ids, ["cmp_goal"]);
    }
}
