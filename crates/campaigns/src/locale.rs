//! Which locale's content a user gets.
//!
//! The user's locale is the first well-formed one of: the event's context locale, the
//! `locale` trait, the workspace's default locale ([`user_locale`]). A variant's
//! localization is then picked ([`pick`]):
//! 1. **exact**: the localization whose tag equals the user's locale;
//! 2. **language**: else the localization whose tag is a shorter form of the user's
//!    locale, dropping subtags from the right (RFC 4647 "lookup"): "fr-CA" falls back to
//!    "fr", "zh-Hant-TW" to "zh-Hant" and then "zh". Never the other way round: a user
//!    whose locale is "fr" does not get a "fr-FR" localization, because regional content
//!    is written for its region and with several regions there is no right pick;
//! 3. **default**: else the variant's default `contents`.
//!
//! Tags are compared ignoring ASCII case, with "_" read as "-". A localization replaces a
//! content whole, so one message never mixes languages; a channel the localization lacks
//! is sent from the default contents.

use std::borrow::Cow;

use herald_proto::common::v1::{Channel, MessageContent};
use herald_proto::trigger::v1::Variant;

use crate::render;

/// The shortest locale tag, in characters ("fr").
pub const MIN_LOCALE_LEN: usize = 2;
/// The longest locale tag, in characters.
pub const MAX_LOCALE_LEN: usize = 35;

/// Whether `tag` has the shape of a BCP 47 language tag: 2..=35 characters; a primary
/// language subtag of 2..=8 ASCII letters, then subtags of 1..=8 ASCII letters or digits,
/// separated by "-" (or "_", as in "fr_CA"). Registry membership is not checked.
pub fn is_well_formed(tag: &str) -> bool {
    if !(MIN_LOCALE_LEN..=MAX_LOCALE_LEN).contains(&tag.len()) {
        return false;
    }
    let mut subtags = tag.split(['-', '_']);
    let language = subtags.next().unwrap_or("");
    (2..=8).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether [`normalize`] of `tag` is `normal`, without writing it (a campaign's
/// localizations are compared on every decision that picks one).
fn normalizes_to(tag: &str, normal: &str) -> bool {
    tag.trim().chars().map(fold).eq(normal.chars())
}

/// A character of a tag as compared: lowercase, "_" as "-".
fn fold(c: char) -> char {
    if c == '_' {
        '-'
    } else {
        c.to_ascii_lowercase()
    }
}

/// `tag` as compared: lowercase, with "_" as "-".
pub fn normalize(tag: &str) -> String {
    tag.trim().chars().map(fold).collect()
}

/// `tag` in the conventional case of BCP 47: language lowercase, a four-letter script in
/// title case, a two-letter region uppercase ("zh_hant_tw" → "zh-Hant-TW").
pub fn canonical(tag: &str) -> String {
    canonical_chars(tag).collect()
}

/// The characters of [`canonical`] of `tag`, one by one.
fn canonical_chars(tag: &str) -> impl Iterator<Item = char> + '_ {
    // Subtags after a singleton ("x-…", "u-…") are extensions and keep lowercase.
    let mut in_extension = false;
    tag.trim()
        .split(['-', '_'])
        .enumerate()
        .flat_map(move |(i, subtag)| {
            if i > 0 && subtag.len() == 1 {
                in_extension = true;
            }
            let alpha = subtag.bytes().all(|b| b.is_ascii_alphabetic());
            // How many leading characters are uppercase: a region's two, a script's one.
            let upper = match subtag.len() {
                _ if i == 0 || in_extension || !alpha => 0,
                2 => 2,
                4 => 1,
                _ => 0,
            };
            (i > 0)
                .then_some('-')
                .into_iter()
                .chain(subtag.chars().enumerate().map(move |(k, c)| {
                    if k < upper {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                }))
        })
}

/// Where a user's locale came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocaleSource {
    /// The event's context locale.
    Event,
    /// The user's `locale` trait.
    Trait,
    /// The workspace's default locale (TriggerSettings.default_locale).
    WorkspaceDefault,
}

impl LocaleSource {
    /// Where, in words: "the event's context locale".
    pub fn describe(self) -> &'static str {
        match self {
            LocaleSource::Event => "the event's context locale",
            LocaleSource::Trait => "the locale trait",
            LocaleSource::WorkspaceDefault => "the workspace's default locale",
        }
    }
}

