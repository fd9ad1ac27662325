//! What the gates read of a campaign for most decisions, packed side by side.
//!
//! With 10,000 campaigns, the ones an event concerns are not in the CPU's caches, and
//! the stored form spreads what a decision reads over a dozen places in memory: the
//! campaign's fields, its audience's segment lists, its variants and their contents,
//! its id. Each is a cache miss. A [`Compact`] holds, in a few adjacent cache lines,
//! what the gates need when nothing is rendered (the usual end: an audience, a cap or
//! another campaign stops the message): the facts, the trigger's kind, the audience's
//! segment hashes, the weights, and each variant's channels and in-app formats, for its
//! default contents and for each localization (with the localization's tag), so the
//! locale gate picks from the compact what [`locale::pick_for`] would. The index keeps
//! the compacts of the campaigns one event concerns next to each other
//! ([`crate::MatchIndex`]), with copies of their property and trait filters and of
//! their ids made in the same order, so deciding them reads a few stretches of memory;
//! the rest of the campaign is read only when a gate needs it (a timer trigger's
//! settings, a render). What does not fit is marked so, and read from the campaign as
//! before.

use std::sync::Arc;

use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{Channel, InAppFormat, MessageContent};
use herald_proto::trigger::v1::{Campaign, Variant};

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

/// A normalized locale tag of 1 to 8 bytes, none of them 0, packed into a word: two such
/// tags are equal exactly when their words are (unlike hashes, so a match needs no check
/// against the tag). 0 for any other tag: a localization with one is looked for in the
/// campaign, a user's matches none in the compact.
pub(crate) fn tag_word(normal: &str) -> u64 {
    let bytes = normal.as_bytes();
    if bytes.len() > 8 || bytes.contains(&0) {
        return 0;
    }
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// The kind of a campaign's trigger, with what an event that matches it needs (so a
/// timed or goal trigger is started or counted without reading the campaign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerKind {
    Event,
    SegmentEntry,
    Delay { delay_ms: i64 },
    Inactivity { within_ms: i64 },
    Goal { occurrence: u32 },
    Schedule,
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

/// A list of contents as the channel gates read it: the channel and in-app format of
/// each, in order, as one byte each (their numbers are small).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channels {
    len: u8,
    channels: [(u8, u8); CONTENTS],
    /// Bit `k`: the content at `k` is the variant's default one, although a localization
    /// was chosen (it lacks that channel).
    from_default: u8,
}

impl Channels {
    const EMPTY: Channels = Channels {
        len: 0,
        channels: [(0, 0); CONTENTS],
        from_default: 0,
    };

    /// The channels of `contents`, which hold `defaults` where a localization lacks a
    /// channel; `None` when they do not fit.
    fn of(contents: &[&MessageContent], defaults: &[MessageContent]) -> Option<Channels> {
        let mut packed = Channels {
            len: u8::try_from(contents.len()).ok()?,
            ..Channels::EMPTY
        };
        for (k, content) in contents.iter().enumerate() {
            *packed.channels.get_mut(k)? = pack(render::channel(content), in_app_format(content))?;
            if defaults.get(k).is_some_and(|d| std::ptr::eq(d, *content)) {
                packed.from_default |= 1 << k;
            }
        }
        Some(packed)
    }

    /// The channel and in-app format of each content, in order, as many as
    /// [`Channels::len`] says.
    pub fn channels(&self) -> [(Channel, InAppFormat); CONTENTS] {
        self.channels.map(|(channel, format)| {
            (
                Channel::try_from(i32::from(channel)).unwrap_or(Channel::Unspecified),
                InAppFormat::try_from(i32::from(format)).unwrap_or(InAppFormat::Unspecified),
            )
        })
    }

    /// How many contents there are.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The channels sent from the default contents although a localization was chosen,
    /// in order (as [`locale::Picked::from_default`]).
    pub fn defaulted_channels(&self) -> Box<[Channel]> {
        if self.from_default == 0 {
            return Box::default();
        }
        let channels = self.channels();
        (0..self.len())
            .filter(|k| self.from_default & (1 << k) != 0)
            .map(|k| channels[k].0)
            .collect()
    }
}

/// A channel and an in-app format as one byte each; `None` when a number does not fit.
fn pack(channel: Channel, format: InAppFormat) -> Option<(u8, u8)> {
    Some((
        u8::try_from(channel as i32).ok()?,
        u8::try_from(format as i32).ok()?,
    ))
}

