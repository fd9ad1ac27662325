//! A user's ledger: what trigger must remember about one user to decide the next time,
//! kept as one encoded value per user so that a decision reads and writes it under one
//! row lock (which is what makes the attention budget atomic across replicas):
//! - the recent messages sent, for the workspace's cap rules and minimum in-app interval;
//! - per campaign: entries (for the entry policy and the frequency cap), the sticky
//!   variant or control assignment (kept once the user is exposed to it, so a campaign
//!   that only ever reached a capped user leaves nothing), the goal trigger's count, and
//!   pending delay and inactivity timers.
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
///
/// Campaigns are looked up on every gate of every decision, and a user who met many
/// campaigns has state in hundreds, so they are kept sorted by a hash of their id with
/// the hashes beside them in one contiguous vector: a lookup is a binary search over
/// integers, not over strings spread across the heap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// Recent messages, oldest first.
    pub sent: Vec<SentMessage>,
    /// The campaigns the user has state in, sorted by (`keys`, id).
    campaigns: Vec<CampaignEntries>,
    /// `key(campaign_id)` of each of `campaigns`, in the same order.
    keys: Vec<u64>,
}

/// The ledger as stored.
#[derive(Clone, PartialEq, Message)]
struct StoredLedger {
    #[prost(message, repeated, tag = "1")]
    sent: Vec<SentMessage>,
    #[prost(message, repeated, tag = "2")]
    campaigns: Vec<CampaignEntries>,
}

/// Entries kept per campaign: enough for any frequency cap and the cooldown.
const MAX_RECENT: usize = 1_000;

/// Room left when decoding a ledger for the campaigns and messages deciding adds (a
/// cause starts a timer or two, counts a goal, sends a message), so that adding them
/// grows nothing.
const ROOM: usize = 4;

/// The lookup hash of a campaign id (in memory only: never stored).
fn key(campaign_id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6865_7261_6c64).hash_one(campaign_id)
}

/// A campaign id with its lookup hash, hashed once: a compiled campaign keeps its own
/// ([`crate::CompiledCampaign::key`]), so the gates of a decision hash nothing.
#[derive(Debug, Clone, Copy)]
pub struct CampaignKey<'a> {
    pub(crate) hash: u64,
    pub(crate) id: &'a str,
}

