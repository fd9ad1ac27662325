//! A campaign checked once and prepared for firing many times.

use herald_conditions::Condition;
use herald_core::FieldViolation;
use herald_core::time::{duration_ms, ms_of_proto};
use herald_proto::trigger::v1::{
    Campaign, CampaignStatus, EntryPolicy, local_schedule, time_trigger,
    trigger::Kind as TriggerKind,
};

use crate::assign::{Assignment, sole_arm};
use crate::attention::Quiet;
use crate::compact::Compact;
use crate::ledger::CampaignKey;
use crate::membership::AudienceKeys;
use crate::render::Templates;
use crate::validate;
use crate::why::CampaignWords;
use crate::zone::LocalSchedule;

/// What makes the campaign fire, compiled.
#[derive(Debug, Clone)]
pub enum CompiledTrigger {
    /// Each matching event.
    Event {
        name: String,
        conditions: Vec<Condition>,
    },
    /// An ENTERED transition of the segment (and, with `existing`, the members when
    /// the campaign becomes ACTIVE).
    SegmentEntry { segment_id: String, existing: bool },
    /// `delay_ms` after each matching event, unless `cancel` happens first.
    Delay {
        name: String,
        conditions: Vec<Condition>,
        delay_ms: i64,
        /// Empty: nothing cancels.
        cancel: String,
    },
    /// `within_ms` after `name` unless `expected` (empty: any event) happens first.
    Inactivity {
        name: String,
        expected: String,
        within_ms: i64,
    },
    /// The `occurrence`-th matching event.
    Goal {
        name: String,
        conditions: Vec<Condition>,
        occurrence: u32,
    },
    /// A local schedule in each user's zone, for the members of `segments` (the
    /// audience's include segments).
    Schedule {
        when: LocalSchedule,
        default_zone: String,
        segments: Vec<String>,
    },
}

/// How often a user may enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRule {
    EveryTime,
    Once,
    Cooldown { ms: i64 },
}

/// The campaign's frequency cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    /// `None`: the user's lifetime.
    pub window_ms: Option<i64>,
}

/// What the gates read of every campaign they decide, side by side: a decision touches
/// a line or two of memory for these rather than a dozen spread over the stored form
/// (with 10,000 campaigns, those are cache misses).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    pub active: bool,
    pub critical: bool,
    pub exempt_from_cap_rules: bool,
    pub entry: EntryRule,
    pub frequency_cap: Option<FrequencyCap>,
    /// The schedule's start and end, in milliseconds.
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
    pub ttl_ms: Option<i64>,
    pub control_weight: u32,
    /// The arm with all the weight, if one has it: everyone is assigned it.
    pub sole_arm: Option<Assignment>,
    /// Whether it has a schedule.
    pub scheduled: bool,
    /// The ledger's lookup hash of its id.
    pub ledger_hash: u64,
}

impl Facts {
    /// How many entry instants the ledger must keep for the campaign.
    pub(crate) fn entries_to_keep(&self) -> usize {
        self.frequency_cap.map_or(1, |cap| cap.max as usize).max(1)
    }
}

/// A stored campaign, with its trigger and audience conditions compiled and its templates
/// parsed, as of one version (its update time).
pub struct CompiledCampaign {
    /// What the gates read first, packed, its facts included; the index keeps copies side
    /// by side.
    pub(crate) compact: Compact,
    pub(crate) campaign: Campaign,
    pub(crate) version_ms: i64,
    pub(crate) trigger: CompiledTrigger,
    pub(crate) trait_conditions: Vec<Condition>,
    /// The hashes of its audience's segment ids (empty without an audience).
    pub(crate) audience_keys: AudienceKeys,
    pub(crate) templates: Templates,
    pub(crate) quiet: Option<Quiet>,
    /// The variants' weights, in order, for assignment.
    pub(crate) weights: Vec<u32>,
    /// The words of its verdicts that depend on it alone.
    pub(crate) words: CampaignWords,
    /// Its creation time in milliseconds (0 when unknown), for precedence.
    pub(crate) create_ms: i64,
}

impl std::fmt::Debug for CompiledCampaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCampaign")
            .field("id", &self.campaign.id)
            .field("version_ms", &self.version_ms)
            .finish_non_exhaustive()
    }
}