/// A user's locale and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLocale {
    /// The tag in canonical case ([`canonical`]), e.g. "fr-CA".
    pub tag: String,
    pub source: LocaleSource,
}

/// A candidate locale as received, cleaned: surrounding blanks and a POSIX codeset or
/// modifier ("en_US.UTF-8", "de_DE@euro") are dropped; `None` unless the rest is well
/// formed.
pub(crate) fn clean(candidate: &str) -> Option<String> {
    clean_borrowed(candidate).map(Cow::into_owned)
}

/// [`clean`], borrowed from `candidate` when it is written in canonical case already (as
/// most locales are received): a decision's locale verdict puts it into words this way.
pub(crate) fn clean_borrowed(candidate: &str) -> Option<Cow<'_, str>> {
    let tag = cleaned(candidate);
    if !is_well_formed(tag) {
        return None;
    }
    Some(if canonical_chars(tag).eq(tag.chars()) {
        Cow::Borrowed(tag)
    } else {
        Cow::Owned(canonical(tag))
    })
}

/// `candidate` without surrounding blanks, codeset or modifier (see [`clean`]).
fn cleaned(candidate: &str) -> &str {
    let tag = candidate.trim();
    tag.split(['.', '@']).next().unwrap_or("")
}

/// Where a user's locale is looked for, in order: the event's context locale, the
/// `locale` trait, the workspace's default locale.
fn candidates<'a>(
    event_context_locale: &'a str,
    locale_trait: Option<&'a str>,
    workspace_default: &'a str,
) -> impl Iterator<Item = (&'a str, LocaleSource)> {
    [
        (Some(event_context_locale), LocaleSource::Event),
        (locale_trait, LocaleSource::Trait),
        (Some(workspace_default), LocaleSource::WorkspaceDefault),
    ]
    .into_iter()
    .filter_map(|(candidate, source)| Some((candidate?, source)))
}

/// The user's locale: the first non-empty, well-formed one of the event's context locale,
/// the `locale` trait and the workspace's default locale, with where it came from.
pub fn user_locale(
    event_context_locale: &str,
    locale_trait: Option<&str>,
    workspace_default: &str,
) -> Option<UserLocale> {
    candidates(event_context_locale, locale_trait, workspace_default)
        .find_map(|(candidate, source)| clean(candidate).map(|tag| UserLocale { tag, source }))
}

/// How a localization was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// A localization with exactly the user's locale.
    Exact,
    /// A localization of a shorter form of the user's locale ("fr" for "fr-CA").
    Language,
    /// No localization fits (or the user's locale is unknown): the default contents.
    Default,
}

impl Match {
    /// "exact", "language" or "default".
    pub fn as_str(self) -> &'static str {
        match self {
            Match::Exact => "exact",
            Match::Language => "language",
            Match::Default => "default",
        }
    }
}

/// What [`pick`] chose for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked<'a> {
    /// The index of the chosen localization in the variant's; `None` for the default
    /// contents.
    pub localization: Option<usize>,
    /// The chosen localization's tag as written in the campaign; `None` for the default
    /// contents.
    pub locale: Option<&'a str>,
    /// Why.
    pub reason: Match,
    /// The content to render for each channel, in the order of the default contents
    /// (then any channel only the localization has): the localization's content where it
    /// has that channel, else the default one.
    pub contents: Contents<'a>,
    /// The channels sent from the default contents although a localization was chosen,
    /// because it lacks them.
    pub from_default: Vec<Channel>,
}