/// One variant as the locale and channel gates read it: its default contents' channels,
/// and for each localization, its tag and the channels of the contents a user who gets
/// it is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arm {
    /// How many localizations there are, unless `more`.
    locales: u8,
    /// It has more localizations than fit, or one whose tag or contents do not: what a
    /// user gets is picked from the campaign.
    more: bool,
    /// The localizations' normalized tags ([`tag_word`]), in order.
    tags: [u64; LOCALIZATIONS],
    defaults: Channels,
    /// What [`locale::pick_for`] chooses with each localization.
    localized: [Channels; LOCALIZATIONS],
}

/// What a user gets of a variant, read from its [`Arm`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArmPick<'a> {
    /// The localization chosen (its index in the variant's) and how; `None` for the
    /// default contents.
    pub localization: Option<(usize, locale::Match)>,
    pub contents: &'a Channels,
}

impl ArmPick<'_> {
    /// How the contents were chosen.
    pub fn reason(&self) -> locale::Match {
        self.localization.map_or(locale::Match::Default, |(_, m)| m)
    }
}

impl Arm {
    fn of(variant: &Variant) -> Option<Arm> {
        let contents = &variant.contents;
        let mut arm = Arm {
            locales: 0,
            more: false,
            tags: [0; LOCALIZATIONS],
            defaults: Channels::of(&contents.iter().collect::<Vec<_>>(), &[])?,
            localized: [Channels::EMPTY; LOCALIZATIONS],
        };
        if variant.localizations.len() > LOCALIZATIONS {
            arm.more = true;
            return Some(arm);
        }
        for (l, localization) in variant.localizations.iter().enumerate() {
            let picked = locale::chosen(variant, Some((l, locale::Match::Exact)));
            match (
                tag_word(&locale::normalize(&localization.locale)),
                Channels::of(&picked.contents.iter().collect::<Vec<_>>(), contents),
            ) {
                (tag, Some(channels)) if tag != 0 => {
                    arm.tags[l] = tag;
                    arm.localized[l] = channels;
                }
                _ => {
                    arm.more = true;
                    return Some(arm);
                }
            }
        }
        arm.locales = u8::try_from(variant.localizations.len()).ok()?;
        Some(arm)
    }

