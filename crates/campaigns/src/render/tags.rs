//! The tags Herald adds to Liquid's library or replaces in it:
//! - `{% abort %}` or `{% abort "reason" %}` (the reason may be any value with filters):
//!   the template decides not to send. Rendering fails with
//!   [`RenderErrorKind::Aborted`](super::RenderErrorKind::Aborted) and the reason
//!   (Braze's `abort_message`);
//! - `{% comment %}` skips the tags inside it (but for nested comments and `raw`) instead
//!   of parsing them: the standard one lets liquid panic on an unclosed block inside it;
//! - `for` and `capture` keep Liquid's semantics but count their loop iterations and
//!   bound their buffer, within the render budget (see `budget`); the `for` never
//!   materialises a range.

use std::collections::HashMap;
use std::io::Write;

use liquid_core::model::{
    KString, KStringRef, Object, ScalarCow, Value as LiquidValue, ValueCow, ValueView,
};
use liquid_core::parser::{BlockElement, FilterChain, TryMatchToken};
use liquid_core::runtime::{Interrupt, InterruptRegister, StackFrame};
use liquid_core::{
    BlockReflection, Expression, Language, ParseBlock, ParseTag, Renderable, Runtime, TagBlock,
    TagReflection, TagTokenIter, Template,
};

use super::budget::{Limit, Limited, Stop, iteration, stop};
use super::values::text_of;

/// Longest abort reason kept, in characters.
const MAX_REASON_CHARS: usize = 256;

/// `{% abort %}` / `{% abort "reason" %}`: stops the render, so nothing is sent.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct AbortTag;

impl TagReflection for AbortTag {
    fn tag(&self) -> &str {
        "abort"
    }
    fn description(&self) -> &str {
        "Decides not to send the message, with an optional reason."
    }
}