/// The contents [`pick`] chose: the variant's own (no copy: most variants are not
/// localized) or one per channel from a localization and the defaults.
#[derive(Debug, Clone, PartialEq)]
pub enum Contents<'a> {
    Default(&'a [MessageContent]),
    Chosen(Vec<&'a MessageContent>),
}

impl<'a> Contents<'a> {
    /// The contents in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a MessageContent> + '_ {
        let (default, chosen): (&'a [MessageContent], &[&'a MessageContent]) = match self {
            Contents::Default(all) => (all, &[]),
            Contents::Chosen(chosen) => (&[], chosen),
        };
        default.iter().chain(chosen.iter().copied())
    }
}

impl Picked<'_> {
    /// The choice in words for a user whose locale is `user_locale`, for the decision's
    /// LOCALE reason, e.g. `localization "fr" (language of user locale "fr-CA")`.
    pub fn describe(&self, user_locale: Option<&str>) -> String {
        let user = user_locale.and_then(clean);
        describe(
            self.reason,
            self.locale,
            user.as_deref(),
            &self.from_default,
        )
    }
}

/// A choice in words: how `locale` (`None`: the default contents) was chosen for the
/// user's (cleaned) locale `user`, and the channels sent from the default contents.
pub fn describe(
    reason: Match,
    locale: Option<&str>,
    user: Option<&str>,
    from_default: &[Channel],
) -> String {
    let mut text = match (reason, locale, user) {
        (Match::Exact, Some(l), Some(u)) => {
            format!("localization {l:?} (exact match of user locale {u:?})")
        }
        (Match::Language, Some(l), Some(u)) => {
            format!("localization {l:?} (language of user locale {u:?})")
        }
        (_, _, Some(u)) => format!("default contents (no localization for user locale {u:?})"),
        (_, _, None) => "default contents (the user's locale is unknown)".to_owned(),
    };
    if !from_default.is_empty() {
        let channels: Vec<&str> = from_default
            .iter()
            .map(|c| render::channel_name(*c))
            .collect();
        text.push_str(&format!(
            "; {} from the default contents (not localized)",
            channels.join(", ")
        ));
    }
    text
}

/// The tags to try for `user` (normalized), most specific first: the tag itself, then
/// each shorter form, dropping a trailing singleton with the subtag after it.
fn fallbacks(user: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(user), |longer| {
        let mut rest = &longer[..longer.rfind('-')?];
        // "en-a-bbb" → "en", not "en-a": a singleton introduces an extension.
        if let Some(cut) = rest.rfind('-')
            && rest.len() - cut == 2
        {
            rest = &rest[..cut];
        }
        Some(rest)
    })
}

/// A user's locale made ready for picking, once per cause rather than per campaign: the
/// locale as received and the normalized tags to try, most specific first.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    /// The locale as received (well formed once cleaned, see [`clean`]).
    received: &'a str,
    /// The cleaned tag normalized ([`normalize`]): [`Lookup::tries`] are its prefixes.
    normal: String,
}

impl<'a> Lookup<'a> {
    /// The lookup for `user_locale` as received; `None` unless it is well formed once
    /// cleaned (see [`user_locale`]).
    pub fn new(user_locale: &'a str) -> Option<Lookup<'a>> {
        let tag = cleaned(user_locale);
        is_well_formed(tag).then(|| Lookup {
            received: user_locale,
            normal: normalize(tag),
        })
    }

    /// The lookup for the user's locale: the first of the candidates [`user_locale`]
    /// takes that is well formed once cleaned.
    pub fn of_user(
        event_context_locale: &'a str,
        locale_trait: Option<&'a str>,
        workspace_default: &'a str,
    ) -> Option<Lookup<'a>> {
        candidates(event_context_locale, locale_trait, workspace_default)
            .find_map(|(candidate, _)| Lookup::new(candidate))
    }

    /// The user's locale as received (its tag in canonical case is [`clean`] of it).
    pub fn received(&self) -> &'a str {
        self.received
    }

    /// The normalized tags a localization is looked for under, most specific first.
    pub(crate) fn tries(&self) -> impl Iterator<Item = &str> {
        fallbacks(&self.normal)
    }
}

