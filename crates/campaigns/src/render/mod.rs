//! Template rendering: every string field of a content is a Liquid template.
//!
//! # Variables
//! - `user`: the user's traits, plus `id`;
//! - `event`: `name`, `properties`, `timestamp` (RFC 3339) of the event behind the
//!   decision; empty when a segment transition or a timer without an event caused it;
//! - `campaign`: `id`, `name`, `variant_id`, and `locale`, the tag of the localization
//!   picked for the user (empty when the default contents were picked);
//! - `workspace`: `id`.
//!
//! Unknown variables render as empty strings, at any depth (`{{ user.company.name }}`
//! with no company), and are falsy, so `{{ user.first_name | default: "there" }}` works.
//!
//! # Language
//! Liquid's standard tags and filters, except the ones that need files or build HTML
//! tables (`include`, `render`, `tablerow`) and `ifchanged` ([`parser`]); plus the
//! `{% abort %}` tag, by which the template decides not to send (rendering fails with
//! [`RenderErrorKind::Aborted`] and the reason), and the `| raw` filter, which opts an
//! output out of escaping. A panic of liquid's parser or renderer is caught and becomes
//! an error of the field.
//!
//! # Where the rules live
//! - `values`: how templates read values ([`Lax`]: nil wherever a key or index is
//!   missing) and names ([`Globals`]: every top-level name resolves, unknown ones to nil);
//! - `escape`: what an output writes in a URL or HTML field ([`Escape`]), and the
//!   rewrite of the source that makes it so;
//! - `budget`: how much a render may write, build and loop ([`MAX_FIELD_BYTES`],
//!   [`MAX_CONTENT_BYTES`], [`MAX_VALUE_BYTES`], [`MAX_LOOP_ITERATIONS`]), and how a
//!   render is stopped on purpose;
//! - `tags`: the tags added to Liquid's library (`abort`) or replaced in it (`for`,
//!   `capture`, `comment`).

mod budget;
mod escape;
mod tags;
mod values;

pub use budget::{MAX_CONTENT_BYTES, MAX_FIELD_BYTES, MAX_LOOP_ITERATIONS, MAX_VALUE_BYTES};
pub use escape::Escape;
pub use values::Lax;

use std::collections::{BTreeMap, HashMap};

use herald_core::FieldViolation;
use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{Channel, MessageContent};
use herald_proto::trigger::v1::Campaign;
use liquid_core::model::Scalar;
use liquid_lib::stdlib;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

use budget::{Bounded, Limit, Limited, Stop, take_stop};
use escape::{SimpleFilter, escaped_source};
use tags::{AbortTag, CaptureBlock, CommentBlock, ForBlock};

/// The channel named by the oneof case of `content`.
pub fn channel(content: &MessageContent) -> Channel {
    match content.body {
        Some(Body::InApp(_)) => Channel::InApp,
        Some(Body::Push(_)) => Channel::Push,
        Some(Body::Email(_)) => Channel::Email,
        Some(Body::Sms(_)) => Channel::Sms,
        Some(Body::Webhook(_)) => Channel::Webhook,
        None => Channel::Unspecified,
    }
}

