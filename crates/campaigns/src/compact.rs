//! What the gates read of a campaign for most decisions, packed side by side.
//!
//! With 10,000 campaigns, the ones an event concerns are not in the CPU's caches, and the
//! stored form spreads what a decision reads over a dozen places in memory: the
//! campaign's fields, its audience's segment lists, its variants and their contents, its
//! id. Each is a cache miss. A [`Compact`] holds, in a few adjacent cache lines, what the
//! gates need when nothing is rendered (the usual end: an audience, a cap or another
//! campaign stops the message): the facts, the trigger's kind, the audience's segment
//! hashes, the weights, and each variant's channels, in-app formats and localization
//! tags. The index keeps the compacts of the campaigns one event concerns next to each
//! other ([`crate::MatchIndex`]), with copies of their property and trait filters and of
//! their ids made in the same order, so deciding them reads a few stretches of memory;
//! the rest of the campaign is read only when a gate needs it (a localized variant, a
//! timer trigger's settings, a render). What does not fit is marked so, and read from
//! the campaign as before.

use std::hash::BuildHasher;
use std::sync::Arc;

use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{Channel, InAppFormat, MessageContent};
use herald_proto::trigger::v1::{Campaign, LocalizedContents};

use crate::compiled::{CompiledTrigger, Facts};
use crate::ledger::CampaignKey;
use crate::membership::AudienceKeys;
use crate::{locale, render};

/// Included and excluded segments kept inline; an audience naming more is read from the
/// campaign.
const INCLUDED: usize = 4;
const EXCLUDED: usize = 2;
/// Variants, and contents and localizations per variant, kept inline.
const ARMS: usize = 2;
const CONTENTS: usize = 2;
const LOCALIZATIONS: usize = 2;

/// The hash of a normalized locale tag (in memory only: never stored).
pub(crate) fn tag_hash(normal: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6c6f_6361_6c65).hash_one(normal)
}

/// The kind of a campaign's trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerKind {
    Event,
    SegmentEntry,
    Delay,
    Inactivity,
    Goal,
    Schedule,
}

/// Up to `N` hashes (an audience's segments, a variant's localization tags), in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hashes<const N: usize> {
    len: u8,
    keys: [u64; N],
}

impl<const N: usize> Hashes<N> {
    const EMPTY: Hashes<N> = Hashes {
        len: 0,
        keys: [0; N],
    };

    fn of(keys: &[u64]) -> Option<Hashes<N>> {
        let mut inline = Hashes {
            len: u8::try_from(keys.len()).ok()?,
            keys: [0; N],
        };
        inline.keys.get_mut(..keys.len())?.copy_from_slice(keys);
        Some(inline)
    }

    pub fn as_slice(&self) -> &[u64] {
        &self.keys[..usize::from(self.len)]
    }
}

/// A campaign's audience, as the audience gate reads it first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AudienceSketch {
    /// No audience: every user.
    Everyone,
    /// The hashes of the included and excluded segments ([`crate::membership`]).
    Segments(SegmentKeys),
    /// More segments than fit: read the campaign's [`AudienceKeys`].
    Spilled,
}

/// The hashes of an audience's included segments then its excluded ones, in one array
/// (two arrays would each pad their length to a word).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentKeys {
    include: u8,
    exclude: u8,
    keys: [u64; INCLUDED + EXCLUDED],
}

impl SegmentKeys {
    fn of(include: &[u64], exclude: &[u64]) -> Option<SegmentKeys> {
        if include.len() > INCLUDED || exclude.len() > EXCLUDED {
            return None;
        }
        let mut keys = [0; INCLUDED + EXCLUDED];
        keys[..include.len()].copy_from_slice(include);
        keys[include.len()..include.len() + exclude.len()].copy_from_slice(exclude);
        Some(SegmentKeys {
            include: u8::try_from(include.len()).ok()?,
            exclude: u8::try_from(exclude.len()).ok()?,
            keys,
        })
    }

    pub fn include(&self) -> &[u64] {
        &self.keys[..usize::from(self.include)]
    }

    pub fn exclude(&self) -> &[u64] {
        let from = usize::from(self.include);
        &self.keys[from..from + usize::from(self.exclude)]
    }
}

/// One variant's default contents, as the channel gates read them: the channel and
/// in-app format of each, in order, as one byte each (their numbers are small).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arm {
    /// The hashes of its localizations' normalized tags ([`tag_hash`]), unless `more`.
    locales: Hashes<LOCALIZATIONS>,
    /// It has more localizations than fit.
    more: bool,
    len: u8,
    channels: [(u8, u8); CONTENTS],
}

