//! Why a gate passed or not, kept as data while deciding and put into words only when a
//! decision is explained or stored ([`Why::describe`]). The gates every decision goes
//! through format nothing and share nothing: the words that depend on the campaign alone
//! are written once when it is compiled ([`CampaignWords`], which the decision holds) and
//! a verdict names them ([`Words`]); the rest are numbers until displayed. Rarer verdicts
//! (timers started or cancelled, transitions from before the campaign was active,
//! templates that failed) still write their words ([`Why::Text`]).

use std::fmt;
use std::sync::Arc;

use herald_conditions::Condition;
use herald_proto::common::v1::{Channel, InAppFormat};
use herald_proto::trigger::v1::Campaign;

use crate::attention::Rule;
use crate::compiled::CompiledTrigger;
use crate::locale::{self, Match};
use crate::render;

/// The words of one verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why<'c> {
    /// Words that never change.
    Fixed(&'static str),
    /// Words prepared when the campaign was compiled.
    Campaign(Words),
    /// Words written for this decision (the rare paths: timers, transitions, failures).
    Text(String),
    /// `entry: once per user, already entered at …`.
    EnteredAt(i64),
    /// `entry: cooldown of … since the last entry at … has not passed`.
    Cooldown { cooldown_ms: i64, last_ms: i64 },
    /// The campaign's frequency cap, `max` per `window_ms` (`None`: ever), with `used`
    /// entries in the window.
    FrequencyCap {
        max: u32,
        window_ms: Option<i64>,
        used: u32,
    },
    /// The variant at `index` assigned (or `kept` from an earlier assignment).
    Variant { index: usize, kept: bool },
    /// The control holdout.
    Control { kept: bool },
    /// The locale's contents chosen for the user.
    Locale {
        matched: Match,
        /// The localization chosen: its variant's index and its own in the variant's
        /// ([`CampaignWords::localization`]); `None` for the default contents.
        locale: Option<(u32, u32)>,
        /// The user's locale as received (borrowed from the cause, like the decision's
        /// other words), cleaned when put into words.
        user: Option<&'c str>,
        from_default: Box<[Channel]>,
    },
    /// A verdict about one channel of the message.
    Channel(Channel, ChannelWhy),
    /// `delay of … started`.
    DelayStarted { delay_ms: i64 },
    /// `inactivity window of … started (waiting for …)`, or restarted.
    InactivityStarted { within_ms: i64, restarted: bool },
}

/// Which of the campaign's prepared words ([`CampaignWords`]) a verdict says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    Matched,
    Starts,
    Ended,
    NotIncluded,
    /// Through the included segment at this index.
    IncludedThrough(usize),
    /// In the excluded segment at this index.
    Excluded(usize),
    /// The trait filter at this index does not match.
    TraitFailed(usize),
}

/// The words of a channel's verdict, after `{channel}: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelWhy {
    QuietHeld {
        until_ms: i64,
    },
    QuietDropped,
    /// Another campaign of this cause took the in-app format.
    FormatTaken {
        winner: Arc<str>,
        format: InAppFormat,
    },
    FormatFree {
        format: InAppFormat,
    },
    /// The last in-app message was `since_ms` ago, under the workspace's `min_ms`.
    TooSoon {
        since_ms: i64,
        min_ms: i64,
    },
    IntervalExempt,
    NoInterval,
    OutsideInterval {
        min_ms: i64,
    },
    /// The cap rule reached: its index in the workspace's (the decision holds them).
    Capped(usize),
    CapExempt,
    NoCapRules,
    WithinCaps(usize),
    Rendered,
    /// Control: the message would have gone out here.
    HeldOut,
    /// `field: error` of a template that failed or aborted.
    NotRendered(String),
}

impl Why<'_> {
    /// The verdict in words, for the campaign whose `words` these are, under the
    /// workspace cap `rules` a CHANNEL_CAPPED verdict names.
    pub(crate) fn describe<'a>(
        &'a self,
        words: &'a CampaignWords,
        rules: &'a [Rule],
    ) -> Described<'a> {
        Described {
            why: self,
            words,
            rules,
        }
    }
}