fn find(variant: &Variant, user: &Lookup) -> Option<(usize, Match)> {
    user.tries().enumerate().find_map(|(i, tag)| {
        variant
            .localizations
            .iter()
            .position(|l| normalizes_to(&l.locale, tag))
            .map(|l| {
                (
                    l,
                    if i == 0 {
                        Match::Exact
                    } else {
                        Match::Language
                    },
                )
            })
    })
}

/// Chooses `variant`'s content for a user whose locale is `user_locale` (see the module
/// documentation for the rule).
pub fn pick<'a>(variant: &'a Variant, user_locale: Option<&str>) -> Picked<'a> {
    pick_for(variant, user_locale.and_then(Lookup::new).as_ref())
}

/// [`pick`] for a user whose locale is already looked up (see [`Lookup`]).
pub fn pick_for<'a>(variant: &'a Variant, user: Option<&Lookup>) -> Picked<'a> {
    // Most variants are not localized: nothing to look up.
    let found = if variant.localizations.is_empty() {
        None
    } else {
        user.and_then(|u| find(variant, u))
    };
    chosen(variant, found)
}

/// `variant`'s contents with its localization at `index` chosen as `reason` says, or the
/// default contents for `None`: what [`pick_for`] returns once it has found (or not) the
/// localization.
pub(crate) fn chosen(variant: &Variant, found: Option<(usize, Match)>) -> Picked<'_> {
    let Some((index, reason)) = found else {
        return Picked {
            localization: None,
            locale: None,
            reason: Match::Default,
            contents: Contents::Default(&variant.contents),
            from_default: Vec::new(),
        };
    };
    let localization = &variant.localizations[index];
    let localized = |channel: Channel| {
        localization
            .contents
            .iter()
            .find(|c| render::channel(c) == channel)
    };
    let mut contents = Vec::with_capacity(variant.contents.len());
    let mut from_default = Vec::new();
    for content in &variant.contents {
        let channel = render::channel(content);
        match localized(channel) {
            Some(l) => contents.push(l),
            None => {
                contents.push(content);
                from_default.push(channel);
            }
        }
    }
    // A channel only the localization has (refused on ACTIVE campaigns, see validate).
    for content in &localization.contents {
        let channel = render::channel(content);
        if !variant
            .contents
            .iter()
            .any(|c| render::channel(c) == channel)
            && !contents.iter().any(|c| render::channel(c) == channel)
        {
            contents.push(content);
        }
    }
    Picked {
        localization: Some(index),
        locale: Some(localization.locale.as_str()),
        reason,
        contents: Contents::Chosen(contents),
        from_default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::common::v1::message_content::Body;
    use herald_proto::common::v1::{InAppContent, SmsContent};
    use herald_proto::trigger::v1::LocalizedContents;

    fn in_app(title: &str) -> MessageContent {
        MessageContent {
            body: Some(Body::InApp(InAppContent {
                title: title.into(),
                ..Default::default()
            })),
        }
    }
    fn sms(body: &str) -> MessageContent {
        MessageContent {
            body: Some(Body::Sms(SmsContent { body: body.into() })),
        }
    }
    fn localized(locale: &str, contents: Vec<MessageContent>) -> LocalizedContents {
        LocalizedContents {
            locale: locale.into(),
            contents,
        }
    }

    /// Default English in-app and SMS; French and Brazilian Portuguese in-app only;
    /// Traditional Chinese both.
    fn variant() -> Variant {
        Variant {
            id: "a".into(),
            contents: vec![in_app("Hello"), sms("Hello by SMS")],
            localizations: vec![
                localized("fr", vec![in_app("Bonjour")]),
                localized("pt_BR", vec![in_app("Olá")]),
                localized("zh-Hant", vec![sms("你好 SMS"), in_app("你好")]),
            ],
            ..Default::default()
        }
    }

    fn titles(picked: &Picked) -> Vec<String> {
        picked
            .contents
            .iter()
            .map(|c| match &c.body {
                Some(Body::InApp(c)) => c.title.clone(),
                Some(Body::Sms(c)) => c.body.clone(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn a_tag_normalizes_to_what_normalize_writes() {
        for tag in [
            "fr",
            "fr-CA",
            "fr_ca",
            " FR-ca ",
            "zh-Hant-TW",
            "pt_BR",
            "é",
            "de-",
        ] {
            let normal = normalize(tag);
            assert!(normalizes_to(tag, &normal), "{tag:?}");
            assert!(!normalizes_to(tag, "en-us"), "{tag:?}");
        }
    }

    #[test]
    fn a_french_user_gets_the_french_content_and_the_default_for_what_it_lacks() {
        let v = variant();
        let picked = pick(&v, Some("fr"));
        assert_eq!(picked.locale, Some("fr"));
        assert_eq!(picked.reason, Match::Exact);
        assert_eq!(titles(&picked), ["Bonjour", "Hello by SMS"]);
        assert_eq!(picked.from_default, [Channel::Sms]);
        assert_eq!(
            picked.describe(Some("fr")),
            "localization \"fr\" (exact match of user locale \"fr\"); sms from the default \
             contents (not localized)"
        );
    }

    #[test]
    fn a_regional_user_falls_back_to_the_language() {
        let v = variant();
        let picked = pick(&v, Some("fr-CA"));
        assert_eq!(picked.locale, Some("fr"));
        assert_eq!(picked.reason, Match::Language);
        assert_eq!(titles(&picked)[0], "Bonjour");
        assert!(
            picked
                .describe(Some("fr-CA"))
                .starts_with("localization \"fr\" (language of user locale \"fr-CA\")")
        );
        // Script subtags fall back one step at a time.
        let picked = pick(&v, Some("zh-Hant-TW"));
        assert_eq!(picked.locale, Some("zh-Hant"));
        assert_eq!(picked.reason, Match::Language);
        assert_eq!(titles(&picked), ["你好", "你好 SMS"]);
        assert!(picked.from_default.is_empty());
    }

    #[test]
    fn a_language_never_picks_a_regional_localization() {
        let v = variant();
        let picked = pick(&v, Some("pt"));
        assert_eq!(picked.locale, None);
        assert_eq!(picked.reason, Match::Default);
        assert_eq!(titles(&picked), ["Hello", "Hello by SMS"]);
    }

    #[test]
    fn other_languages_and_unknown_locales_get_the_default() {
        let v = variant();
        let picked = pick(&v, Some("de"));
        assert_eq!((picked.locale, picked.reason), (None, Match::Default));
        assert_eq!(titles(&picked), ["Hello", "Hello by SMS"]);
        assert_eq!(
            picked.describe(Some("de")),
            "default contents (no localization for user locale \"de\")"
        );
        let picked = pick(&v, None);
        assert_eq!(picked.reason, Match::Default);
        assert_eq!(
            picked.describe(None),
            "default contents (the user's locale is unknown)"
        );
        // A malformed locale is no locale.
        assert_eq!(pick(&v, Some("f")).reason, Match::Default);
        assert_eq!(
            pick(&v, Some("f")).describe(Some("f")),
            "default contents (the user's locale is unknown)"
        );
        assert_eq!(pick(&v, Some("fr CA")).reason, Match::Default);
    }

    #[test]
    fn matching_ignores_case_and_underscores() {
        let v = variant();
        for user in ["FR", "Fr_ca", "fr_CA"] {
            assert_eq!(pick(&v, Some(user)).locale, Some("fr"), "{user}");
        }
        for user in ["pt-BR", "PT_br", "pt-br"] {
            let picked = pick(&v, Some(user));
            assert_eq!(picked.locale, Some("pt_BR"), "{user}");
            assert_eq!(picked.reason, Match::Exact);
        }
        assert_eq!(pick(&v, Some("zh_HANT")).reason, Match::Exact);
    }

    #[test]
    fn one_message_never_mixes_languages() {
        // Every picked content is either wholly the localization's or wholly the default.
        let v = variant();
        for user in ["fr", "fr-CA", "pt-BR", "zh-Hant", "de", "en"] {
            let picked = pick(&v, Some(user));
            for content in picked.contents.iter() {
                let from_localization = v
                    .localizations
                    .iter()
                    .any(|l| l.contents.iter().any(|c| std::ptr::eq(c, content)));
                let from_default = v.contents.iter().any(|c| std::ptr::eq(c, content));
                assert!(from_localization != from_default, "{user}");
                if from_localization {
                    let l = v
                        .localizations
                        .iter()
                        .find(|l| l.contents.iter().any(|c| std::ptr::eq(c, content)))
                        .unwrap();
                    assert_eq!(Some(l.locale.as_str()), picked.locale, "{user}");
                }
            }
        }
    }

    #[test]
    fn the_user_locale_is_the_first_well_formed_source() {
        assert_eq!(
            user_locale("fr_ca", Some("de"), "en"),
            Some(UserLocale {
                tag: "fr-CA".into(),
                source: LocaleSource::Event
            })
        );
        assert_eq!(
            user_locale("", Some("de-DE"), "en"),
            Some(UserLocale {
                tag: "de-DE".into(),
                source: LocaleSource::Trait
            })
        );
        // The tag a decision's lookup holds.
        let resolve_user_locale = |event: &str, locale_trait: Option<&str>, default: &str| {
            Lookup::of_user(event, locale_trait, default).and_then(|l| clean(l.received()))
        };
        assert_eq!(resolve_user_locale("", None, "en"), Some("en".into()));
        assert_eq!(
            resolve_user_locale("??", Some(" "), "EN_us"),
            Some("en-US".into())
        );
        assert_eq!(resolve_user_locale("", Some("e"), ""), None);
        // POSIX locales lose their codeset and modifier.
        assert_eq!(
            resolve_user_locale("en_US.UTF-8", None, ""),
            Some("en-US".into())
        );
        assert_eq!(
            resolve_user_locale("de_DE@euro", None, ""),
            Some("de-DE".into())
        );
    }

    #[test]
    fn well_formed_tags() {
        for ok in [
            "fr",
            "fr-CA",
            "fr_CA",
            "zh-Hant-TW",
            "es-419",
            "sr-Latn-RS",
            "en-x-pirate",
        ] {
            assert!(is_well_formed(ok), "{ok}");
        }
        for bad in [
            "",
            "f",
            "fr-",
            "-fr",
            "fr--CA",
            "f1",
            "fr CA",
            "français",
            "en-abcdefghi",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
        assert!(!is_well_formed(&format!("en-{}", "a".repeat(40))));
        assert_eq!(canonical("ZH_hant_tw"), "zh-Hant-TW");
        assert_eq!(
            canonical(" sr_latn_rs_u_ca_gregory "),
            "sr-Latn-RS-u-ca-gregory"
        );
        for (received, clean) in [
            ("fr-CA", Some(Cow::Borrowed("fr-CA"))),
            (" en-US.UTF-8", Some(Cow::Borrowed("en-US"))),
            ("fr_ca", Some(Cow::Owned("fr-CA".to_owned()))),
            ("EN", Some(Cow::Owned("en".to_owned()))),
            ("f", None),
        ] {
            assert_eq!(clean_borrowed(received), clean, "{received:?}");
        }
        assert_eq!(canonical("es-419"), "es-419");
        assert_eq!(canonical("en-x-ab"), "en-x-ab");
    }

    #[test]
    fn fallbacks_drop_subtags_and_singletons() {
        let tries = |tag| fallbacks(tag).collect::<Vec<_>>();
        assert_eq!(tries("zh-hant-tw"), ["zh-hant-tw", "zh-hant", "zh"]);
        assert_eq!(tries("en-a-bbb-x-c"), ["en-a-bbb-x-c", "en-a-bbb", "en"]);
        assert_eq!(tries("fr"), ["fr"]);
    }
}
