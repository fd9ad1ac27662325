//! The values templates read. A [`Lax`] value reads as nil wherever a key or index is
//! missing, so unknown variables render as empty strings, at any depth
//! (`{{ user.company.name }}` with no company), and are falsy, so
//! `{{ user.first_name | default: "there" }}` works; [`Globals`] resolves every top-level
//! name, unknown ones to nil.

use std::collections::BTreeMap;

use liquid_core::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, Scalar, ScalarCow, State, Value as LiquidValue,
    ValueView,
};
use prost_types::value::Kind;
use prost_types::{Struct, Value};

use super::Globals;

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
    pub(super) fn from_struct(s: &Struct) -> BTreeMap<String, Lax> {
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

/// What an output would write for `value`.
pub(super) fn text_of(value: &dyn ValueView) -> String {
    if value.is_nil() {
        String::new()
    } else {
        value.render().to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::render::tests::render;

    #[test]
    fn missing_variables_render_empty() {
        assert_eq!(render("Hi {{ user.last_name }}!"), "Hi !");
        assert_eq!(render("[{{ user.missing.deeper.still }}]"), "[]");
        assert_eq!(render("[{{ nobody }}]"), "[]");
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
    fn the_default_filter_covers_missing_nil_and_empty_values() {
        assert_eq!(
            render("Hi {{ user.first_name | default: \"there\" }}"),
            "Hi Ada"
        );
        assert_eq!(
            render("Hi {{ user.nickname | default: \"there\" }}"),
            "Hi there"
        );
        assert_eq!(render("Hi {{ user.empty | default: 'there' }}"), "Hi there");
        assert_eq!(
            render("Hi {{ user.a.b.c | default: user.first_name }}"),
            "Hi Ada"
        );
        assert_eq!(render("{{ nothing.at.all | default: 0 }}"), "0");
    }
}