/// Calls `f` with the path (relative to the content, e.g. `in_app.actions[0].label`)
/// and a mutable reference of every template string of `content`.
pub fn for_each_template<E>(
    content: &mut MessageContent,
    f: &mut dyn FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    match &mut content.body {
        Some(Body::InApp(c)) => {
            f("in_app.title", &mut c.title)?;
            f("in_app.body", &mut c.body)?;
            f("in_app.image_url", &mut c.image_url)?;
            for (i, action) in c.actions.iter_mut().enumerate() {
                f(&format!("in_app.actions[{i}].label"), &mut action.label)?;
                f(&format!("in_app.actions[{i}].url"), &mut action.url)?;
            }
            if let Some(target) = &mut c.tooltip_target {
                f("in_app.tooltip_target.selector", &mut target.selector)?;
            }
            if let Some(data) = &mut c.custom_data {
                struct_templates("in_app.custom_data", data, f)?;
            }
        }
        Some(Body::Push(c)) => {
            f("push.title", &mut c.title)?;
            f("push.body", &mut c.body)?;
            f("push.deep_link", &mut c.deep_link)?;
            f("push.image_url", &mut c.image_url)?;
            if let Some(data) = &mut c.custom_data {
                struct_templates("push.custom_data", data, f)?;
            }
        }
        Some(Body::Email(c)) => {
            f("email.subject", &mut c.subject)?;
            f("email.html_body", &mut c.html_body)?;
            f("email.text_body", &mut c.text_body)?;
            f("email.from_name", &mut c.from_name)?;
            f("email.reply_to", &mut c.reply_to)?;
        }
        Some(Body::Sms(c)) => f("sms.body", &mut c.body)?,
        Some(Body::Webhook(c)) => {
            f("webhook.url", &mut c.url)?;
            f("webhook.body", &mut c.body)?;
            for (name, value) in c.headers.iter_mut() {
                f(&format!("webhook.headers[{name:?}]"), value)?;
            }
        }
        None => {}
    }
    Ok(())
}

fn struct_templates<E>(
    path: &str,
    data: &mut Struct,
    f: &mut dyn FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    for (key, value) in data.fields.iter_mut() {
        value_templates(&format!("{path}.{key}"), value, f)?;
    }
    Ok(())
}

fn value_templates<E>(
    path: &str,
    value: &mut Value,
    f: &mut dyn FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    match &mut value.kind {
        Some(Kind::StringValue(s)) => f(path, s),
        Some(Kind::StructValue(s)) => struct_templates(path, s, f),
        Some(Kind::ListValue(list)) => {
            for (i, v) in list.values.iter_mut().enumerate() {
                value_templates(&format!("{path}[{i}]"), v, f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The lowercase name of `channel`, as in idempotency keys and messages: `in_app`, `sms`.
pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Unspecified => "unspecified",
        Channel::InApp => "in_app",
        Channel::Push => "push",
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Webhook => "webhook",
    }
}

/// Whether `text` holds Liquid markup at all; plain text needs no parsing.
fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Builds the Liquid parser: the standard library less `include`, `render`, `tablerow`
/// and `ifchanged`, with budgeted `for` and `capture`, the `abort` tag, the `raw` and
/// escaping filters, and every filter's result bounded by [`MAX_VALUE_BYTES`].
pub fn parser() -> liquid::Parser {
    macro_rules! bounded {
        ($builder:expr, $($filter:expr),* $(,)?) => {
            $builder$(.filter(Bounded($filter)))*
        };
    }
    let builder = liquid::ParserBuilder::new()
        .tag(stdlib::AssignTag)
        .tag(stdlib::BreakTag)
        .tag(stdlib::ContinueTag)
        .tag(stdlib::CycleTag)
        .tag(stdlib::IncrementTag)
        .tag(stdlib::DecrementTag)
        .tag(AbortTag)
        .block(stdlib::RawBlock)
        .block(stdlib::IfBlock)
        .block(stdlib::UnlessBlock)
        .block(CommentBlock)
        .block(stdlib::CaseBlock)
        .block(ForBlock)
        .block(CaptureBlock);
    let builder = bounded!(
        builder,
        stdlib::Abs,
        stdlib::Append,
        stdlib::AtLeast,
        stdlib::AtMost,
        stdlib::Capitalize,
        stdlib::Ceil,
        stdlib::Compact,
        stdlib::Concat,
        stdlib::Date,
        stdlib::Default,
        stdlib::DividedBy,
        stdlib::Downcase,
        stdlib::Escape,
        stdlib::EscapeOnce,
        stdlib::First,
        stdlib::Floor,
        stdlib::Join,
        stdlib::Last,
        stdlib::Lstrip,
        stdlib::Map,
        stdlib::Minus,
        stdlib::Modulo,
        stdlib::NewlineToBr,
        stdlib::Plus,
        stdlib::Prepend,
        stdlib::Remove,
        stdlib::RemoveFirst,
        stdlib::Replace,
        stdlib::ReplaceFirst,
        stdlib::Reverse,
        stdlib::Round,
        stdlib::Rstrip,
        stdlib::Size,
        stdlib::Slice,
        stdlib::Sort,
        stdlib::SortNatural,
        stdlib::Split,
        stdlib::Strip,
        stdlib::StripHtml,
        stdlib::StripNewlines,
        stdlib::Times,
        stdlib::Truncate,
        stdlib::TruncateWords,
        stdlib::Uniq,
        stdlib::Upcase,
        stdlib::UrlDecode,
        stdlib::UrlEncode,
        stdlib::Where,
        SimpleFilter::RAW,
        SimpleFilter::ESCAPE_URL,
        SimpleFilter::ESCAPE_HTML,
    );
    builder.build().expect("the Liquid library builds")
}

/// Parses `source` as the template of a field escaped with `escape`; an error is the
/// description for a field violation or a compile error.
fn prepare(
    parser: &liquid::Parser,
    source: &str,
    escape: Escape,
) -> Result<liquid::Template, String> {
    let template =
        parse(parser, source).map_err(|e| format!("is not a valid Liquid template: {e}"))?;
    if escape.filter().is_none() {
        return Ok(template);
    }
    let rewritten = escaped_source(source, escape)?;
    parse(parser, &rewritten).map_err(|e| format!("cannot be escaped: {e}"))
}

/// Parses `source`, turning a panic of the parser into an error: templates come from
/// users, and a parser bug must not take a request (or a campaign cache) down.
fn parse(parser: &liquid::Parser, source: &str) -> Result<liquid::Template, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(source))) {
        Ok(Ok(template)) => Ok(template),
        Ok(Err(e)) => Err(e.to_string().trim_end().to_owned()),
        Err(_) => Err("the Liquid parser failed on it".to_owned()),
    }
}