    /// The default contents (what control is held out on, whatever the user's locale).
    pub fn defaults(&self) -> ArmPick<'_> {
        ArmPick {
            localization: None,
            contents: &self.defaults,
        }
    }

    /// Whether what a user gets of the variant can be read from here (see [`Arm::pick`]).
    pub fn fits(&self) -> bool {
        !self.more
    }

    /// Whether the variant has localizations (or more than fit).
    pub fn localized(&self) -> bool {
        self.more || self.locales > 0
    }

    /// What a user whose locale is looked for under the tags `user` ([`tag_word`] of
    /// [`locale::Lookup::tries`], 0 for a tag that does not fit) gets, as
    /// [`locale::pick_for`] chooses it; `None` when only the campaign can say.
    pub fn pick(&self, user: &[u64]) -> Option<ArmPick<'_>> {
        if self.more {
            return None;
        }
        let tags = &self.tags[..usize::from(self.locales)];
        let found = user.iter().enumerate().find_map(|(i, tag)| {
            let l = tags.iter().position(|t| t == tag && *tag != 0)?;
            Some((
                l,
                if i == 0 {
                    locale::Match::Exact
                } else {
                    locale::Match::Language
                },
            ))
        });
        Some(ArmPick {
            localization: found,
            contents: match found {
                Some((l, _)) => &self.localized[l],
                None => &self.defaults,
            },
        })
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
            locales: 0,
            more: false,
            tags: [0; LOCALIZATIONS],
            defaults: Channels::EMPTY,
            localized: [Channels::EMPTY; LOCALIZATIONS],
        };
        let mut arms = Arms {
            len: u8::try_from(variants.len()).ok()?,
            weights: [0; ARMS],
            arms: [empty; ARMS],
        };
        for (i, variant) in variants.iter().enumerate() {
            *arms.weights.get_mut(i)? = variant.weight;
            arms.arms[i] = Arm::of(variant)?;
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
            CompiledTrigger::Delay {
                conditions,
                delay_ms,
                ..
            } => (
                TriggerKind::Delay {
                    delay_ms: *delay_ms,
                },
                !conditions.is_empty(),
            ),
            CompiledTrigger::Inactivity { within_ms, .. } => (
                TriggerKind::Inactivity {
                    within_ms: *within_ms,
                },
                false,
            ),
            CompiledTrigger::Goal {
                conditions,
                occurrence,
                ..
            } => (
                TriggerKind::Goal {
                    occurrence: *occurrence,
                },
                !conditions.is_empty(),
            ),
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
    /// campaigns are in flight together (see [`Compact::read_ahead`]).
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
    fn a_tag_word_is_the_tag_itself() {
        let word = tag_word;
        assert_eq!(word("fr"), u64::from_le_bytes(*b"fr\0\0\0\0\0\0"));
        assert_ne!(word("fr"), word("fr-ca"));
        assert_eq!(word("zh-hant"), u64::from_le_bytes(*b"zh-hant\0"));
        assert_eq!(word("abcdefgh"), u64::from_le_bytes(*b"abcdefgh"));
        assert_eq!(word("zh-hant-tw"), 0);
        assert_eq!(word(""), 0);
        assert_eq!(word("f\0"), 0);
    }

    #[test]
    fn an_arm_picks_what_the_campaign_would() {
        use herald_proto::common::v1::{InAppContent, SmsContent};
        use herald_proto::trigger::v1::LocalizedContents;

        let in_app = |title: &str, format: InAppFormat| MessageContent {
            body: Some(Body::InApp(InAppContent {
                title: title.into(),
                format: format as i32,
                ..Default::default()
            })),
        };
        let sms = |text: &str| MessageContent {
            body: Some(Body::Sms(SmsContent { body: text.into() })),
        };
        // A localization's contents: a modal, or a banner and an SMS, or only an SMS
        // (then the in-app content is sent from the defaults).
        let localized = |tag: &str| LocalizedContents {
            locale: tag.into(),
            contents: match tag.len() % 3 {
                0 => vec![in_app(tag, InAppFormat::Modal)],
                1 => vec![in_app(tag, InAppFormat::Banner), sms(tag)],
                _ => vec![sms(tag)],
            },
        };
        let variant = |defaults: Vec<MessageContent>, locales: &[&str]| Variant {
            id: "v".into(),
            weight: 1,
            contents: defaults,
            localizations: locales.iter().map(|l| localized(l)).collect(),
            ..Default::default()
        };
        let mut variants = Vec::new();
        for locales in [
            &[][..],
            &["fr"],
            &["FR_ca", "de"],
            &["de", "fr"],
            &["pt-BR"],
            &["zh-Hant-TW", "zh"],
            &["fr", "de", "es"],
        ] {
            variants.push(variant(vec![in_app("hi", InAppFormat::Tooltip)], locales));
            variants.push(variant(
                vec![in_app("hi", InAppFormat::Modal), sms("hi")],
                locales,
            ));
        }
        let mut packed = 0;
        for variant in &variants {
            let arm = Arm::of(variant).expect("two contents fit");
            for user in [
                None,
                Some("en"),
                Some("fr"),
                Some("fr-CA"),
                Some("de-AT"),
                Some("pt"),
                Some("pt-BR"),
                Some("zh-Hant-TW"),
                Some("zh-Hant"),
            ] {
                let lookup = user.and_then(locale::Lookup::new);
                let tags: Vec<u64> = lookup
                    .as_ref()
                    .map_or_else(Vec::new, |l| l.tries().map(tag_word).collect());
                let picked = locale::pick_for(variant, lookup.as_ref());
                let Some(pick) = arm.pick(&tags) else {
                    // Only the campaign can say: too many localizations, or a long tag.
                    assert!(
                        variant.localizations.len() > LOCALIZATIONS
                            || variant.localizations.iter().any(|l| l.locale.len() > 8),
                        "{variant:?}"
                    );
                    continue;
                };
                packed += 1;
                let case = format!("{:?} {user:?}", variant.localizations);
                assert_eq!(
                    pick.localization,
                    picked.localization.map(|l| (l, picked.reason)),
                    "{case}"
                );
                assert_eq!(pick.reason(), picked.reason, "{case}");
                let channels: Vec<(Channel, InAppFormat)> = picked
                    .contents
                    .iter()
                    .map(|c| (render::channel(c), in_app_format(c)))
                    .collect();
                assert_eq!(
                    pick.contents.channels()[..pick.contents.len()],
                    channels[..],
                    "{case}"
                );
                assert_eq!(
                    *pick.contents.defaulted_channels(),
                    picked.from_default[..],
                    "{case}"
                );
            }
            assert_eq!(
                arm.defaults().contents.channels()[..arm.defaults().contents.len()],
                variant
                    .contents
                    .iter()
                    .map(|c| (render::channel(c), in_app_format(c)))
                    .collect::<Vec<_>>()[..]
            );
        }
        assert!(packed >= 90, "{packed} cases read from the arm");
    }
}