/// A channel and an in-app format as one byte each; `None` when a number does not fit.
fn packed(channel: Channel, format: InAppFormat) -> Option<(u8, u8)> {
    Some((
        u8::try_from(channel as i32).ok()?,
        u8::try_from(format as i32).ok()?,
    ))
}

impl Arm {
    fn of(contents: &[MessageContent], localizations: &[LocalizedContents]) -> Option<Arm> {
        let locales: Vec<u64> = localizations
            .iter()
            .map(|l| tag_hash(&locale::normalize(&l.locale)))
            .collect();
        let fitted = Hashes::of(&locales);
        let mut arm = Arm {
            locales: fitted.unwrap_or(Hashes::EMPTY),
            more: fitted.is_none(),
            len: u8::try_from(contents.len()).ok()?,
            channels: [(0, 0); CONTENTS],
        };
        for (slot, content) in arm
            .channels
            .get_mut(..contents.len())?
            .iter_mut()
            .zip(contents)
        {
            *slot = packed(render::channel(content), in_app_format(content))?;
        }
        Some(arm)
    }

    /// The channel and in-app format of each default content, in order, as many as
    /// [`Arm::len`] says.
    pub fn channels(&self) -> [(Channel, InAppFormat); CONTENTS] {
        self.channels.map(|(channel, format)| {
            (
                Channel::try_from(i32::from(channel)).unwrap_or(Channel::Unspecified),
                InAppFormat::try_from(i32::from(format)).unwrap_or(InAppFormat::Unspecified),
            )
        })
    }

    /// How many default contents it has.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the variant has localizations (or more than fit).
    pub fn localized(&self) -> bool {
        self.more || !self.locales.as_slice().is_empty()
    }

    /// Whether a user whose locale is looked for under the tags hashed `user` (see
    /// [`locale::Lookup::tries`]) surely gets the default contents: no localization's tag
    /// has one of those hashes. `false` means the contents are picked from the campaign.
    pub fn surely_default(&self, user: &[u64]) -> bool {
        !self.more && !self.locales.as_slice().iter().any(|l| user.contains(l))
    }
}

/// The variants, when there are at most [`ARMS`] of at most [`CONTENTS`] contents each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arms {
    len: u8,
    weights: [u32; ARMS],
    arms: [Arm; ARMS],
}

impl Arms {
    fn of(campaign: &Campaign) -> Option<Arms> {
        let variants = &campaign.variants;
        let empty = Arm {
            locales: Hashes::EMPTY,
            more: false,
            len: 0,
            channels: [(0, 0); CONTENTS],
        };
        let mut arms = Arms {
            len: u8::try_from(variants.len()).ok()?,
            weights: [0; ARMS],
            arms: [empty; ARMS],
        };
        for (i, variant) in variants.iter().enumerate() {
            *arms.weights.get_mut(i)? = variant.weight;
            arms.arms[i] = Arm::of(&variant.contents, &variant.localizations)?;
        }
        Some(arms)
    }

    /// The variants' weights, in order.
    pub fn weights(&self) -> &[u32] {
        &self.weights[..usize::from(self.len)]
    }

    /// The variant at `index`.
    pub fn arm(&self, index: usize) -> Option<&Arm> {
        self.arms[..usize::from(self.len)].get(index)
    }
}

/// What the gates read of a campaign for most decisions (see the module's comment).
#[derive(Debug, Clone)]
pub(crate) struct Compact {
    pub facts: Facts,
    /// The campaign's id (a copy of its words'; the index's compacts have their own):
    /// what assignment hashes and the ledger finds.
    pub id: Arc<str>,
    pub trigger: TriggerKind,
    /// Whether the trigger has property filters (the index keeps a copy of them).
    pub filtered: bool,
    pub audience: AudienceSketch,
    /// Whether the audience has trait filters (the index keeps a copy of them).
    pub trait_filters: bool,
    /// Whether the campaign has quiet hours of its own.
    pub quiet: bool,
    /// How many variants the campaign has (saturating).
    pub variants: u8,
    /// `None` when the variants do not fit: read from the campaign.
    pub arms: Option<Arms>,
}