/// Checks that every template of `content` parses; violations are reported under
/// `field` (e.g. `campaign.variants[0].contents[1]`).
pub fn check_templates(
    parser: &liquid::Parser,
    field: &str,
    content: &MessageContent,
) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let mut content = content.clone();
    let _ = for_each_template::<()>(&mut content, &mut |path, text| {
        if is_template(text)
            && let Err(e) = prepare(parser, text, Escape::of_field(path))
        {
            out.push(FieldViolation::new(format!("{field}.{path}"), e));
        }
        Ok(())
    });
    out
}

/// The parsed templates of one campaign version, by escaping and source text.
pub struct Templates {
    by_source: [HashMap<String, liquid::Template>; 3],
}

/// Why a render failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderErrorKind {
    /// The template does not parse or fails to render (e.g. a filter's bad argument).
    Failed,
    /// The template decided not to send (`{% abort %}`); the error is the reason.
    Aborted,
    /// A render budget was exceeded; the error says which.
    OverBudget,
}

/// A template that failed to parse or render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// The path of the field: within the content when rendering (`in_app.title`), from
    /// the campaign when compiling.
    pub field: String,
    /// What went wrong, in words; for an abort, the template's reason.
    pub error: String,
    pub kind: RenderErrorKind,
}

impl Templates {
    /// Parses every template of every variant of `campaign`, its localizations' too; an
    /// error names the field from the campaign down, e.g.
    /// `campaign.variants[0].localizations[1].contents[0].sms.body`.
    pub fn compile(parser: &liquid::Parser, campaign: &Campaign) -> Result<Templates, RenderError> {
        let mut templates = Templates {
            by_source: Default::default(),
        };
        for (v, variant) in campaign.variants.iter().enumerate() {
            for (c, content) in variant.contents.iter().enumerate() {
                templates.add(
                    parser,
                    &format!("campaign.variants[{v}].contents[{c}]"),
                    content,
                )?;
            }
            for (l, localization) in variant.localizations.iter().enumerate() {
                for (c, content) in localization.contents.iter().enumerate() {
                    let field = format!("campaign.variants[{v}].localizations[{l}].contents[{c}]");
                    templates.add(parser, &field, content)?;
                }
            }
        }
        Ok(templates)
    }

