//! Which campaigns a cause can concern: indexes by event name and by segment id over the
//! compiled ACTIVE campaigns, never a scan of all campaigns.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use herald_conditions::Condition;

use crate::CompiledCampaign;
use crate::compact::Compact;
use crate::compiled::CompiledTrigger;
use crate::ledger::CampaignKey;
use crate::membership::SegmentNames;

type List = Vec<Arc<CompiledCampaign>>;
/// Keys are event names, segment and campaign ids: foldhash hashes them several times
/// faster than std's SipHash, and a map is looked up per event and per pending timer.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// ACTIVE campaigns by what can concern them.
#[derive(Debug, Default)]
pub struct MatchIndex {
    /// By the event that fires or starts them: event, goal, delay and inactivity
    /// triggers.
    by_event: Map<Concerned>,
    /// By the event that cancels their pending timers: a delay's cancel event, an
    /// inactivity trigger's expected event.
    cancelled_by: Map<List>,
    /// Inactivity triggers whose expected event is any event at all.
    any_event: List,
    /// Segment-entry triggers, by segment id.
    by_segment: Map<List>,
    /// Local schedule triggers, by the segments whose members they are for.
    by_schedule_segment: Map<List>,
    by_id: Map<Arc<CompiledCampaign>>,
    /// By ledger key hash ([`CampaignKey`]), for the campaigns a user's ledger names:
    /// no id is hashed again. Two ids with one hash (never seen with 64 bits) leave one
    /// of them to `by_id`.
    by_key: HashMap<u64, Arc<CompiledCampaign>, foldhash::fast::RandomState>,
    /// What cancels the pending timers of the campaigns that can have any (delay and
    /// inactivity triggers), by ledger key hash: a small table that every event probes
    /// for each of the user's pending campaigns, so it stays in the caches, where
    /// `by_key` spans every campaign and each probe would be a miss.
    cancels: HashMap<u64, Cancels, foldhash::fast::RandomState>,
    /// The segments the audiences name, by hash.
    segments: SegmentNames,
}

/// The campaigns one event concerns, in precedence order, and side by side what the
/// gates read of them first ([`Compact`]) and their filters.
#[derive(Debug, Default)]
struct Concerned {
    campaigns: List,
    compact: Vec<Compact>,
    /// Copies of every campaign's property filters then trait filters, one campaign after
    /// the other: copied together, their paths and values are allocated together too, so
    /// the filters of one event's campaigns share a few cache lines instead of each
    /// campaign's being a few misses of its own.
    conditions: Vec<Condition>,
    /// Per campaign, where its filters are in `conditions`.
    filters: Vec<FilterRange>,
}

/// A campaign's filters in [`Concerned::conditions`]: `start..traits` its trigger's
/// property filters, `traits..end` its audience's trait filters.
#[derive(Debug, Clone, Copy)]
struct FilterRange {
    start: u32,
    traits: u32,
    end: u32,
}

/// What [`MatchIndex::concerned`] finds for an event name: the campaigns, their compacts
/// and their filters, at the same index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Concern<'i> {
    pub campaigns: &'i [Arc<CompiledCampaign>],
    pub compact: &'i [Compact],
    conditions: &'i [Condition],
    filters: &'i [FilterRange],
}

impl<'i> Concern<'i> {
    /// The property filters of the `i`-th campaign's trigger and its trait filters.
    pub fn filters(&self, i: usize) -> (&'i [Condition], &'i [Condition]) {
        let range = self.filters[i];
        let (start, traits, end) = (
            range.start as usize,
            range.traits as usize,
            range.end as usize,
        );
        (
            &self.conditions[start..traits],
            &self.conditions[traits..end],
        )
    }
}

/// What cancels a campaign's pending timers, so an event is compared with each of a
/// user's pending campaigns without reading the campaign.
#[derive(Debug, Clone, Copy)]
struct Cancels {
    cancelled: Cancelled,
    /// Another id has the same key hash: `cancelled` may be the other's.
    shared: bool,
}

/// What cancels a campaign's pending timers, by the hash of an event name
/// ([`MatchIndex::event_key`]); equal hashes are confirmed on the names.
#[derive(Debug, Clone, Copy)]
enum Cancelled {
    /// This event: a delay's cancel event, an inactivity trigger's expected event.
    By(u64),
    /// Any event but this one: an inactivity trigger waiting for any event, which its
    /// start event restarts instead.
    ByAnyBut(u64),
}

/// An event name hashed once, for [`MatchIndex::cancelled_keyed`].
#[derive(Debug, Clone, Copy)]
pub struct EventKey<'a> {
    name: &'a str,
    hash: u64,
}