/// A [`Why`] with the words of its campaign: what `Display` puts into a sentence.
pub struct Described<'a> {
    why: &'a Why<'a>,
    words: &'a CampaignWords,
    rules: &'a [Rule],
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.words;
        match self.why {
            Why::Fixed(text) => f.write_str(text),
            Why::Campaign(words) => f.write_str(match *words {
                Words::Matched => &w.matched,
                Words::Starts => w
                    .starts
                    .as_deref()
                    .unwrap_or("the campaign has not started"),
                Words::Ended => w.ended.as_deref().unwrap_or("the campaign ended"),
                Words::NotIncluded => &w.not_included,
                Words::IncludedThrough(i) => {
                    w.included_through.get(i).map_or("in the audience", |t| t)
                }
                Words::Excluded(i) => w.excluded.get(i).map_or("in an excluded segment", |t| t),
                Words::TraitFailed(i) => w
                    .trait_failed
                    .get(i)
                    .map_or("a trait filter does not match", |t| t),
            }),
            Why::Text(text) => f.write_str(text),
            Why::EnteredAt(at) => {
                write!(
                    f,
                    "entry: once per user, already entered at {}",
                    instant(*at)
                )
            }
            Why::Cooldown {
                cooldown_ms,
                last_ms,
            } => write!(
                f,
                "entry: cooldown of {} since the last entry at {} has not passed",
                duration_words(*cooldown_ms),
                instant(*last_ms)
            ),
            Why::FrequencyCap {
                max,
                window_ms,
                used,
            } => {
                let window =
                    window_ms.map_or("ever".to_owned(), |w| format!("per {}", duration_words(w)));
                if used >= max {
                    write!(f, "frequency cap {max} {window} reached ({used} entries)")
                } else {
                    write!(f, "frequency cap {max} {window}: {used} used")
                }
            }
            Why::Variant { index, kept } => match w.variant_ids.get(*index) {
                Some(id) => write!(f, "variant {id:?} ({})", how(*kept)),
                None => write!(f, "variant {index} ({})", how(*kept)),
            },
            Why::Control { kept } => write!(
                f,
                "control holdout ({}): nothing is sent; the user is recorded as control where a message would have gone",
                how(*kept)
            ),
            Why::Locale {
                matched,
                locale,
                user,
                from_default,
            } => f.write_str(&locale::describe(
                *matched,
                locale.and_then(|(variant, at)| w.localization(variant, at)),
                user.and_then(locale::clean_borrowed).as_deref(),
                from_default,
            )),
            Why::DelayStarted { delay_ms } => {
                write!(f, "delay of {} started", duration_words(*delay_ms))
            }
            Why::InactivityStarted {
                within_ms,
                restarted,
            } => write!(
                f,
                "inactivity window of {} {} (waiting for {})",
                duration_words(*within_ms),
                if *restarted { "restarted" } else { "started" },
                w.awaited
            ),
            Why::Channel(channel, why) => {
                write!(f, "{}: ", render::channel_name(*channel))?;
                match why {
                    ChannelWhy::QuietHeld { until_ms } => {
                        write!(f, "in quiet hours, held until {}", instant(*until_ms))
                    }
                    ChannelWhy::QuietDropped => f.write_str("in quiet hours, dropped"),
                    ChannelWhy::FormatTaken { winner, format } => write!(
                        f,
                        "campaign {winner} of higher precedence took the {} format for this cause",
                        format.as_str_name()
                    ),
                    ChannelWhy::FormatFree { format } => write!(
                        f,
                        "no campaign of higher precedence took the {} format",
                        format.as_str_name()
                    ),
                    ChannelWhy::TooSoon { since_ms, min_ms } => write!(
                        f,
                        "the last in-app message was {} ago, the workspace minimum is {}",
                        duration_words(*since_ms),
                        duration_words(*min_ms)
                    ),
                    ChannelWhy::IntervalExempt => f.write_str("exempt from the minimum interval"),
                    ChannelWhy::NoInterval => f.write_str("the workspace has no minimum interval"),
                    ChannelWhy::OutsideInterval { min_ms } => write!(
                        f,
                        "outside the minimum interval of {}",
                        duration_words(*min_ms)
                    ),
                    ChannelWhy::Capped(rule) => match self.rules.get(*rule) {
                        Some(rule) => f.write_str(&rule.reached),
                        None => f.write_str("a cap rule was reached"),
                    },
                    ChannelWhy::CapExempt => f.write_str("exempt from the cap rules"),
                    ChannelWhy::NoCapRules => f.write_str("the workspace has no cap rules"),
                    ChannelWhy::WithinCaps(n) => write!(f, "within all {n} cap rule(s)"),
                    ChannelWhy::Rendered => f.write_str("rendered"),
                    ChannelWhy::HeldOut => f.write_str("held out in control: would have been sent"),
                    ChannelWhy::NotRendered(error) => f.write_str(error),
                }
            }
        }
    }
}