impl ParseTag for AbortTag {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        let reason = match arguments.next() {
            None => None,
            Some(token) => Some(token.expect_filter_chain(options).into_result()?),
        };
        arguments.expect_nothing()?;
        Ok(Box::new(Abort { reason }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct Abort {
    reason: Option<FilterChain>,
}

impl Renderable for Abort {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        let reason = match &self.reason {
            Some(e) => text_of(e.evaluate(runtime)?.as_view()),
            None => String::new(),
        };
        let reason: String = reason.trim().chars().take(MAX_REASON_CHARS).collect();
        Err(stop(Stop::Aborted((!reason.is_empty()).then_some(reason))))
    }
}

/// Liquid's `comment`, which may nest and holds `raw` blocks, but does not parse the
/// other tags inside it: the standard one parses them and ignores their errors, and an
/// unclosed block inside it then makes liquid panic (`{% comment %}{% if x %}`).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CommentBlock;

impl BlockReflection for CommentBlock {
    fn start_tag(&self) -> &str {
        "comment"
    }
    fn end_tag(&self) -> &str {
        "endcomment"
    }
    fn description(&self) -> &str {
        "Renders nothing."
    }
}

impl ParseBlock for CommentBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        arguments.expect_nothing()?;
        while let Some(element) = tokens.next()? {
            if let BlockElement::Tag(tag) = element
                && matches!(tag.name(), "comment" | "raw")
            {
                tag.parse(&mut tokens, options)?;
            }
        }
        tokens.assert_empty();
        Ok(Box::new(Nothing))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Nothing;

impl Renderable for Nothing {
    fn render_to(
        &self,
        _writer: &mut dyn Write,
        _runtime: &dyn Runtime,
    ) -> liquid_core::Result<()> {
        Ok(())
    }
}

/// What a `for` iterates over.
#[derive(Debug)]
enum Items {
    /// An array (an object iterates as `[key, value]` pairs, nil as nothing).
    Array(Expression),
    /// `(start..stop)`, both included.
    Range(Expression, Expression),
}

/// Liquid's `for` (with `limit`, `offset`, `reversed`, `else`, `break`, `continue` and
/// the `forloop` object), counting its iterations and never materialising a range.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ForBlock;

impl BlockReflection for ForBlock {
    fn start_tag(&self) -> &str {
        "for"
    }
    fn end_tag(&self) -> &str {
        "endfor"
    }
    fn description(&self) -> &str {
        "Renders its body for each item of an array or range."
    }
}

/// `: value` after a `for` parameter.
fn parameter(arguments: &mut TagTokenIter<'_>) -> liquid_core::Result<Expression> {
    arguments
        .expect_next("\":\" expected")?
        .expect_str(":")
        .into_result_custom_msg("\":\" expected")?;
    arguments
        .expect_next("value expected")?
        .expect_value()
        .into_result()
}

impl ParseBlock for ForBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        let var = arguments
            .expect_next("identifier expected")?
            .expect_identifier()
            .into_result()?;
        let var = KString::from_ref(var);
        arguments
            .expect_next("\"in\" expected")?
            .expect_str("in")
            .into_result_custom_msg("\"in\" expected")?;
        let items = match arguments
            .expect_next("array or range expected")?
            .expect_value()
        {
            TryMatchToken::Matches(array) => Items::Array(array),
            TryMatchToken::Fails(token) => match token.expect_range() {
                TryMatchToken::Matches((start, stop)) => Items::Range(start, stop),
                TryMatchToken::Fails(token) => return token.raise_error().into_err(),
            },
        };
        let (mut limit, mut offset, mut reversed) = (None, None, false);
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "limit" => limit = Some(parameter(&mut arguments)?),
                "offset" => offset = Some(parameter(&mut arguments)?),
                "reversed" => reversed = true,
                _ => {
                    return token
                        .raise_custom_error("\"limit\", \"offset\" or \"reversed\" expected")
                        .into_err();
                }
            }
        }
        let mut body = Vec::new();
        let mut otherwise = None;
        while let Some(element) = tokens.next()? {
            match element {
                BlockElement::Tag(mut tag) if tag.name() == "else" => {
                    tag.tokens().expect_nothing()?;
                    otherwise = Some(Template::new(tokens.parse_all(options)?));
                    break;
                }
                element => body.push(element.parse(&mut tokens, options)?),
            }
        }
        tokens.assert_empty();
        Ok(Box::new(For {
            var,
            items,
            limit,
            offset,
            reversed,
            body: Template::new(body),
            otherwise,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct For {
    var: KString,
    items: Items,
    limit: Option<Expression>,
    offset: Option<Expression>,
    reversed: bool,
    body: Template,
    otherwise: Option<Template>,
}

/// An integer argument of a loop.
fn integer(e: &Expression, runtime: &dyn Runtime, what: &str) -> liquid_core::Result<i64> {
    let value = e.evaluate(runtime)?;
    value
        .as_scalar()
        .and_then(|s| s.to_integer())
        .ok_or_else(|| {
            liquid_core::Error::with_msg(format!("the {what} of a for loop must be a whole number"))
        })
}

/// The items `offset..offset + limit` of `len` items: (first, count).
fn window(len: u64, offset: Option<i64>, limit: Option<i64>) -> (u64, u64) {
    let first = offset.map_or(0, |o| o.max(0) as u64).min(len);
    let count = len - first;
    (first, limit.map_or(count, |l| count.min(l.max(0) as u64)))
}

impl For {
    /// Renders the body for item `at(i)`, `i` in `0..count`.
    fn each<'v>(
        &self,
        writer: &mut dyn Write,
        runtime: &dyn Runtime,
        count: u64,
        at: &dyn Fn(u64) -> ValueCow<'v>,
    ) -> liquid_core::Result<()> {
        if count == 0 {
            if let Some(otherwise) = &self.otherwise {
                otherwise.render_to(writer, runtime)?;
            }
            return Ok(());
        }
        let parent = runtime
            .try_get(&[ScalarCow::new("forloop")])
            .map(|p| p.to_value());
        for i in 0..count {
            iteration(runtime)?;
            let index = if self.reversed { count - 1 - i } else { i };
            let item = at(index);
            let forloop = forloop(i, count, parent.as_ref());
            let mut scope = HashMap::<KStringRef<'_>, &dyn ValueView>::new();
            scope.insert("forloop".into(), &forloop);
            scope.insert(self.var.as_ref(), item.as_view());
            let frame = StackFrame::new(runtime, &scope);
            self.body.render_to(writer, &frame)?;
            let interrupt = frame.registers().get_mut::<InterruptRegister>().reset();
            if interrupt == Some(Interrupt::Break) {
                break;
            }
        }
        Ok(())
    }
}

/// The `forloop` object of iteration `i` of `count`.
fn forloop(i: u64, count: u64, parent: Option<&LiquidValue>) -> LiquidValue {
    let int = |n: u64| LiquidValue::scalar(i64::try_from(n).unwrap_or(i64::MAX));
    let mut object = Object::new();
    object.insert("length".into(), int(count));
    object.insert("index".into(), int(i + 1));
    object.insert("index0".into(), int(i));
    object.insert("rindex".into(), int(count - i));
    object.insert("rindex0".into(), int(count - i - 1));
    object.insert("first".into(), LiquidValue::scalar(i == 0));
    object.insert("last".into(), LiquidValue::scalar(i + 1 == count));
    if let Some(parent) = parent {
        object.insert("parentloop".into(), parent.clone());
    }
    LiquidValue::Object(object)
}

impl Renderable for For {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        let limit = self
            .limit
            .as_ref()
            .map(|e| integer(e, runtime, "limit"))
            .transpose()?;
        let offset = self
            .offset
            .as_ref()
            .map(|e| integer(e, runtime, "offset"))
            .transpose()?;
        match &self.items {
            Items::Range(start, stop) => {
                let start = integer(start, runtime, "start")?;
                let stop = integer(stop, runtime, "end")?;
                let len = u64::try_from(i128::from(stop) - i128::from(start) + 1).unwrap_or(0);
                let (first, count) = window(len, offset, limit);
                let at = |i: u64| {
                    let n = i128::from(start) + i128::from(first) + i128::from(i);
                    ValueCow::Owned(LiquidValue::scalar(n as i64))
                };
                self.each(writer, runtime, count, &at)
            }
            Items::Array(e) => {
                let value = e.evaluate(runtime)?;
                let value = value.as_view();
                let items: Vec<ValueCow<'_>> = if let Some(array) = value.as_array() {
                    array.values().map(ValueCow::Borrowed).collect()
                } else if let Some(object) = value.as_object() {
                    object
                        .iter()
                        .map(|(k, v)| {
                            ValueCow::Owned(LiquidValue::Array(vec![
                                LiquidValue::scalar(k.into_owned()),
                                v.to_value(),
                            ]))
                        })
                        .collect()
                } else if value.is_nil() || value.is_state() {
                    Vec::new()
                } else {
                    return Err(liquid_core::Error::with_msg(format!(
                        "a for loop needs an array, not {}",
                        value.type_name()
                    )));
                };
                let (first, count) = window(items.len() as u64, offset, limit);
                let at = |i: u64| {
                    let item = &items[(first + i) as usize];
                    ValueCow::Borrowed(item.as_view())
                };
                self.each(writer, runtime, count, &at)
            }
        }
    }
}

