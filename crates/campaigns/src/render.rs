//! Template rendering: every string field of a variant's contents is a Liquid template,
//! rendered with `user` (the user's traits plus `id`) and `event` (`name`, `properties`,
//! `timestamp`). Unknown variables render as empty strings, at any depth.

use std::collections::{BTreeMap, HashMap};

use herald_core::FieldViolation;
use herald_proto::common::v1::message_content::Body;
use herald_proto::common::v1::{Channel, MessageContent};
use herald_proto::trigger::v1::Campaign;
use liquid::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, Scalar, ScalarCow, State, Value as LiquidValue,
    ValueView,
};
use prost_types::value::Kind;
use prost_types::{Struct, Value};

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
pub fn channel_name(channel: Channel) -> String {
    channel
        .as_str_name()
        .trim_start_matches("CHANNEL_")
        .to_ascii_lowercase()
}

/// Whether `text` holds Liquid markup at all; plain text needs no parsing.
fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Builds the Liquid parser with the standard tags and filters.
pub fn parser() -> liquid::Parser {
    liquid::ParserBuilder::with_stdlib()
        .build()
        .expect("the standard Liquid library builds")
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
            && let Err(e) = parser.parse(text)
        {
            out.push(FieldViolation::new(
                format!("{field}.{path}"),
                format!("is not a valid Liquid template: {e}"),
            ));
        }
        Ok(())
    });
    out
}

/// The parsed templates of one campaign version, by source text.
pub struct Templates {
    by_source: HashMap<String, liquid::Template>,
}

/// A template that failed to parse or render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// The path of the field: within the content when rendering (`in_app.title`), from
    /// the campaign when compiling.
    pub field: String,
    pub error: String,
}

impl Templates {
    /// Parses every template of every variant of `campaign`; an error names the field
    /// from the campaign down, e.g. `campaign.variants[0].contents[1].sms.body`.
    pub fn compile(parser: &liquid::Parser, campaign: &Campaign) -> Result<Templates, RenderError> {
        let mut by_source = HashMap::new();
        for (v, variant) in campaign.variants.iter().enumerate() {
            for (c, content) in variant.contents.iter().enumerate() {
                let mut content = content.clone();
                for_each_template(&mut content, &mut |path, text| {
                    if is_template(text) && !by_source.contains_key(text.as_str()) {
                        let template = parser.parse(text).map_err(|e| RenderError {
                            field: format!("campaign.variants[{v}].contents[{c}].{path}"),
                            error: e.to_string(),
                        })?;
                        by_source.insert(text.clone(), template);
                    }
                    Ok(())
                })?;
            }
        }
        Ok(Templates { by_source })
    }

    /// `content` with every template rendered with `globals`.
    pub fn render(
        &self,
        content: &MessageContent,
        globals: &Globals,
    ) -> Result<MessageContent, RenderError> {
        let mut content = content.clone();
        for_each_template(&mut content, &mut |path, text| {
            if let Some(template) = self.by_source.get(text.as_str()) {
                *text = template.render(globals).map_err(|e| RenderError {
                    field: path.to_owned(),
                    error: e.to_string(),
                })?;
            }
            Ok(())
        })?;
        Ok(content)
    }
}

/// The variables of a template: `user` and `event`. Any other name is nil.
#[derive(Debug)]
pub struct Globals(Lax);

impl Globals {
    /// `user` = `traits` plus `id`; `event` = name, properties and timestamp (RFC 3339).
    pub fn new(
        user_id: &str,
        traits: Option<&Struct>,
        event_name: &str,
        properties: Option<&Struct>,
        timestamp: Option<&prost_types::Timestamp>,
    ) -> Globals {
        let mut user = traits.map(Lax::from_struct).unwrap_or_default();
        user.insert(
            "id".to_owned(),
            Lax::Scalar(Scalar::new(user_id.to_owned())),
        );
        let mut event = BTreeMap::new();
        event.insert(
            "name".to_owned(),
            Lax::Scalar(Scalar::new(event_name.to_owned())),
        );
        event.insert(
            "properties".to_owned(),
            Lax::Object(properties.map(Lax::from_struct).unwrap_or_default()),
        );
        event.insert(
            "timestamp".to_owned(),
            timestamp.map_or(Lax::Nil, |t| Lax::Scalar(Scalar::new(t.to_string()))),
        );
        let mut globals = BTreeMap::new();
        globals.insert("user".to_owned(), Lax::Object(user));
        globals.insert("event".to_owned(), Lax::Object(event));
        Globals(Lax::Object(globals))
    }
}