fn how(kept: bool) -> &'static str {
    if kept { "kept" } else { "assigned" }
}

/// An instant as RFC 3339, as verdicts print it, e.g. `2026-06-01T07:00:00Z`.
pub(crate) fn instant(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| format!("{ms} ms"), |t| t.to_string())
}

/// A duration in the largest whole unit, e.g. `30m`, `2d`, `1.500s`.
pub(crate) fn duration_words(ms: i64) -> String {
    match ms {
        0 => "0s".to_owned(),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{}.{:03}s", ms / 1000, (ms % 1000).abs()),
    }
}

/// The words of a campaign's verdicts that depend on the campaign alone, written when it
/// is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CampaignWords {
    pub id: Arc<str>,
    /// How its trigger matched: `event "x" matched`, `entered segment "s"`…
    pub matched: Arc<str>,
    /// `the campaign starts at …` / `ended at …`, with a schedule.
    pub starts: Option<Arc<str>>,
    pub ended: Option<Arc<str>>,
    /// `the user is in none of the included segments […]`.
    pub not_included: Arc<str>,
    /// Per included segment: `in the audience, through included segment "s"`.
    pub included_through: Vec<Arc<str>>,
    /// Per excluded segment: `the user is in excluded segment "s"`.
    pub excluded: Vec<Arc<str>>,
    /// Per trait filter: `trait filter i (path) does not match`.
    pub trait_failed: Vec<Arc<str>>,
    /// The variants' ids, in order.
    pub variant_ids: Vec<Arc<str>>,
    /// What an inactivity trigger waits for: `any event` or the event's name quoted.
    pub awaited: Arc<str>,
    /// Per variant, its localizations' tags as written.
    pub localizations: Vec<Box<[Arc<str>]>>,
}

impl CampaignWords {
    /// The tag, as written, of the localization at `at` of the variant at `variant`.
    pub fn localization(&self, variant: u32, at: u32) -> Option<&str> {
        let tags = self.localizations.get(usize::try_from(variant).ok()?)?;
        tags.get(usize::try_from(at).ok()?).map(|tag| &**tag)
    }

    /// The words of a campaign known by its id alone (one no longer compiled).
    pub fn bare(id: &str) -> Self {
        let none: Arc<str> = Arc::from("");
        CampaignWords {
            id: id.into(),
            matched: none.clone(),
            starts: None,
            ended: None,
            not_included: none,
            included_through: Vec::new(),
            excluded: Vec::new(),
            trait_failed: Vec::new(),
            variant_ids: Vec::new(),
            awaited: Arc::from(""),
            localizations: Vec::new(),
        }
    }