impl<'a> CampaignKey<'a> {
    pub fn new(id: &'a str) -> CampaignKey<'a> {
        CampaignKey { hash: key(id), id }
    }

    /// `id` with the hash [`CampaignKey::hash`] gave it earlier.
    pub(crate) fn hashed(hash: u64, id: &'a str) -> CampaignKey<'a> {
        CampaignKey { hash, id }
    }

    /// The lookup hash of `id`.
    pub(crate) fn hash(id: &str) -> u64 {
        key(id)
    }
}

impl<'a> From<&'a str> for CampaignKey<'a> {
    fn from(id: &'a str) -> CampaignKey<'a> {
        CampaignKey::new(id)
    }
}

impl<'a> From<&'a String> for CampaignKey<'a> {
    fn from(id: &'a String) -> CampaignKey<'a> {
        CampaignKey::new(id)
    }
}

impl CampaignEntries {
    /// Whether anything is left to remember.
    fn worth_keeping(&self) -> bool {
        self.entries > 0
            || self.assigned
            || self.goal_count > 0
            || !self.pending_delays.is_empty()
            || self.inactivity_pending
    }
}

impl Ledger {
    /// Decodes a stored ledger; an empty value is an empty ledger.
    pub fn decode_from(bytes: &[u8]) -> Result<Ledger, prost::DecodeError> {
        let stored = StoredLedger::decode(bytes)?;
        let mut keyed: Vec<(u64, CampaignEntries)> = stored
            .campaigns
            .into_iter()
            .map(|c| (key(&c.campaign_id), c))
            .collect();
        keyed.sort_by(|a, b| (a.0, &a.1.campaign_id).cmp(&(b.0, &b.1.campaign_id)));
        // A campaign stored twice (never written so) keeps its first state.
        keyed.dedup_by(|b, a| a.0 == b.0 && a.1.campaign_id == b.1.campaign_id);
        // With room for the campaigns a cause adds, so adding them does not move the
        // vectors.
        let mut keys = Vec::with_capacity(keyed.len() + ROOM);
        let mut campaigns = Vec::with_capacity(keyed.len() + ROOM);
        for (key, campaign) in keyed {
            keys.push(key);
            campaigns.push(campaign);
        }
        let mut sent = stored.sent;
        sent.reserve(ROOM);
        Ok(Ledger {
            sent,
            campaigns,
            keys,
        })
    }

    /// The campaigns the user has state in (in no meaningful order).
    pub fn campaigns(&self) -> &[CampaignEntries] {
        &self.campaigns
    }

    /// The campaigns the user has state in, each with its lookup key (in no meaningful
    /// order).
    pub fn keyed_campaigns(&self) -> impl Iterator<Item = (CampaignKey<'_>, &CampaignEntries)> {
        self.keys
            .iter()
            .zip(&self.campaigns)
            .map(|(hash, c)| (CampaignKey::hashed(*hash, &c.campaign_id), c))
    }

    /// Where `campaign` is, or would be inserted.
    fn position(&self, campaign: CampaignKey) -> (u64, Result<usize, usize>) {
        let (key, campaign_id) = (campaign.hash, campaign.id);
        let mut at = self.keys.partition_point(|k| *k < key);
        while at < self.keys.len() && self.keys[at] == key {
            match self.campaigns[at].campaign_id.as_str().cmp(campaign_id) {
                std::cmp::Ordering::Equal => return (key, Ok(at)),
                std::cmp::Ordering::Greater => break,
                std::cmp::Ordering::Less => at += 1,
            }
        }
        (key, Err(at))
    }

    /// The state of `campaign_id`, if any.
    pub fn campaign<'k>(
        &self,
        campaign_id: impl Into<CampaignKey<'k>>,
    ) -> Option<&CampaignEntries> {
        self.position(campaign_id.into())
            .1
            .ok()
            .map(|at| &self.campaigns[at])
    }

    /// The state of `campaign_id`, created when missing.
    pub fn campaign_mut<'k>(
        &mut self,
        campaign_id: impl Into<CampaignKey<'k>>,
    ) -> &mut CampaignEntries {
        let campaign_id = campaign_id.into();
        let at = match self.position(campaign_id) {
            (_, Ok(at)) => at,
            (key, Err(at)) => {
                self.keys.insert(at, key);
                self.campaigns.insert(
                    at,
                    CampaignEntries {
                        campaign_id: campaign_id.id.to_owned(),
                        ..Default::default()
                    },
                );
                at
            }
        };
        &mut self.campaigns[at]
    }

    /// Records an entry of `campaign_id` at `at_ms`, keeping at most `keep` instants.
    pub fn enter<'k>(&mut self, campaign_id: impl Into<CampaignKey<'k>>, at_ms: i64, keep: usize) {
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
        let mut at = 0;
        self.keys.retain(|_| {
            at += 1;
            self.campaigns[at - 1].worth_keeping()
        });
        self.campaigns.retain(CampaignEntries::worth_keeping);
    }

    /// The encoded ledger.
    pub fn to_bytes(&self) -> Vec<u8> {
        use prost::encoding::message;
        let len: usize = self
            .sent
            .iter()
            .map(|m| message::encoded_len(1, m))
            .chain(self.campaigns.iter().map(|c| message::encoded_len(2, c)))
            .sum();
        let mut bytes = Vec::with_capacity(len);
        for m in &self.sent {
            message::encode(1, m, &mut bytes);
        }
        for c in &self.campaigns {
            message::encode(2, c, &mut bytes);
        }
        bytes
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
    fn lookups_find_every_campaign_whatever_the_stored_order() {
        let mut ledger = Ledger::default();
        for i in (0..500).rev() {
            ledger.campaign_mut(&format!("cmp_{i}")).goal_count = i + 1;
        }
        assert_eq!(ledger.campaigns().len(), 500);
        // Stored in an order of its own (a ledger written by an earlier version was
        // sorted by id): decoding keys it again.
        let mut stored = StoredLedger {
            sent: Vec::new(),
            campaigns: ledger.campaigns().to_vec(),
        };
        stored
            .campaigns
            .sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        let decoded = Ledger::decode_from(&stored.encode_to_vec()).unwrap();
        assert_eq!(decoded, ledger);
        for i in 0..500 {
            let id = format!("cmp_{i}");
            assert_eq!(decoded.campaign(&id).map(|c| c.goal_count), Some(i + 1));
        }
        assert_eq!(decoded.campaign("cmp_500"), None);
        assert_eq!(decoded.campaign(""), None);
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
            .campaigns()
            .iter()
            .map(|c| c.campaign_id.as_str())
            .collect();
        assert_eq!(ids, ["cmp_goal"]);
    }
}
