//! Escaping by field. The literal text of a template is never escaped; what an output
//! (`{{ … }}`) writes is, as its field needs ([`Escape::of_field`]):
//! - URL fields (`in_app.image_url`, `in_app.actions[i].url`, `push.deep_link`,
//!   `push.image_url`, `webhook.url`): percent-encoded as a URL component (everything
//!   but `A-Z a-z 0-9 - . _ ~`), so a trait cannot change the host, path or query:
//!   `https://x.com/?ref={{ user.ref }}` stays on x.com with one `ref` parameter;
//! - `email.html_body`: HTML-escaped (`& < > " '`);
//! - every other field is plain text: nothing is escaped.
//!
//! It works by rewriting the source before parsing: every output of a URL or HTML field
//! gets a last filter that escapes (`{{ user.ref }}` → `{{ user.ref | herald_escape_url }}`).
//! An output whose last filter already escapes for the field (`url_encode` in a URL,
//! `escape` or `escape_once` in HTML) is left alone, and so is one whose last filter is
//! `raw`: the opt-out for a value the workspace controls, such as a whole URL kept in a
//! trait (`{{ user.avatar_url | raw }}`) or a `{% capture %}` already made of escaped
//! outputs. A value that comes from the user must never be output with `raw`. The
//! rewrite finds outputs as Liquid's lexer does, which holds only while every `{{ … }}`
//! in the source is an output: that is why URL and HTML fields may use only the tags
//! that keep it so (`assign`, `capture`, `if`, `unless`, `case`, `for`, `break`,
//! `continue`, `increment`, `decrement`, `abort`); `raw` and `comment` (whose insides
//! are not parsed) and `cycle` (which writes values without an output) are refused there.

use std::fmt;

use liquid_core::model::{Value as LiquidValue, ValueView};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::{Filter, FilterReflection, ParseFilter, Runtime};

use super::values::text_of;

/// How the outputs of a field are escaped (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Escape {
    /// Plain text: nothing is escaped.
    Text,
    /// A URL: outputs are percent-encoded as a URL component.
    Url,
    /// HTML: outputs are HTML-escaped.
    Html,
}

/// The filter the rewrite appends to the outputs of URL fields.
const ESCAPE_URL: &str = "herald_escape_url";
/// The filter the rewrite appends to the outputs of HTML fields.
const ESCAPE_HTML: &str = "herald_escape_html";