    pub fn new(campaign: &Campaign, trigger: &CompiledTrigger, traits: &[Condition]) -> Self {
        let matched = match trigger {
            CompiledTrigger::Event { name, .. }
            | CompiledTrigger::Delay { name, .. }
            | CompiledTrigger::Inactivity { name, .. } => format!("event {name:?} matched"),
            CompiledTrigger::Goal {
                name, occurrence, ..
            } => format!("goal: event {name:?} for the {occurrence}. time"),
            CompiledTrigger::SegmentEntry { segment_id, .. } => {
                format!("entered segment {segment_id:?}")
            }
            CompiledTrigger::Schedule { .. } => "the local schedule came due".to_owned(),
        };
        let awaited = match trigger {
            CompiledTrigger::Inactivity { expected, .. } if expected.is_empty() => {
                "any event".to_owned()
            }
            CompiledTrigger::Inactivity { expected, .. } => format!("{expected:?}"),
            _ => String::new(),
        };
        let schedule = campaign.schedule.as_ref();
        let at = |t: Option<&prost_types::Timestamp>| t.map(herald_core::time::ms_of_proto);
        let (included, excluded): (&[String], &[String]) = match &campaign.audience {
            Some(a) => (&a.include_segment_ids, &a.exclude_segment_ids),
            None => (&[], &[]),
        };
        CampaignWords {
            id: campaign.id.as_str().into(),
            matched: matched.into(),
            starts: at(schedule.and_then(|s| s.start_time.as_ref()))
                .map(|ms| format!("the campaign starts at {}", instant(ms)).into()),
            ended: at(schedule.and_then(|s| s.end_time.as_ref()))
                .map(|ms| format!("the campaign ended at {}", instant(ms)).into()),
            not_included: format!(
                "the user is in none of the included segments {:?}",
                included
            )
            .into(),
            included_through: included
                .iter()
                .map(|id| format!("in the audience, through included segment {id:?}").into())
                .collect(),
            excluded: excluded
                .iter()
                .map(|id| format!("the user is in excluded segment {id:?}").into())
                .collect(),
            trait_failed: traits
                .iter()
                .enumerate()
                .map(|(i, c)| format!("trait filter {i} ({}) does not match", c.path).into())
                .collect(),
            variant_ids: campaign
                .variants
                .iter()
                .map(|v| v.id.as_str().into())
                .collect(),
            awaited: awaited.into(),
            localizations: campaign
                .variants
                .iter()
                .map(|v| {
                    v.localizations
                        .iter()
                        .map(|l| l.locale.as_str().into())
                        .collect()
                })
                .collect(),
        }
    }
}

impl From<&'static str> for Why<'_> {
    fn from(text: &'static str) -> Self {
        Why::Fixed(text)
    }
}

impl From<String> for Why<'_> {
    fn from(text: String) -> Self {
        Why::Text(text)
    }
}

impl From<Words> for Why<'_> {
    fn from(words: Words) -> Self {
        Why::Campaign(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_as_sentences() {
        let mut campaign = CampaignWords::bare("cmp_a");
        campaign.variant_ids = vec!["v1".into()];
        campaign.localizations = vec![Box::new(["de".into(), "fr".into()])];
        campaign.awaited = "\"integration_connected\"".into();
        let words = |why: Why| why.describe(&campaign, &[]).to_string();
        assert_eq!(
            words(Why::DelayStarted {
                delay_ms: 90 * 60_000
            }),
            "delay of 90m started"
        );
        assert_eq!(
            words(Why::InactivityStarted {
                within_ms: 1_800_000,
                restarted: true
            }),
            "inactivity window of 30m restarted (waiting for \"integration_connected\")"
        );
        assert_eq!(
            words(Why::FrequencyCap {
                max: 3,
                window_ms: Some(86_400_000),
                used: 3
            }),
            "frequency cap 3 per 1d reached (3 entries)"
        );
        assert_eq!(
            words(Why::FrequencyCap {
                max: 1,
                window_ms: None,
                used: 0
            }),
            "frequency cap 1 ever: 0 used"
        );
        assert_eq!(
            words(Why::Channel(
                Channel::InApp,
                ChannelWhy::FormatTaken {
                    winner: "cmp_a".into(),
                    format: InAppFormat::Modal
                }
            )),
            "in_app: campaign cmp_a of higher precedence took the IN_APP_FORMAT_MODAL format for this cause"
        );
        assert_eq!(
            words(Why::Channel(
                Channel::Push,
                ChannelWhy::QuietHeld {
                    until_ms: 1_780_297_200_000
                }
            )),
            "push: in quiet hours, held until 2026-06-01T07:00:00Z"
        );
        assert_eq!(
            words(Why::Cooldown {
                cooldown_ms: 90_000,
                last_ms: 0
            }),
            "entry: cooldown of 90s since the last entry at 1970-01-01T00:00:00Z has not passed"
        );
        assert_eq!(
            words(Why::Locale {
                matched: Match::Language,
                locale: Some((0, 1)),
                user: Some("fr_ca"),
                from_default: Box::new([Channel::Sms]),
            }),
            "localization \"fr\" (language of user locale \"fr-CA\"); sms from the default contents (not localized)"
        );
        assert_eq!(
            words(Why::Variant {
                index: 0,
                kept: true
            }),
            "variant \"v1\" (kept)"
        );
    }
}