    fn add(
        &mut self,
        parser: &liquid::Parser,
        field: &str,
        content: &MessageContent,
    ) -> Result<(), RenderError> {
        let mut content = content.clone();
        for_each_template(&mut content, &mut |path, text| {
            let escape = Escape::of_field(path);
            let by_source = &mut self.by_source[escape.index()];
            if is_template(text) && !by_source.contains_key(text.as_str()) {
                let template = prepare(parser, text, escape).map_err(|error| RenderError {
                    field: format!("{field}.{path}"),
                    error,
                    kind: RenderErrorKind::Failed,
                })?;
                by_source.insert(text.clone(), template);
            }
            Ok(())
        })
    }

    /// `content` with every template rendered with `globals`, each output escaped as its
    /// field needs, within the render budget.
    pub fn render(
        &self,
        content: &MessageContent,
        globals: &Globals,
    ) -> Result<MessageContent, RenderError> {
        let mut content = content.clone();
        let mut total = 0usize;
        for_each_template(&mut content, &mut |path, text| {
            let escape = Escape::of_field(path);
            if let Some(template) = self.by_source[escape.index()].get(text.as_str()) {
                *text = render_field(template, globals).map_err(|(kind, error)| RenderError {
                    field: path.to_owned(),
                    error,
                    kind,
                })?;
            }
            total += text.len();
            if total > MAX_CONTENT_BYTES {
                return Err(RenderError {
                    field: path.to_owned(),
                    error: format!("the content renders to more than {MAX_CONTENT_BYTES} bytes"),
                    kind: RenderErrorKind::OverBudget,
                });
            }
            Ok(())
        })?;
        Ok(content)
    }
}

/// Renders one field within its budget.
fn render_field(
    template: &liquid::Template,
    globals: &Globals,
) -> Result<String, (RenderErrorKind, String)> {
    take_stop();
    let mut out = Limited::new(Limit::Field);
    // As when parsing, a panic of the renderer is an error of this field only.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        template.render_to(&mut out, globals)
    }));
    let result = match result {
        Ok(result) => result,
        Err(_) => {
            take_stop();
            return Err((
                RenderErrorKind::Failed,
                "the Liquid renderer failed on it".into(),
            ));
        }
    };
    match (take_stop(), result) {
        (Some(Stop::Aborted(None)), _) => {
            Err((RenderErrorKind::Aborted, "the template aborted".into()))
        }
        (Some(Stop::Aborted(Some(reason))), _) => Err((
            RenderErrorKind::Aborted,
            format!("the template aborted: {reason}"),
        )),
        (Some(Stop::OverBudget(what)), _) => Err((RenderErrorKind::OverBudget, what)),
        (None, Err(e)) => Err((RenderErrorKind::Failed, one_line(&e))),
        (None, Ok(())) => Ok(out.into_string()),
    }
}

/// A Liquid error on one line: `Cannot divide by zero; from: {{ 1 | divided_by: 0 }}`.
fn one_line(error: &liquid_core::Error) -> String {
    let text = error.to_string();
    let text = text.strip_prefix("liquid: ").unwrap_or(&text);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The event behind a decision, as templates see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventInput<'a> {
    pub name: &'a str,
    pub properties: Option<&'a Struct>,
    pub timestamp: Option<&'a prost_types::Timestamp>,
}