fn compile_trigger(campaign: &Campaign) -> Result<CompiledTrigger, Vec<FieldViolation>> {
    let f = "campaign.trigger";
    let kind = campaign
        .trigger
        .as_ref()
        .and_then(|t| t.kind.as_ref())
        .ok_or_else(|| vec![FieldViolation::new(f, "is required")])?;
    Ok(match kind {
        TriggerKind::Event(e) => CompiledTrigger::Event {
            name: e.event_name.clone(),
            conditions: validate::conditions(
                "campaign.trigger.event.property_filters",
                &e.property_filters,
            )?,
        },
        TriggerKind::SegmentEntry(s) => CompiledTrigger::SegmentEntry {
            segment_id: s.segment_id.clone(),
            existing: s.include_existing_members,
        },
        TriggerKind::Goal(g) => CompiledTrigger::Goal {
            name: g.event_name.clone(),
            conditions: validate::conditions(
                "campaign.trigger.goal.property_filters",
                &g.property_filters,
            )?,
            occurrence: g.occurrence.max(1),
        },
        TriggerKind::Time(t) => match &t.kind {
            Some(time_trigger::Kind::DelayAfterEvent(d)) => CompiledTrigger::Delay {
                name: d.event_name.clone(),
                conditions: validate::conditions(
                    "campaign.trigger.time.delay_after_event.property_filters",
                    &d.property_filters,
                )?,
                delay_ms: d.delay.as_ref().map(duration_ms).unwrap_or(0),
                cancel: d.cancel_event_name.clone(),
            },
            Some(time_trigger::Kind::Inactivity(i)) => CompiledTrigger::Inactivity {
                name: i.event_name.clone(),
                expected: i.expected_event_name.clone(),
                within_ms: i.within.as_ref().map(duration_ms).unwrap_or(0),
            },
            Some(time_trigger::Kind::Schedule(s)) => {
                let field = "campaign.trigger.time.schedule";
                let when = match &s.when {
                    Some(local_schedule::When::Cron(c)) => LocalSchedule::cron(c)
                        .map_err(|e| vec![FieldViolation::new(format!("{field}.cron"), e)])?,
                    Some(local_schedule::When::LocalTime(t)) => LocalSchedule::at(t)
                        .map_err(|e| vec![FieldViolation::new(format!("{field}.local_time"), e)])?,
                    None => {
                        return Err(vec![FieldViolation::new(
                            format!("{field}.when"),
                            "is required",
                        )]);
                    }
                };
                CompiledTrigger::Schedule {
                    when,
                    default_zone: s.default_time_zone.clone(),
                    segments: campaign
                        .audience
                        .as_ref()
                        .map(|a| a.include_segment_ids.clone())
                        .unwrap_or_default(),
                }
            }
            None => {
                return Err(vec![FieldViolation::new(
                    "campaign.trigger.time",
                    "is empty",
                )]);
            }
        },
    })
}

