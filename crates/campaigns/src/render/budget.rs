//! The render budget. A field renders at most [`MAX_FIELD_BYTES`], a whole content
//! [`MAX_CONTENT_BYTES`], any value a filter or `{% capture %}` builds is at most
//! [`MAX_VALUE_BYTES`], and one field's render runs at most [`MAX_LOOP_ITERATIONS`] loop
//! iterations in all; past a limit the render fails with
//! [`RenderErrorKind::OverBudget`](super::RenderErrorKind::OverBudget) naming it. Liquid
//! has no hook for any of this, so the output goes through a writer that refuses to grow
//! past the limit ([`Limited`]), every filter is wrapped to check the size of what it
//! returns ([`Bounded`]), and `for` and `capture` are replaced by versions (in `tags`)
//! that count iterations (in the render's registers, [`iteration`]) and bound their
//! buffer. The `for` never materialises a range, so `(1..1000000000)` costs the
//! iterations it runs, not its length.
//!
//! A render stopped on purpose, by a budget or by `{% abort %}`, records why in a
//! thread-local [`Stop`] before its error unwinds the render, and
//! [`render_field`](super::render_field) reads it back.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};

use liquid_core::model::{Value as LiquidValue, ValueView};
use liquid_core::parser::FilterArguments;
use liquid_core::{Filter, FilterReflection, ParseFilter, Runtime};

/// Most bytes one field renders to.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most bytes all the fields of one content render to.
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Most bytes of a value a filter returns or a `{% capture %}` holds.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most loop iterations, all loops together, while rendering one field.
pub const MAX_LOOP_ITERATIONS: u64 = 10_000;

/// Why a render was stopped on purpose, as opposed to failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    Aborted(Option<String>),
    OverBudget(String),
}

thread_local! {
    /// The stop of the render under way on this thread. Liquid's errors keep no typed
    /// cause that can be read back, so a stop is recorded here before its error is
    /// returned, and [`render_field`](super::render_field) (which clears it first) reads
    /// it afterwards.
    static STOP: RefCell<Option<Stop>> = const { RefCell::new(None) };
}

/// Records `stop` (the first one of a render wins) and returns the error that unwinds
/// the render.
pub(super) fn stop(stop: Stop) -> liquid_core::Error {
    let message = match &stop {
        Stop::Aborted(_) => "aborted by the template".to_owned(),
        Stop::OverBudget(what) => what.clone(),
    };
    STOP.with(|s| {
        s.borrow_mut().get_or_insert(stop);
    });
    liquid_core::Error::with_msg(message)
}

pub(super) fn take_stop() -> Option<Stop> {
    STOP.with(|s| s.borrow_mut().take())
}

/// What a [`Limited`] buffer holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    Field,
    Capture,
}

/// A buffer that refuses to grow past its limit, recording the stop when it would.
pub(super) struct Limited {
    buf: Vec<u8>,
    limit: Limit,
}

impl Limited {
    pub(super) fn new(limit: Limit) -> Limited {
        Limited {
            buf: Vec::new(),
            limit,
        }
    }