impl MatchIndex {
    /// Indexes `campaigns`. Each list is in precedence order
    /// ([`CompiledCampaign::precedence`]).
    pub fn new(campaigns: impl IntoIterator<Item = Arc<CompiledCampaign>>) -> MatchIndex {
        let mut index = MatchIndex::default();
        let mut by_event = Map::<List>::default();
        for campaign in campaigns {
            if let Some(audience) = &campaign.campaign.audience {
                index.segments.add(audience);
            }
            match &campaign.trigger {
                CompiledTrigger::Event { name, .. } | CompiledTrigger::Goal { name, .. } => {
                    push(&mut by_event, name, &campaign);
                }
                CompiledTrigger::Delay { name, cancel, .. } => {
                    push(&mut by_event, name, &campaign);
                    if !cancel.is_empty() {
                        push(&mut index.cancelled_by, cancel, &campaign);
                    }
                }
                CompiledTrigger::Inactivity { name, expected, .. } => {
                    push(&mut by_event, name, &campaign);
                    if expected.is_empty() {
                        index.any_event.push(campaign.clone());
                    } else {
                        push(&mut index.cancelled_by, expected, &campaign);
                    }
                }
                CompiledTrigger::SegmentEntry { segment_id, .. } => {
                    push(&mut index.by_segment, segment_id, &campaign);
                }
                CompiledTrigger::Schedule { segments, .. } => {
                    for segment in segments {
                        push(&mut index.by_schedule_segment, segment, &campaign);
                    }
                }
            }
            let cancelled = match &campaign.trigger {
                CompiledTrigger::Delay { cancel, .. } if !cancel.is_empty() => {
                    Some(Cancelled::By(index.event_key(cancel).hash))
                }
                CompiledTrigger::Inactivity { name, expected, .. } if expected.is_empty() => {
                    Some(Cancelled::ByAnyBut(index.event_key(name).hash))
                }
                CompiledTrigger::Inactivity { expected, .. } => {
                    Some(Cancelled::By(index.event_key(expected).hash))
                }
                _ => None,
            };
            let hash = campaign.compact.facts.ledger_hash;
            // A hash shared with any other campaign, timed or not, is confirmed on the id.
            let shared = index.by_key.contains_key(&hash);
            if shared && let Some(cancels) = index.cancels.get_mut(&hash) {
                cancels.shared = true;
            }
            if let Some(cancelled) = cancelled {
                index
                    .cancels
                    .entry(hash)
                    .or_insert(Cancels { cancelled, shared });
            }
            index.by_key.entry(hash).or_insert_with(|| campaign.clone());
            index.by_id.insert(campaign.id().to_owned(), campaign);
        }
        let order = |list: &mut List| list.sort_by(|a, b| a.precedence(b));
        index.by_event = by_event
            .into_iter()
            .map(|(name, mut campaigns)| {
                order(&mut campaigns);
                // Each id copied too, so the ids of one event's campaigns are allocated
                // together: deciding reads them (assignment, ledger keys, timers).
                let compact = campaigns
                    .iter()
                    .map(|c| Compact {
                        id: Arc::from(&*c.compact.id),
                        ..c.compact.clone()
                    })
                    .collect();
                let mut conditions = Vec::new();
                let mut filters = Vec::with_capacity(campaigns.len());
                let at = |n: usize| u32::try_from(n).expect("fewer than 4 billion filters");
                for campaign in &campaigns {
                    let start = conditions.len();
                    conditions.extend_from_slice(campaign.trigger_conditions());
                    let traits = conditions.len();
                    conditions.extend_from_slice(&campaign.trait_conditions);
                    filters.push(FilterRange {
                        start: at(start),
                        traits: at(traits),
                        end: at(conditions.len()),
                    });
                }
                let concerned = Concerned {
                    campaigns,
                    compact,
                    conditions,
                    filters,
                };
                (name, concerned)
            })
            .collect();
        index.cancelled_by.values_mut().for_each(order);
        index.by_segment.values_mut().for_each(order);
        index.by_schedule_segment.values_mut().for_each(order);
        order(&mut index.any_event);
        index
    }

    /// The campaigns `event_name` can fire or start, in precedence order.
    pub fn for_event(&self, event_name: &str) -> &[Arc<CompiledCampaign>] {
        self.by_event
            .get(event_name)
            .map_or(&[], |c| c.campaigns.as_slice())
    }