/// What [`Globals::new`] builds the variables from.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalsInput<'a> {
    pub user_id: &'a str,
    pub traits: Option<&'a Struct>,
    /// `None` when no event caused the decision (a segment transition, a timer): then
    /// `event` renders empty.
    pub event: Option<EventInput<'a>>,
    pub campaign_id: &'a str,
    pub campaign_name: &'a str,
    pub variant_id: &'a str,
    /// The picked localization's tag; empty for the default contents.
    pub locale: &'a str,
    pub workspace_id: &'a str,
}

/// The variables of a template: `user`, `event`, `campaign` and `workspace`. Any other
/// name is nil.
#[derive(Debug)]
pub struct Globals(Lax);

fn text_value(s: &str) -> Lax {
    Lax::Scalar(Scalar::new(s.to_owned()))
}

impl Globals {
    /// `user` = traits plus `id`; `event` = name, properties and timestamp (RFC 3339), or
    /// nil; `campaign` = id, name, variant_id, locale; `workspace` = id.
    pub fn new(input: GlobalsInput<'_>) -> Globals {
        let mut user = input.traits.map(Lax::from_struct).unwrap_or_default();
        user.insert("id".to_owned(), text_value(input.user_id));
        let event = match input.event {
            None => Lax::Nil,
            Some(e) => Lax::Object(BTreeMap::from([
                ("name".to_owned(), text_value(e.name)),
                (
                    "properties".to_owned(),
                    Lax::Object(e.properties.map(Lax::from_struct).unwrap_or_default()),
                ),
                (
                    "timestamp".to_owned(),
                    e.timestamp.map_or(Lax::Nil, |t| text_value(&t.to_string())),
                ),
            ])),
        };
        let campaign = BTreeMap::from([
            ("id".to_owned(), text_value(input.campaign_id)),
            ("name".to_owned(), text_value(input.campaign_name)),
            ("variant_id".to_owned(), text_value(input.variant_id)),
            ("locale".to_owned(), text_value(input.locale)),
        ]);
        let workspace = BTreeMap::from([("id".to_owned(), text_value(input.workspace_id))]);
        Globals(Lax::Object(BTreeMap::from([
            ("user".to_owned(), Lax::Object(user)),
            ("event".to_owned(), event),
            ("campaign".to_owned(), Lax::Object(campaign)),
            ("workspace".to_owned(), Lax::Object(workspace)),
        ])))
    }
}

#[cfg(test)]
mod tests {
    //! Tests of the whole render, and the fixtures the submodules' tests share.

    use super::*;
    use herald_proto::common::v1::{
        Action, EmailContent, InAppContent, PushContent, SmsContent, WebhookContent,
    };
    use herald_proto::trigger::v1::{LocalizedContents, Variant};