/// A template value that reads as nil wherever a key or index is missing, so that
/// `{{ user.company.name }}` renders empty instead of failing when there is no company.
#[derive(Debug, Clone)]
pub enum Lax {
    Nil,
    Scalar(Scalar),
    Array(Vec<Lax>),
    Object(BTreeMap<String, Lax>),
}

static NIL: Lax = Lax::Nil;

impl Lax {
    fn from_struct(s: &Struct) -> BTreeMap<String, Lax> {
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), Lax::from_value(v)))
            .collect()
    }

    fn from_value(value: &Value) -> Lax {
        match &value.kind {
            None | Some(Kind::NullValue(_)) => Lax::Nil,
            Some(Kind::BoolValue(b)) => Lax::Scalar(Scalar::new(*b)),
            // Integral numbers render as integers: "3", not "3.0".
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                Lax::Scalar(Scalar::new(*n as i64))
            }
            Some(Kind::NumberValue(n)) => Lax::Scalar(Scalar::new(*n)),
            Some(Kind::StringValue(s)) => Lax::Scalar(Scalar::new(s.clone())),
            Some(Kind::ListValue(l)) => Lax::Array(l.values.iter().map(Lax::from_value).collect()),
            Some(Kind::StructValue(s)) => Lax::Object(Lax::from_struct(s)),
        }
    }

    fn rendered(&self) -> String {
        self.to_value().render().to_string()
    }
}

impl ValueView for Lax {
    fn as_debug(&self) -> &dyn std::fmt::Debug {
        self
    }

    fn render(&self) -> DisplayCow<'_> {
        match self {
            Lax::Nil => DisplayCow::Borrowed(&""),
            Lax::Scalar(s) => s.render(),
            _ => DisplayCow::Owned(Box::new(self.rendered())),
        }
    }

    fn source(&self) -> DisplayCow<'_> {
        match self {
            Lax::Nil => DisplayCow::Borrowed(&"nil"),
            Lax::Scalar(s) => s.source(),
            _ => DisplayCow::Owned(Box::new(self.to_value().source().to_string())),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Lax::Nil => "nil",
            Lax::Scalar(s) => s.type_name(),
            Lax::Array(_) => "array",
            Lax::Object(_) => "object",
        }
    }

    fn query_state(&self, state: State) -> bool {
        let empty = match self {
            Lax::Nil => true,
            Lax::Scalar(s) => return s.query_state(state),
            Lax::Array(a) => a.is_empty(),
            Lax::Object(o) => o.is_empty(),
        };
        match state {
            State::Truthy => !matches!(self, Lax::Nil),
            State::DefaultValue | State::Empty | State::Blank => empty,
        }
    }

    fn to_kstr(&self) -> KStringCow<'_> {
        match self {
            Lax::Nil => KStringCow::from_static(""),
            Lax::Scalar(s) => s.to_kstr(),
            _ => KStringCow::from_string(self.rendered()),
        }
    }

    fn to_value(&self) -> LiquidValue {
        match self {
            Lax::Nil => LiquidValue::Nil,
            Lax::Scalar(s) => LiquidValue::Scalar(s.clone()),
            Lax::Array(a) => LiquidValue::Array(a.iter().map(Lax::to_value).collect()),
            Lax::Object(o) => LiquidValue::Object(
                o.iter()
                    .map(|(k, v)| (k.clone().into(), v.to_value()))
                    .collect(),
            ),
        }
    }

    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        match self {
            Lax::Scalar(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Lax::Array(_) => Some(self),
            _ => None,
        }
    }

    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            // Nil is an empty object, so that indexing into it yields nil again.
            Lax::Object(_) | Lax::Nil => Some(self),
            _ => None,
        }
    }

    fn is_nil(&self) -> bool {
        matches!(self, Lax::Nil)
    }
}

impl ObjectView for Lax {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        match self {
            Lax::Object(o) => o.len() as i64,
            _ => 0,
        }
    }

    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        match self {
            Lax::Object(o) => Box::new(o.keys().map(|k| KStringCow::from_ref(k.as_str()))),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Lax::Object(o) => Box::new(o.values().map(|v| v as &dyn ValueView)),
            Lax::Array(a) => Box::new(a.iter().map(|v| v as &dyn ValueView)),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        match self {
            Lax::Object(o) => Box::new(
                o.iter()
                    .map(|(k, v)| (KStringCow::from_ref(k.as_str()), v as &dyn ValueView)),
            ),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn contains_key(&self, index: &str) -> bool {
        matches!(self, Lax::Object(o) if o.contains_key(index))
    }

    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        match self {
            Lax::Object(o) => match o.get(index) {
                Some(v) => Some(v),
                // Leaves `size` to Liquid's own handling.
                None if index == "size" => None,
                None => Some(&NIL),
            },
            Lax::Nil if index != "size" => Some(&NIL),
            _ => None,
        }
    }
}