    /// [`MatchIndex::for_event`], with each campaign's [`Compact`] and filters at the
    /// same place.
    pub(crate) fn concerned(&self, event_name: &str) -> Concern<'_> {
        match self.by_event.get(event_name) {
            Some(c) => Concern {
                campaigns: &c.campaigns,
                compact: &c.compact,
                conditions: &c.conditions,
                filters: &c.filters,
            },
            None => Concern {
                campaigns: &[],
                compact: &[],
                conditions: &[],
                filters: &[],
            },
        }
    }

    /// The segments the audiences of the indexed campaigns name.
    pub(crate) fn segment_names(&self) -> &SegmentNames {
        &self.segments
    }

    /// The campaigns whose pending timers `event_name` cancels (any-event inactivity
    /// triggers included).
    pub fn cancelled_by(&self, event_name: &str) -> impl Iterator<Item = &Arc<CompiledCampaign>> {
        self.cancelled_by
            .get(event_name)
            .into_iter()
            .flatten()
            .chain(self.any_event.iter().filter(move |c| {
            // The start event restarts the window rather than cancelling it.
            !matches!(&c.trigger, CompiledTrigger::Inactivity { name, .. } if name == event_name)
        }))
    }

    /// Whether `event_name` cancels the pending timers of `campaign`: a delay's cancel
    /// event, an inactivity trigger's expected event (any event but its start event when
    /// none is named).
    pub fn cancels(&self, campaign: &CompiledCampaign, event_name: &str) -> bool {
        match &campaign.trigger {
            CompiledTrigger::Delay { cancel, .. } => !cancel.is_empty() && cancel == event_name,
            CompiledTrigger::Inactivity { name, expected, .. } => {
                if expected.is_empty() {
                    name != event_name
                } else {
                    expected == event_name
                }
            }
            _ => false,
        }
    }

    /// The campaigns an entry into `segment_id` fires, in precedence order.
    pub fn for_segment(&self, segment_id: &str) -> &[Arc<CompiledCampaign>] {
        self.by_segment.get(segment_id).map_or(&[], Vec::as_slice)
    }

    /// The local-schedule campaigns for the members of `segment_id`.
    pub fn schedules_for_segment(&self, segment_id: &str) -> &[Arc<CompiledCampaign>] {
        self.by_schedule_segment
            .get(segment_id)
            .map_or(&[], Vec::as_slice)
    }

    /// The ACTIVE campaign `id`, if any.
    pub fn campaign(&self, id: &str) -> Option<&Arc<CompiledCampaign>> {
        self.by_id.get(id)
    }

    /// The ACTIVE campaign a ledger's `key` names, if any.
    pub fn campaign_keyed(&self, key: CampaignKey) -> Option<&Arc<CompiledCampaign>> {
        match self.by_key.get(&key.hash) {
            Some(campaign) if campaign.id() == key.id => Some(campaign),
            // Another id with the same hash: the map kept that one.
            Some(_) => self.by_id.get(key.id),
            None => None,
        }
    }

    /// `name` as [`MatchIndex::cancelled_keyed`] compares it: hash it once per event.
    pub fn event_key<'a>(&self, name: &'a str) -> EventKey<'a> {
        EventKey {
            name,
            hash: self.by_key.hasher().hash_one(name),
        }
    }

    /// The ACTIVE campaign a ledger's `key` names, if `event` cancels its pending timers
    /// ([`MatchIndex::cancels`]). Most of a user's pending campaigns are not cancelled by
    /// a given event: that answer comes from the key's entry alone, without reading the
    /// campaign or comparing a string.
    pub fn cancelled_keyed(
        &self,
        key: CampaignKey,
        event: &EventKey,
    ) -> Option<&Arc<CompiledCampaign>> {
        let entry = self.cancels.get(&key.hash)?;
        let maybe = entry.shared
            || match entry.cancelled {
                Cancelled::By(hash) => hash == event.hash,
                // Equal hashes are confirmed below: the names may still differ.
                Cancelled::ByAnyBut(_) => true,
            };
        if !maybe {
            return None;
        }
        let campaign = self.campaign_keyed(key)?;
        let cancels = match entry.cancelled {
            Cancelled::ByAnyBut(hash) if !entry.shared && hash != event.hash => true,
            _ => self.cancels(campaign, event.name),
        };
        cancels.then_some(campaign)
    }

    /// How many campaigns are indexed.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no campaign is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn push(map: &mut Map<List>, key: &str, campaign: &Arc<CompiledCampaign>) {
    map.entry(key.to_owned())
        .or_default()
        .push(campaign.clone());
}