impl Escape {
    /// The escaping of the field at `path` (relative to the content, as
    /// [`for_each_template`](super::for_each_template) names it).
    pub fn of_field(path: &str) -> Escape {
        match path {
            "in_app.image_url" | "push.deep_link" | "push.image_url" | "webhook.url" => Escape::Url,
            "email.html_body" => Escape::Html,
            p if p.starts_with("in_app.actions[") && p.ends_with("].url") => Escape::Url,
            _ => Escape::Text,
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The filter appended to every output; `None` for plain text.
    pub(super) fn filter(self) -> Option<&'static str> {
        match self {
            Escape::Text => None,
            Escape::Url => Some(ESCAPE_URL),
            Escape::Html => Some(ESCAPE_HTML),
        }
    }

    /// Whether an output whose last filter is `filter` needs no escaping filter after it.
    fn ends_escaped(self, filter: &str) -> bool {
        filter == "raw"
            || match self {
                Escape::Text => true,
                Escape::Url => matches!(filter, "url_encode" | ESCAPE_URL),
                Escape::Html => matches!(filter, "escape" | "escape_once" | ESCAPE_HTML),
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Escape::Text => "a text field",
            Escape::Url => "a URL field",
            Escape::Html => "an HTML field",
        }
    }
}

/// A filter without arguments.
#[derive(Clone)]
pub(super) struct SimpleFilter {
    name: &'static str,
    description: &'static str,
    apply: fn(&dyn ValueView) -> LiquidValue,
}

impl SimpleFilter {
    pub(super) const RAW: SimpleFilter = SimpleFilter {
        name: "raw",
        description: "Writes the value as is, without the escaping of URL and HTML fields.",
        apply: |v| v.to_value(),
    };
    pub(super) const ESCAPE_URL: SimpleFilter = SimpleFilter {
        name: ESCAPE_URL,
        description: "Percent-encodes the value as a URL component.",
        apply: |v| LiquidValue::scalar(percent_encode(&text_of(v))),
    };
    pub(super) const ESCAPE_HTML: SimpleFilter = SimpleFilter {
        name: ESCAPE_HTML,
        description: "Escapes the value for HTML text and attributes.",
        apply: |v| LiquidValue::scalar(html_escape(&text_of(v))),
    };
}

impl FilterReflection for SimpleFilter {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        self.description
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for SimpleFilter {
    fn parse(&self, mut arguments: FilterArguments) -> liquid_core::Result<Box<dyn Filter>> {
        if arguments.positional.next().is_some() || arguments.keyword.next().is_some() {
            return Err(liquid_core::Error::with_msg(format!(
                "the {} filter takes no arguments",
                self.name
            )));
        }
        Ok(Box::new(AppliedFilter {
            name: self.name,
            apply: self.apply,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct AppliedFilter {
    name: &'static str,
    apply: fn(&dyn ValueView) -> LiquidValue,
}

impl fmt::Display for AppliedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Filter for AppliedFilter {
    fn evaluate(
        &self,
        input: &dyn ValueView,
        _runtime: &dyn Runtime,
    ) -> liquid_core::Result<LiquidValue> {
        Ok((self.apply)(input))
    }
}

/// Percent-encodes every byte of `text` but the unreserved characters of RFC 3986.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

/// Escapes `& < > " '` for HTML text and quoted attributes.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The tags a URL or HTML field may use: they parse every `{{ … }}` inside them as an
/// output and write nothing but through outputs (see the module documentation).
const ESCAPED_FIELD_TAGS: &[&str] = &[
    "assign",
    "capture",
    "endcapture",
    "if",
    "elsif",
    "else",
    "endif",
    "unless",
    "endunless",
    "case",
    "when",
    "endcase",
    "for",
    "endfor",
    "break",
    "continue",
    "increment",
    "decrement",
    "abort",
];

/// A piece of markup of a template's source.
#[derive(Debug, PartialEq, Eq)]
enum Markup<'a> {
    /// `{{ … }}`: `chain` is the filter chain inside, `end` the byte offset where a
    /// filter can be appended (before `}}` or `-}}`).
    Output { chain: &'a str, end: usize },
    /// `{% name … %}`.
    Tag { name: &'a str },
}

/// The offset of the first `close` at or after `from` outside a quoted string; `None`
/// when there is none or a quote is left open.
fn closing(bytes: &[u8], from: usize, close: &[u8]) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => i += 2 + bytes[i + 1..].iter().position(|&b| b == q)?,
            _ if bytes[i..].starts_with(close) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The outputs and tags of `source` in order, split as Liquid's lexer splits a template
/// that parses and has no `raw` or `comment` block: an output runs from `{{` to the first
/// `}}` outside a string, a tag from `{%` to the first `%}` (Liquid's grammar has no
/// other `}` or `%` inside them), and text has neither `{{` nor `{%`. `None` if a
/// delimiter is left open.
fn markup(source: &str) -> Option<Vec<Markup<'_>>> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{{") {
            let close = closing(bytes, i + 2, b"}}")?;
            let start = i + 2 + usize::from(bytes.get(i + 2) == Some(&b'-'));
            // A `-` just before `}}` is whitespace control: no token of the grammar ends
            // with one.
            let end = if close > start && bytes[close - 1] == b'-' {
                close - 1
            } else {
                close
            };
            out.push(Markup::Output {
                chain: &source[start..end.max(start)],
                end: end.max(start),
            });
            i = close + 2;
        } else if bytes[i..].starts_with(b"{%") {
            let close = closing(bytes, i + 2, b"%}")?;
            let inner = source[i + 2..close].trim_start_matches('-').trim_start();
            let name_len = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(inner.len());
            out.push(Markup::Tag {
                name: &inner[..name_len],
            });
            i = close + 2;
        } else {
            i += 1;
        }
    }
    Some(out)
}

/// The name of the last filter of `chain`, if it has filters.
fn last_filter(chain: &str) -> Option<&str> {
    let mut quote = None;
    let mut last = None;
    for (i, b) in chain.bytes().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'|' => last = Some(i),
            None => {}
        }
    }
    let rest = chain[last? + 1..].trim_start();
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..len])
}

/// `source` (a template that parses) with the escaping filter of `escape` appended to
/// every output that does not already end escaped; an error if it uses a tag a URL or
/// HTML field cannot have.
pub(super) fn escaped_source(source: &str, escape: Escape) -> Result<String, String> {
    let Some(filter) = escape.filter() else {
        return Ok(source.to_owned());
    };
    let markup = markup(source).ok_or_else(|| "has an unclosed {{ or {%".to_owned())?;
    let mut out = String::with_capacity(source.len() + 32);
    let mut copied = 0;
    for m in markup {
        match m {
            Markup::Tag { name } if !ESCAPED_FIELD_TAGS.contains(&name) => {
                return Err(format!(
                    "cannot use the {{% {name} %}} tag in {}, whose values are escaped; \
                     it may use {}",
                    escape.describe(),
                    ESCAPED_FIELD_TAGS.join(", ")
                ));
            }
            Markup::Tag { .. } => {}
            Markup::Output { chain, end } => {
                if last_filter(chain).is_some_and(|f| escape.ends_escaped(f)) {
                    continue;
                }
                out.push_str(&source[copied..end]);
                out.push_str(" | ");
                out.push_str(filter);
                out.push(' ');
                copied = end;
            }
        }
    }
    out.push_str(&source[copied..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::{field, object, render, text, try_field};
    use crate::render::{Globals, GlobalsInput, RenderErrorKind, parser, prepare, render_field};
    use proptest::prelude::*;

    #[test]
    fn url_fields_percent_encode_values_but_not_the_template() {
        let url = "https://x.example/p?ref={{ user.ref }}&n={{ user.first_name }}";
        let expected = "https://x.example/p?ref=a%26b%20c%2F%3Fx%3D1&n=Ada";
        for path in ["in_app.actions[0].url", "push.deep_link", "webhook.url"] {
            assert_eq!(field(path, url), expected, "{path}");
        }
        // A trait cannot bring its own host.
        assert_eq!(
            field("push.deep_link", "{{ user.site }}x"),
            "https%3A%2F%2Fevil.example%2Fx"
        );
        // Filters run before the escaping; whitespace control still works.
        assert_eq!(
            field(
                "webhook.url",
                "https://x.example/{{- user.ref | upcase -}} /"
            ),
            "https://x.example/A%26B%20C%2F%3FX%3D1/"
        );
        // Strings inside outputs and tags do not confuse the rewrite.
        assert_eq!(
            field(
                "webhook.url",
                "{% assign a = '}}{{' %}https://x.example/{{ a | append: \"}}|\" }}"
            ),
            "https://x.example/%7D%7D%7B%7B%7D%7D%7C"
        );
        // Escaping is not done twice after url_encode, and `raw` opts out.
        assert_eq!(
            field("webhook.url", "{{ user.ref | url_encode }}"),
            "a%26b%20c%2F%3Fx%3D1"
        );
        assert_eq!(
            field("webhook.url", "{{ user.site | raw }}p"),
            "https://evil.example/p"
        );
        // Plain text fields are not escaped.
        assert_eq!(field("sms.body", "{{ user.ref }}"), "a&b c/?x=1");
        assert_eq!(
            field("webhook.body", "{\"r\":\"{{ user.ref }}\"}"),
            "{\"r\":\"a&b c/?x=1\"}"
        );
    }

    #[test]
    fn html_bodies_escape_values_but_not_the_markup() {
        assert_eq!(
            field(
                "email.html_body",
                "<p class=\"x\">Hi {{ user.html }} &amp; {{ user.first_name }}</p>"
            ),
            "<p class=\"x\">Hi &lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt; &amp; Ada</p>"
        );
        assert_eq!(
            field(
                "email.html_body",
                "{% for t in user.tags %}<li>{{ t }}</li>{% endfor %}"
            ),
            "<li>a</li><li>b</li><li>c</li>"
        );
        assert_eq!(
            field("email.html_body", "{{ user.html | escape }}"),
            "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
        assert_eq!(field("email.html_body", "{{ '<i>' | raw }}"), "<i>");
        // The text alternative is plain text.
        assert_eq!(
            field("email.text_body", "{{ user.html }}"),
            "<b>\"Tom\" & 'Jerry'</b>"
        );
    }

    #[test]
    fn escaped_fields_refuse_tags_whose_insides_are_not_outputs() {
        for source in [
            "{% raw %}{{ user.ref }}{% endraw %}",
            "{% comment %}x{% endcomment %}{{ user.ref }}",
            "{% cycle user.ref, 'b' %}",
        ] {
            for path in ["webhook.url", "email.html_body"] {
                let e = try_field(path, source).expect_err(source);
                assert_eq!(e.kind, RenderErrorKind::Failed);
                assert_eq!(e.field, format!("campaign.variants[0].contents[0].{path}"));
                assert!(e.error.contains("cannot use the {%"), "{}", e.error);
            }
            // Plain text may use them.
            assert!(try_field("sms.body", source).is_ok(), "{source}");
        }
        assert_eq!(
            render("{% raw %}{{ user.ref }}{% endraw %}"),
            "{{ user.ref }}"
        );
    }

    #[test]
    fn the_markup_scanner_splits_like_liquid() {
        assert_eq!(
            markup("a {{ x | f: '}}' }} b {%- if y == \"%}\" -%} c {{-z-}}"),
            Some(vec![
                Markup::Output {
                    chain: " x | f: '}}' ",
                    end: 17
                },
                Markup::Tag { name: "if" },
                Markup::Output {
                    chain: "z",
                    end: 49
                },
            ])
        );
        assert_eq!(markup("{{ 'open }}"), None);
        assert_eq!(last_filter(" x | f: 'a|b' | raw "), Some("raw"));
        assert_eq!(last_filter(" 'a|b' "), None);
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{{ user.v }}",
            "{{- user.v -}}",
            "{{ user.v | upcase }}",
            "{{ \"}}\" | append: user.v }}",
            "{{ '%}' | prepend: user.v }}",
            "{{ user.v | raw | upcase }}",
            "{{ c }}",
            "{{ a }}",
            "{% if true %}",
            "{% endif %}",
            "{% for i in (1..2) %}",
            "{% endfor %}",
            "{% capture c %}",
            "{% endcapture %}",
            "{% assign a = user.v %}",
            "{% assign b = \"{{\" %}",
            "{% raw %}",
            "{% endraw %}",
            "{% comment %}",
            "{% endcomment %}",
            "{% cycle user.v, 'b' %}",
            "{{",
            "}}",
            "{%",
            "%}",
            "'",
            "\"",
            "{",
            "}",
            "-",
            " ",
            "x",
            "|",
        ])
    }

    proptest! {
        /// Whatever a template looks like, a value never reaches a URL or HTML field
        /// unescaped: no piece has a `<`, so one in the output came from `user.v`.
        #[test]
        fn values_never_reach_escaped_fields_raw(pieces in prop::collection::vec(piece(), 1..14)) {
            let source: String = pieces.concat();
            let traits = object(vec![("v", text("<'&\">"))]);
            let globals = Globals::new(GlobalsInput { traits: Some(&traits), ..Default::default() });
            for escape in [Escape::Url, Escape::Html] {
                if let Ok(template) = prepare(&parser(), &source, escape)
                    && let Ok(out) = render_field(&template, &globals)
                {
                    prop_assert!(!out.contains('<'), "{source:?} as {escape:?} gave {out:?}");
                }
            }
        }

        /// The rewrite never panics, whatever the source.
        #[test]
        fn the_rewrite_never_panics(source in ".{0,64}") {
            let _ = escaped_source(&source, Escape::Html);
            let _ = markup(&source);
        }
    }
}