/// Liquid's `capture`, into a buffer bounded by
/// [`MAX_VALUE_BYTES`](super::MAX_VALUE_BYTES).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CaptureBlock;

impl BlockReflection for CaptureBlock {
    fn start_tag(&self) -> &str {
        "capture"
    }
    fn end_tag(&self) -> &str {
        "endcapture"
    }
    fn description(&self) -> &str {
        "Renders its body into a variable."
    }
}

impl ParseBlock for CaptureBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> liquid_core::Result<Box<dyn Renderable>> {
        let id = arguments
            .expect_next("identifier expected")?
            .expect_identifier()
            .into_result()?;
        let id = KString::from_ref(id);
        arguments.expect_nothing()?;
        let body = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(Capture { id, body }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Capture {
    id: KString,
    body: Template,
}

impl Renderable for Capture {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> liquid_core::Result<()> {
        let mut buf = Limited::new(Limit::Capture);
        self.body.render_to(&mut buf, runtime)?;
        runtime.set_global(self.id.clone(), LiquidValue::scalar(buf.into_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::render::RenderErrorKind;
    use crate::render::tests::{render, try_field};

    #[test]
    fn abort_stops_the_render_with_its_reason() {
        let e = try_field("in_app.title", "Hi{% abort %}").expect_err("aborts");
        assert_eq!(e.kind, RenderErrorKind::Aborted);
        assert_eq!(e.field, "in_app.title");
        assert_eq!(e.error, "the template aborted");
        let e = try_field(
            "sms.body",
            "{% if user.nickname == blank %}{% abort \"no nickname\" %}{% endif %}Hi",
        )
        .expect_err("aborts");
        assert_eq!(e.kind, RenderErrorKind::Aborted);
        assert_eq!(e.error, "the template aborted: no nickname");
        // From inside a loop and a capture, with a computed reason.
        let e = try_field(
            "email.html_body",
            "{% for i in (1..5) %}{% capture c %}{% if i == 3 %}{% abort user.first_name | append: ' at ' | append: i %}{% endif %}{% endcapture %}{% endfor %}",
        )
        .expect_err("aborts");
        assert_eq!(
            (e.kind, e.error.as_str()),
            (RenderErrorKind::Aborted, "the template aborted: Ada at 3")
        );
        // A template that does not reach the tag renders.
        assert_eq!(render("{% if false %}{% abort %}{% endif %}ok"), "ok");
        // The next render is not affected.
        assert_eq!(render("ok"), "ok");
    }

    #[test]
    fn for_loops_keep_liquid_semantics() {
        assert_eq!(
            render(
                "{% for t in user.tags %}{{ forloop.index }}{{ t }}{% unless forloop.last %},{% endunless %}{% endfor %}"
            ),
            "1a,2b,3c"
        );
        assert_eq!(
            render("{% for i in (1..6) limit: 3 offset: 2 %}{{ i }}{% endfor %}"),
            "345"
        );
        assert_eq!(
            render("{% for i in (1..3) reversed %}{{ i }}{{ forloop.rindex0 }}{% endfor %}"),
            "322110"
        );
        assert_eq!(
            render("{% for t in user.tags offset: 1 reversed %}{{ t }}{% endfor %}"),
            "cb"
        );
        assert_eq!(
            render("{% for t in user.none %}x{% else %}empty{% endfor %}"),
            "empty"
        );
        assert_eq!(
            render(
                "{% for i in (1..9) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"
            ),
            "13"
        );
        assert_eq!(
            render(
                "{% for i in (1..2) %}{% for j in (1..2) %}{{ forloop.parentloop.index }}{{ j }} {% endfor %}{% endfor %}"
            ),
            "11 12 21 22 "
        );
        assert_eq!(
            render("{% for p in user.company %}{{ p[0] }}={{ p[1] }}{% endfor %}"),
            "name=Acme"
        );
        assert_eq!(render("{% for i in (3..1) %}x{% endfor %}."), ".");
        assert_eq!(
            render("{% capture c %}{{ user.first_name }}!{% endcapture %}{{ c }}{{ c }}"),
            "Ada!Ada!"
        );
    }
}