impl Compact {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        facts: Facts,
        id: Arc<str>,
        campaign: &Campaign,
        trigger: &CompiledTrigger,
        audience_keys: &AudienceKeys,
        trait_filters: bool,
        quiet: bool,
    ) -> Compact {
        let (kind, filtered) = match trigger {
            CompiledTrigger::Event { conditions, .. } => {
                (TriggerKind::Event, !conditions.is_empty())
            }
            CompiledTrigger::SegmentEntry { .. } => (TriggerKind::SegmentEntry, false),
            CompiledTrigger::Delay { conditions, .. } => {
                (TriggerKind::Delay, !conditions.is_empty())
            }
            CompiledTrigger::Inactivity { .. } => (TriggerKind::Inactivity, false),
            CompiledTrigger::Goal { conditions, .. } => (TriggerKind::Goal, !conditions.is_empty()),
            CompiledTrigger::Schedule { .. } => (TriggerKind::Schedule, false),
        };
        let audience = match &campaign.audience {
            None => AudienceSketch::Everyone,
            Some(_) => SegmentKeys::of(&audience_keys.include, &audience_keys.exclude)
                .map_or(AudienceSketch::Spilled, AudienceSketch::Segments),
        };
        Compact {
            facts,
            id,
            trigger: kind,
            filtered,
            audience,
            trait_filters,
            quiet,
            variants: u8::try_from(campaign.variants.len()).unwrap_or(u8::MAX),
            arms: Arms::of(campaign),
        }
    }

    /// Its id as the user's ledger looks it up.
    pub(crate) fn key(&self) -> CampaignKey<'_> {
        CampaignKey::hashed(self.facts.ledger_hash, &self.id)
    }

    /// Reads a word of each of its cache lines (it spans four or five) and nothing else,
    /// without branching on what it reads: done for every campaign an event concerns
    /// before deciding the first, the reads are in flight together instead of each line
    /// being a miss of its own when a gate first reads it. Changes no result.
    pub(crate) fn read_ahead(&self) {
        std::hint::black_box((
            self.facts.starts_ms,
            self.facts.frequency_cap,
            self.facts.ledger_hash,
            std::mem::discriminant(&self.audience),
            self.arms.as_ref().map(|arms| arms.len),
            Arc::as_ptr(&self.id),
            self.trigger,
        ));
    }

    /// Reads a word of each part deciding reads first, so that the reads of several
    /// campaigns are in flight together (see [`crate::CompiledCampaign::prefetch`]).
    pub(crate) fn prefetch(&self) {
        std::hint::black_box(self.id.as_bytes().first());
    }
}

pub(crate) fn in_app_format(content: &MessageContent) -> InAppFormat {
    match &content.body {
        Some(Body::InApp(c)) => InAppFormat::try_from(c.format).unwrap_or(InAppFormat::Unspecified),
        _ => InAppFormat::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_does_not_fit_is_left_to_the_campaign() {
        assert_eq!(
            Hashes::<2>::of(&[1, 2]).map(|h| h.as_slice().to_vec()),
            Some(vec![1, 2])
        );
        assert!(Hashes::<2>::of(&[1, 2, 3]).is_none());
        assert_eq!(Hashes::<2>::of(&[]).map(|h| h.as_slice().len()), Some(0));
    }

    #[test]
    fn a_user_surely_gets_the_default_contents_only_when_no_localization_can_match() {
        use herald_proto::common::v1::InAppContent;
        use herald_proto::trigger::v1::Variant;

        let content = |title: &str| MessageContent {
            body: Some(Body::InApp(InAppContent {
                title: title.into(),
                format: InAppFormat::Modal as i32,
                ..Default::default()
            })),
        };
        let localized = |locales: &[&str]| Variant {
            id: "v".into(),
            weight: 1,
            contents: vec![content("hi")],
            localizations: locales
                .iter()
                .map(|l| LocalizedContents {
                    locale: (*l).into(),
                    contents: vec![content(l)],
                })
                .collect(),
            ..Default::default()
        };
        for locales in [
            &[][..],
            &["fr"],
            &["FR_ca", "de"],
            &["pt-BR"],
            &["fr", "de", "es"],
        ] {
            let variant = localized(locales);
            let arm = Arm::of(&variant.contents, &variant.localizations).expect("fits");
            assert_eq!(
                arm.channels()[..arm.len()],
                [(Channel::InApp, InAppFormat::Modal)]
            );
            for user in [
                None,
                Some("en"),
                Some("fr"),
                Some("fr-CA"),
                Some("de-AT"),
                Some("pt"),
            ] {
                let lookup = user.and_then(locale::Lookup::new);
                let tags: Vec<u64> = lookup.as_ref().map_or_else(Vec::new, |l| {
                    l.tries().iter().map(|t| tag_hash(t)).collect()
                });
                let picked = locale::pick_for(&variant, lookup.as_ref());
                if arm.surely_default(&tags) {
                    assert_eq!(picked.localization, None, "{locales:?} {user:?}");
                } else {
                    // Too many to keep inline, or one may match.
                    assert!(
                        locales.len() > LOCALIZATIONS || picked.localization.is_some(),
                        "{locales:?} {user:?}"
                    );
                }
            }
        }
    }
}