impl ArrayView for Lax {
    fn as_value(&self) -> &dyn ValueView {
        self
    }

    fn size(&self) -> i64 {
        match self {
            Lax::Array(a) => a.len() as i64,
            _ => 0,
        }
    }

    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        ObjectView::values(self)
    }

    fn contains_key(&self, index: i64) -> bool {
        self.element(index).is_some()
    }

    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        Some(self.element(index).unwrap_or(&NIL))
    }
}

impl Lax {
    fn element(&self, index: i64) -> Option<&dyn ValueView> {
        let Lax::Array(a) = self else { return None };
        let index = if index < 0 {
            index + a.len() as i64
        } else {
            index
        };
        usize::try_from(index)
            .ok()
            .and_then(|i| a.as_slice().get(i))
            .map(|v| v as &dyn ValueView)
    }
}

impl ValueView for Globals {
    fn as_debug(&self) -> &dyn std::fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.0.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.0.source()
    }
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.0.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.0.to_kstr()
    }
    fn to_value(&self) -> LiquidValue {
        self.0.to_value()
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Globals {
    fn as_value(&self) -> &dyn ValueView {
        &self.0
    }
    fn size(&self) -> i64 {
        ObjectView::size(&self.0)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        self.0.keys()
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        ObjectView::values(&self.0)
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        self.0.iter()
    }
    /// Every name resolves: unknown top-level variables are nil.
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        ObjectView::get(&self.0, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::common::v1::{Action, InAppContent, SmsContent};

    fn text(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }
    fn num(n: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }
    fn object(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn globals() -> Globals {
        let traits = object(vec![
            ("first_name", text("Ada")),
            ("seats", num(3.0)),
            (
                "company",
                Value {
                    kind: Some(Kind::StructValue(object(vec![("name", text("Acme"))]))),
                },
            ),
        ]);
        let properties = object(vec![("plan", text("pro")), ("amount", num(49.5))]);
        let timestamp = prost_types::Timestamp {
            seconds: 1_714_557_600,
            nanos: 0,
        };
        Globals::new(
            "u1",
            Some(&traits),
            "upgraded",
            Some(&properties),
            Some(&timestamp),
        )
    }

    fn render(source: &str) -> String {
        parser()
            .parse(source)
            .expect("parses")
            .render(&globals())
            .expect("renders")
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
    fn missing_variables_render_empty() {
        assert_eq!(render("Hi {{ user.last_name }}!"), "Hi !");
        assert_eq!(render("[{{ user.missing.deeper.still }}]"), "[]");
        assert_eq!(render("[{{ nobody }}]"), "[]");
        assert_eq!(
            render("Hi {{ user.nickname | default: 'there' }}"),
            "Hi there"
        );
        assert_eq!(
            render("{% if user.missing %}set{% else %}unset{% endif %}"),
            "unset"
        );
        assert_eq!(
            render("{% for x in user.missing %}{{ x }}{% endfor %}done"),
            "done"
        );
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
                    ..Default::default()
                }],
                custom_data: Some(object(vec![
                    ("greeting", text("{{ user.company.name }}")),
                    ("n", num(1.0)),
                ])),
                ..Default::default()
            })),
        };
        let campaign = Campaign {
            variants: vec![herald_proto::trigger::v1::Variant {
                contents: vec![content.clone()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let templates = Templates::compile(&parser(), &campaign).expect("compiles");
        let rendered = templates.render(&content, &globals()).expect("renders");
        let Some(Body::InApp(c)) = rendered.body else {
            panic!("in-app content expected")
        };
        assert_eq!(c.title, "Hi Ada");
        assert_eq!(c.body, "Plan: pro");
        assert_eq!(c.actions[0].label, "Go u1");
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
    }

    #[test]
    fn render_errors_are_errors_not_panics() {
        let template = parser().parse("{{ 1 | divided_by: 0 }}").expect("parses");
        assert!(template.render(&globals()).is_err());
    }
}