    pub(super) fn text(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }
    fn num(n: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }
    pub(super) fn object(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn traits() -> Struct {
        object(vec![
            ("first_name", text("Ada")),
            ("empty", text("")),
            ("seats", num(3.0)),
            ("ref", text("a&b c/?x=1")),
            ("html", text("<b>\"Tom\" & 'Jerry'</b>")),
            ("site", text("https://evil.example/")),
            (
                "company",
                Value {
                    kind: Some(Kind::StructValue(object(vec![("name", text("Acme"))]))),
                },
            ),
            (
                "tags",
                Value {
                    kind: Some(Kind::ListValue(prost_types::ListValue {
                        values: vec![text("a"), text("b"), text("c")],
                    })),
                },
            ),
        ])
    }

    fn properties() -> Struct {
        object(vec![("plan", text("pro")), ("amount", num(49.5))])
    }

    const TIMESTAMP: prost_types::Timestamp = prost_types::Timestamp {
        seconds: 1_714_557_600,
        nanos: 0,
    };

    pub(super) fn with_globals<T>(event: bool, f: impl FnOnce(&Globals) -> T) -> T {
        let (traits, properties) = (traits(), properties());
        let globals = Globals::new(GlobalsInput {
            user_id: "u1",
            traits: Some(&traits),
            event: event.then_some(EventInput {
                name: "upgraded",
                properties: Some(&properties),
                timestamp: Some(&TIMESTAMP),
            }),
            campaign_id: "cmp_1",
            campaign_name: "Welcome",
            variant_id: "v1",
            locale: "fr",
            workspace_id: "ws_1",
        });
        f(&globals)
    }

    /// Renders `source` as the field at `path`, through compile and render.
    pub(super) fn try_field(path: &str, source: &str) -> Result<String, RenderError> {
        let content = content_with(path, source);
        let campaign = campaign_of(vec![content.clone()]);
        let templates = Templates::compile(&parser(), &campaign)?;
        let rendered = with_globals(true, |g| templates.render(&content, g))?;
        Ok(field_of(&rendered, path))
    }

    pub(super) fn field(path: &str, source: &str) -> String {
        try_field(path, source).unwrap_or_else(|e| panic!("{source:?}: {e:?}"))
    }

    pub(super) fn render(source: &str) -> String {
        field("sms.body", source)
    }

    fn content_with(path: &str, source: &str) -> MessageContent {
        let s = source.to_owned();
        let body = match path {
            "sms.body" => Body::Sms(SmsContent { body: s }),
            "email.html_body" => Body::Email(EmailContent {
                html_body: s,
                ..Default::default()
            }),
            "email.text_body" => Body::Email(EmailContent {
                text_body: s,
                ..Default::default()
            }),
            "push.deep_link" => Body::Push(PushContent {
                deep_link: s,
                ..Default::default()
            }),
            "webhook.url" => Body::Webhook(WebhookContent {
                url: s,
                ..Default::default()
            }),
            "webhook.body" => Body::Webhook(WebhookContent {
                body: s,
                ..Default::default()
            }),
            "in_app.actions[0].url" => Body::InApp(InAppContent {
                actions: vec![Action {
                    url: s,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            "in_app.title" => Body::InApp(InAppContent {
                title: s,
                ..Default::default()
            }),
            other => panic!("no test content for {other}"),
        };
        MessageContent { body: Some(body) }
    }

    fn field_of(content: &MessageContent, path: &str) -> String {
        let mut content = content.clone();
        let mut found = None;
        let _ = for_each_template::<()>(&mut content, &mut |p, t| {
            if p == path {
                found = Some(t.clone());
            }
            Ok(())
        });
        found.expect("the field exists")
    }

    pub(super) fn campaign_of(contents: Vec<MessageContent>) -> Campaign {
        Campaign {
            variants: vec![Variant {
                contents,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn channel_names_are_the_proto_names_in_lower_case() {
        for n in 0..=5 {
            let channel = Channel::try_from(n).unwrap();
            let proto = channel.as_str_name().trim_start_matches("CHANNEL_");
            assert_eq!(channel_name(channel), proto.to_ascii_lowercase());
        }
    }

    #[test]
    fn renders_traits_and_event() {
        assert_eq!(
            render("Hi {{ user.first_name }} ({{ user.id }})"),
            "Hi Ada (u1)"
        );
        assert_eq!(
            render("{{ user.company.name }} has {{ user.seats }} seats"),
            "Acme has 3 seats"
        );
        assert_eq!(
            render("{{ event.name }}: {{ event.properties.plan }} {{ event.properties.amount }}"),
            "upgraded: pro 49.5"
        );
        assert_eq!(render("{{ event.timestamp }}"), "2024-05-01T10:00:00Z");
        assert_eq!(
            render("{% if event.properties.plan == 'pro' %}yes{% else %}no{% endif %}"),
            "yes"
        );
        assert_eq!(render("{{ user.first_name | upcase }}"), "ADA");
    }

    #[test]
    fn renders_campaign_and_workspace() {
        assert_eq!(
            render(
                "{{ campaign.id }}/{{ campaign.name }}/{{ campaign.variant_id }}/{{ campaign.locale }}/{{ workspace.id }}"
            ),
            "cmp_1/Welcome/v1/fr/ws_1"
        );
        assert_eq!(render("[{{ campaign.nothing }}{{ workspace.a.b }}]"), "[]");
    }

    #[test]
    fn without_an_event_event_renders_empty() {
        let template = parser()
            .parse("[{{ event.name }}{{ event.properties.plan }}]{% if event %}yes{% else %}no{% endif %}")
            .expect("parses");
        let out = with_globals(false, |g| render_field(&template, g)).expect("renders");
        assert_eq!(out, "[]no");
    }

    #[test]
    fn renders_every_field_of_a_content() {
        let content = MessageContent {
            body: Some(Body::InApp(InAppContent {
                title: "Hi {{ user.first_name }}".into(),
                body: "Plan: {{ event.properties.plan }}".into(),
                actions: vec![Action {
                    id: "go".into(),
                    label: "Go {{ user.id }}".into(),
                    url: "https://x.example/{{ user.id }}?ref={{ user.ref }}".into(),
                    ..Default::default()
                }],
                custom_data: Some(object(vec![
                    ("greeting", text("{{ user.company.name }}")),
                    ("n", num(1.0)),
                ])),
                ..Default::default()
            })),
        };
        let templates =
            Templates::compile(&parser(), &campaign_of(vec![content.clone()])).expect("compiles");
        let rendered = with_globals(true, |g| templates.render(&content, g)).expect("renders");
        let Some(Body::InApp(c)) = rendered.body else {
            panic!("in-app content expected")
        };
        assert_eq!(c.title, "Hi Ada");
        assert_eq!(c.body, "Plan: pro");
        assert_eq!(c.actions[0].label, "Go u1");
        assert_eq!(
            c.actions[0].url,
            "https://x.example/u1?ref=a%26b%20c%2F%3Fx%3D1"
        );
        assert_eq!(c.custom_data.unwrap().fields["greeting"], text("Acme"));
    }

    #[test]
    fn bad_templates_are_named() {
        let content = MessageContent {
            body: Some(Body::Sms(SmsContent {
                body: "Hi {{ user.name ".into(),
            })),
        };
        let violations = check_templates(&parser(), "campaign.variants[0].contents[0]", &content);
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].field,
            "campaign.variants[0].contents[0].sms.body"
        );
        // Tags outside the library are refused when parsing.
        for source in [
            "{% include 'x' %}",
            "{% tablerow t in user.tags %}{% endtablerow %}",
        ] {
            let content = content_with("sms.body", source);
            assert_eq!(
                check_templates(&parser(), "c", &content).len(),
                1,
                "{source}"
            );
        }
    }

    #[test]
    fn localizations_are_compiled_and_named() {
        let mut campaign = campaign_of(vec![content_with("sms.body", "Hi {{ user.first_name }}")]);
        campaign.variants[0].localizations = vec![
            LocalizedContents {
                locale: "fr".into(),
                contents: vec![content_with("sms.body", "Salut {{ user.first_name }}")],
            },
            LocalizedContents {
                locale: "de".into(),
                contents: vec![content_with("webhook.url", "{% raw %}{% endraw %}")],
            },
        ];
        let e = Templates::compile(&parser(), &campaign)
            .err()
            .expect("fails");
        assert_eq!(
            e.field,
            "campaign.variants[0].localizations[1].contents[0].webhook.url"
        );
        campaign.variants[0].localizations.pop();
        let templates = Templates::compile(&parser(), &campaign).expect("compiles");
        let fr = &campaign.variants[0].localizations[0].contents[0];
        let rendered = with_globals(true, |g| templates.render(fr, g)).expect("renders");
        assert_eq!(field_of(&rendered, "sms.body"), "Salut Ada");
    }

    #[test]
    fn render_errors_are_errors_not_panics() {
        let e = try_field("sms.body", "{{ 1 | divided_by: 0 }}").expect_err("fails");
        assert_eq!(e.kind, RenderErrorKind::Failed);
        assert!(!e.error.contains('\n'), "{}", e.error);
    }
}