    pub(super) fn into_string(self) -> String {
        // Liquid writes whole UTF-8 strings and a refused write adds nothing.
        String::from_utf8(self.buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let (max, what) = match self.limit {
            Limit::Field => (MAX_FIELD_BYTES, "the field renders to"),
            Limit::Capture => (MAX_VALUE_BYTES, "a capture holds"),
        };
        if self.buf.len() + data.len() > max {
            stop(Stop::OverBudget(format!("{what} more than {max} bytes")));
            return Err(io::Error::other("over the render budget"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `value` takes at most `left` bytes: its scalars' text, its keys, and a byte
/// for each array or object.
fn fits(value: &dyn ValueView, left: &mut usize) -> bool {
    let cost = match value.as_scalar() {
        Some(s) => s.to_kstr().len(),
        None => 1,
    };
    if cost > *left {
        return false;
    }
    *left -= cost;
    if let Some(array) = value.as_array() {
        array.values().all(|v| fits(v, left))
    } else if let Some(object) = value.as_object() {
        object.iter().all(|(k, v)| {
            k.len() <= *left && {
                *left -= k.len();
                fits(v, left)
            }
        })
    } else {
        true
    }
}

/// A filter whose results are bounded by [`MAX_VALUE_BYTES`], so that no chain of
/// `append`, `replace` or `concat` can build a value beyond it.
#[derive(Clone)]
pub(super) struct Bounded<F>(pub(super) F);

impl<F: ParseFilter + Clone + 'static> ParseFilter for Bounded<F> {
    fn parse(&self, arguments: FilterArguments) -> liquid_core::Result<Box<dyn Filter>> {
        Ok(Box::new(BoundedFilter(self.0.parse(arguments)?)))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.0.reflection()
    }
}

#[derive(Debug)]
struct BoundedFilter(Box<dyn Filter>);

impl fmt::Display for BoundedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Filter for BoundedFilter {
    fn evaluate(
        &self,
        input: &dyn ValueView,
        runtime: &dyn Runtime,
    ) -> liquid_core::Result<LiquidValue> {
        let value = self.0.evaluate(input, runtime)?;
        let mut left = MAX_VALUE_BYTES;
        if !fits(&value, &mut left) {
            return Err(stop(Stop::OverBudget(format!(
                "a filter builds a value of more than {MAX_VALUE_BYTES} bytes ({})",
                self.0
            ))));
        }
        Ok(value)
    }
}

/// The loop iterations of the field being rendered (a register lives as long as one
/// render).
#[derive(Default)]
struct LoopIterations(u64);

/// Counts one loop iteration against [`MAX_LOOP_ITERATIONS`].
pub(super) fn iteration(runtime: &dyn Runtime) -> liquid_core::Result<()> {
    let mut count = runtime.registers().get_mut::<LoopIterations>();
    count.0 += 1;
    if count.0 > MAX_LOOP_ITERATIONS {
        return Err(stop(Stop::OverBudget(format!(
            "the field runs more than {MAX_LOOP_ITERATIONS} loop iterations"
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::{campaign_of, try_field, with_globals};
    use crate::render::{RenderErrorKind, Templates, parser};
    use herald_proto::common::v1::message_content::Body;
    use herald_proto::common::v1::{EmailContent, MessageContent};

    #[test]
    fn loops_are_budgeted() {
        // A huge range costs only the iterations it runs, and fails at the limit.
        let e =
            try_field("sms.body", "{% for i in (1..1000000000) %}{% endfor %}").expect_err("over");
        assert_eq!(e.kind, RenderErrorKind::OverBudget);
        assert!(e.error.contains("10000 loop iterations"), "{}", e.error);
        let e = try_field(
            "sms.body",
            "{% for i in (1..200) %}{% for j in (1..200) %}{% endfor %}{% endfor %}",
        )
        .expect_err("over");
        assert_eq!(e.kind, RenderErrorKind::OverBudget);
        // Exactly the limit is fine, and so is breaking out early.
        assert!(try_field("sms.body", "{% for i in (1..10000) %}{% endfor %}").is_ok());
        assert!(
            try_field(
                "sms.body",
                "{% for i in (1..1000000) %}{% break %}{% endfor %}"
            )
            .is_ok()
        );
    }

    #[test]
    fn output_and_values_are_budgeted() {
        // One field's output.
        let e = try_field("sms.body", "{% for i in (1..9000) %}0123456789{% endfor %}")
            .expect_err("over");
        assert_eq!(e.kind, RenderErrorKind::OverBudget);
        assert_eq!(
            e.error,
            format!("the field renders to more than {MAX_FIELD_BYTES} bytes")
        );
        // Doubling a string cannot outgrow the value limit, by filters or by capture.
        let e = try_field(
            "sms.body",
            "{% assign s = 'xxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}",
        )
        .expect_err("over");
        assert_eq!(e.kind, RenderErrorKind::OverBudget);
        assert!(
            e.error.starts_with("a filter builds a value of more than"),
            "{}",
            e.error
        );
        let e = try_field(
            "sms.body",
            "{% assign s = 'xxxxxxxx' %}{% for i in (1..40) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}",
        )
        .expect_err("over");
        assert_eq!(
            e.error,
            format!("a capture holds more than {MAX_VALUE_BYTES} bytes")
        );
        let e = try_field(
            "sms.body",
            "{{ 'a' | replace: 'a', 'aaaaaaaaaaaaaaaa' | replace: 'a', 'aaaaaaaaaaaaaaaa' | replace: 'a', 'aaaaaaaaaaaaaaaa' | replace: 'a', 'aaaaaaaaaaaaaaaa' | replace: 'a', 'aa' | size }}",
        )
        .expect_err("over");
        assert_eq!(e.kind, RenderErrorKind::OverBudget);
        // The whole content: five fields of 60 KiB each.
        let chunk = "{% for i in (1..6000) %}0123456789{% endfor %}";
        let content = MessageContent {
            body: Some(Body::Email(EmailContent {
                subject: chunk.into(),
                html_body: chunk.into(),
                text_body: chunk.into(),
                from_name: chunk.into(),
                reply_to: chunk.into(),
            })),
        };
        let templates =
            Templates::compile(&parser(), &campaign_of(vec![content.clone()])).expect("compiles");
        let e = with_globals(true, |g| templates.render(&content, g)).expect_err("over");
        assert_eq!(e.kind, RenderErrorKind::OverBudget);
        assert_eq!(e.field, "email.reply_to");
        assert!(
            e.error.contains("the content renders to more than"),
            "{}",
            e.error
        );
    }
}