impl CompiledCampaign {
    /// Compiles `campaign` at version `version_ms`; what cannot be compiled is reported
    /// field by field (a stored campaign was validated when saved, so this means data
    /// that a newer rule refuses, or corruption).
    pub fn compile(
        parser: &liquid::Parser,
        campaign: Campaign,
        version_ms: i64,
    ) -> Result<CompiledCampaign, Vec<FieldViolation>> {
        let trigger = compile_trigger(&campaign)?;
        let trait_conditions = match &campaign.audience {
            Some(audience) => {
                validate::conditions("campaign.audience.trait_filters", &audience.trait_filters)?
            }
            None => Vec::new(),
        };
        let templates = Templates::compile(parser, &campaign)
            .map_err(|e| vec![FieldViolation::new(e.field, e.error)])?;
        let entry = match &campaign.entry {
            None => EntryRule::EveryTime,
            Some(entry) => match EntryPolicy::try_from(entry.policy) {
                Ok(EntryPolicy::Once) => EntryRule::Once,
                Ok(EntryPolicy::Cooldown) => EntryRule::Cooldown {
                    ms: entry.cooldown.as_ref().map(duration_ms).unwrap_or(0),
                },
                _ => EntryRule::EveryTime,
            },
        };
        let frequency_cap = campaign.frequency_cap.as_ref().map(|cap| FrequencyCap {
            max: cap.max_deliveries.max(1),
            window_ms: cap.window.as_ref().map(duration_ms),
        });
        let quiet = campaign.quiet_hours.as_ref().and_then(Quiet::compile);
        let words = CampaignWords::new(&campaign, &trigger, &trait_conditions);
        let weights: Vec<u32> = campaign.variants.iter().map(|v| v.weight).collect();
        let schedule = campaign.schedule.as_ref();
        let facts = Facts {
            active: campaign.status == CampaignStatus::Active as i32,
            critical: campaign.critical,
            exempt_from_cap_rules: campaign.exempt_from_cap_rules,
            entry,
            frequency_cap,
            starts_ms: schedule
                .and_then(|s| s.start_time.as_ref())
                .map(ms_of_proto),
            ends_ms: schedule.and_then(|s| s.end_time.as_ref()).map(ms_of_proto),
            ttl_ms: campaign.message_ttl.as_ref().map(duration_ms),
            control_weight: campaign.control_weight,
            sole_arm: sole_arm(&weights, campaign.control_weight),
            scheduled: schedule.is_some(),
            ledger_hash: CampaignKey::hash(&campaign.id),
        };
        let audience_keys = campaign
            .audience
            .as_ref()
            .map(AudienceKeys::new)
            .unwrap_or_default();
        let create_ms = campaign.create_time.as_ref().map(ms_of_proto).unwrap_or(0);
        let compact = Compact::new(
            facts,
            words.id.clone(),
            &campaign,
            &trigger,
            &audience_keys,
            !trait_conditions.is_empty(),
            quiet.is_some(),
        );
        Ok(CompiledCampaign {
            compact,
            campaign,
            version_ms,
            trigger,
            trait_conditions,
            audience_keys,
            templates,
            quiet,
            weights,
            words,
            create_ms,
        })
    }

    /// The campaign as stored.
    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    /// The campaign's id.
    pub fn id(&self) -> &str {
        &self.campaign.id
    }

    /// The property filters of its trigger (none for a trigger without).
    pub(crate) fn trigger_conditions(&self) -> &[Condition] {
        match &self.trigger {
            CompiledTrigger::Event { conditions, .. }
            | CompiledTrigger::Delay { conditions, .. }
            | CompiledTrigger::Goal { conditions, .. } => conditions,
            _ => &[],
        }
    }

    /// Reads a word of what the gates read of the campaign after the audience when its
    /// variants do not fit its compact (the first variant's contents and localizations)
    /// and nothing else. The caller does this for every campaign of a cause that needs it
    /// before deciding the first: the reads are independent, so the CPU has their cache
    /// misses in flight together instead of one after the other. Changes no result.
    pub(crate) fn prefetch_variants(&self) {
        if let Some(variant) = self.campaign.variants.first() {
            std::hint::black_box((
                variant.localizations.len(),
                variant.contents.first().map(|c| c.body.is_some()),
            ));
        }
    }

    /// Its id as the user's ledger looks it up.
    pub fn key(&self) -> CampaignKey<'_> {
        self.compact.key()
    }

    /// The version compiled: the campaign's update time in milliseconds.
    pub fn version_ms(&self) -> i64 {
        self.version_ms
    }

    /// The compiled trigger.
    pub fn trigger(&self) -> &CompiledTrigger {
        &self.trigger
    }

    /// Whether the campaign is ACTIVE.
    pub fn is_active(&self) -> bool {
        self.compact.facts.active
    }

    /// The event an event trigger fires on; `None` for other trigger kinds.
    pub fn event_name(&self) -> Option<&str> {
        match &self.trigger {
            CompiledTrigger::Event { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The campaign's creation time in milliseconds (0 when unknown).
    pub fn create_ms(&self) -> i64 {
        self.create_ms
    }

    /// When the campaign last became ACTIVE, in milliseconds (its creation when unknown).
    pub fn activate_ms(&self) -> i64 {
        self.campaign
            .activate_time
            .as_ref()
            .map(ms_of_proto)
            .unwrap_or_else(|| self.create_ms())
    }

    /// The order in which campaigns deciding together are considered: higher priority
    /// first, then the older campaign, then the smaller id.
    pub fn precedence(&self, other: &CompiledCampaign) -> std::cmp::Ordering {
        other
            .campaign
            .priority
            .cmp(&self.campaign.priority)
            .then(self.create_ms().cmp(&other.create_ms()))
            .then_with(|| self.id().cmp(other.id()))
    }
}
