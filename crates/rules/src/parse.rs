//! The parser: recursive descent over the tokens, following the grammar in `rule.proto`.
//! Beside the tree it records where each part was written ([`Spans`]), so that what the
//! checker finds wrong in the tree is reported at the right place in the text.

use herald_conditions::Operator;
use herald_proto::segmentation::v1::{
    CountComparison, EngagementCondition, EngagementKind, NotPerformedCondition,
    PerformedCondition, PropertyFilter, RelativeTimeCondition, Rule, RuleGroup, SegmentCondition,
    TimeDirection, TimeUnit, TraitCondition, not_performed_condition::Since, rule::Kind,
};
use prost_types::value::Kind as ValueKind;
use prost_types::{ListValue, Struct, Value};

use crate::error::{Failure, ParseError, Span};
use crate::lex::{Tok, Token, lex};
use crate::limits::{MAX_DEPTH, MAX_TEXT_BYTES, MAX_VALUE_DEPTH};
use crate::names::{
    ARGUMENTS, COUNTS, FUNCTIONS, RESERVED, closest, engagement, operator_proto, operator_text,
    time_function, word_operator,
};

/// How deeply parentheses, `not`s and `all(…)`/`any(…)` may nest in the text. Deeper
/// than the tree may (parentheses add no level to the tree), but bounded so that no
/// input can exhaust the stack.
const MAX_NESTING: usize = 4 * MAX_DEPTH;

/// Parses the text form of a rule into its tree, and checks the tree with
/// [`check`](crate::check) so that text and tree are refused alike. Returns the first
/// error: a syntax error where it occurs, or the violation of the checker that is
/// written first, at the span of the offending part.
pub fn parse(text: &str) -> Result<Rule, ParseError> {
    if text.len() > MAX_TEXT_BYTES {
        let failure = Failure::new(
            Span::new(MAX_TEXT_BYTES, text.len()),
            format!(
                "the rule text is {} bytes; at most {MAX_TEXT_BYTES} bytes (16 KiB) are allowed",
                text.len()
            ),
        );
        return Err(ParseError::locate(text, failure));
    }
    let mut parser = Parser {
        text,
        tokens: lex(text),
        pos: 0,
        nesting: 0,
    };
    let (rule, spans) = parser
        .rule_text()
        .map_err(|f| ParseError::locate(text, f))?;
    if let Err(violations) = crate::check(&rule) {
        let first = violations
            .into_iter()
            .map(|v| Failure::new(spans.locate(&v.field), v.description))
            .min_by_key(|f| f.span.start);
        if let Some(failure) = first {
            return Err(ParseError::locate(text, failure));
        }
    }
    Ok(rule)
}

/// Where the parts of one parsed node were written: the node, its child nodes (in the
/// order of `all.rules`, `any.rules`, or the one `not` child), and its parts keyed by
/// their field path below the node, e.g. `performed.within`.
#[derive(Debug, Default)]
struct Spans {
    span: Span,
    children: Vec<Spans>,
    parts: Vec<(String, Span)>,
}

impl Spans {
    fn leaf(span: Span, parts: Vec<(String, Span)>) -> Spans {
        Spans {
            span,
            children: Vec::new(),
            parts,
        }
    }

    /// The span of the field `field` (a checker violation's path, starting at `rule`):
    /// the most specific recorded part it lies in.
    fn locate(&self, field: &str) -> Span {
        let Some(mut rest) = field.strip_prefix("rule") else {
            return self.span;
        };
        let mut node = self;
        loop {
            let group = rest
                .strip_prefix(".all.rules[")
                .or_else(|| rest.strip_prefix(".any.rules["));
            if let Some(after) = group {
                let Some((index, after)) = after.split_once(']') else {
                    break;
                };
                match index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| node.children.get(i))
                {
                    Some(child) => {
                        node = child;
                        rest = after;
                        continue;
                    }
                    None => break,
                }
            }
            if rest == ".not" || rest.starts_with(".not.") {
                match node.children.first() {
                    Some(child) => {
                        node = child;
                        rest = &rest[4..];
                        continue;
                    }
                    None => break,
                }
            }
            break;
        }
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        node.parts
            .iter()
            .filter(|(key, _)| {
                rest.strip_prefix(key.as_str())
                    .is_some_and(|tail| tail.is_empty() || tail.starts_with(['.', '[']))
            })
            .max_by_key(|(key, _)| key.len())
            .map_or(node.span, |(_, span)| *span)
    }
}

type Parsed = (Rule, Spans);
type PResult<T> = Result<T, Failure>;

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
}

/// `path op value`, `exists(path)` or `not_exists(path)`, with where each was written.
struct Comparison {
    path: String,
    operator: Operator,
    value: Option<Value>,
    span: Span,
    path_span: Span,
    operator_span: Span,
    value_span: Option<Span>,
}

impl Comparison {
    /// The spans of its parts under `prefix`, named after the fields of `path_field`.
    fn parts(&self, prefix: &str, path_field: &str) -> Vec<(String, Span)> {
        let mut parts = vec![
            (prefix.to_owned(), self.span),
            (format!("{prefix}.{path_field}"), self.path_span),
            (format!("{prefix}.operator"), self.operator_span),
        ];
        if let Some(span) = self.value_span {
            parts.push((format!("{prefix}.value"), span));
        }
        parts
    }
}

/// The arguments after the first one of `performed(…)` and the engagement functions.
#[derive(Default)]
struct Args {
    filters: Vec<PropertyFilter>,
    /// Filter parts keyed below `property_filters[i]`.
    filter_parts: Vec<(String, Span)>,
    where_span: Option<Span>,
    within: Option<(prost_types::Duration, Span)>,
    /// The instant, and the spans of the argument name and the string.
    since: Option<(prost_types::Timestamp, Span, Span)>,
    /// The comparison, its count, and the spans of the argument name and the number.
    count: Option<(CountComparison, u32, Span, Span)>,
}

impl Args {
    /// The spans of the arguments, keyed below the condition `kind`.
    fn parts(&self, kind: &str) -> Vec<(String, Span)> {
        let mut parts: Vec<(String, Span)> = self
            .filter_parts
            .iter()
            .map(|(key, span)| (format!("{kind}.{key}"), *span))
            .collect();
        if let Some((_, span)) = self.within {
            parts.push((format!("{kind}.within"), span));
        }
        if let Some((_, _, span)) = self.since {
            parts.push((format!("{kind}.since_time"), span));
        }
        if let Some((_, _, name, number)) = self.count {
            parts.push((format!("{kind}.count_comparison"), name));
            parts.push((format!("{kind}.count"), number));
        }
        parts
    }

    fn count(&self) -> (i32, u32) {
        self.count.map_or((0, 0), |(comparison, count, _, _)| {
            (comparison as i32, count)
        })
    }
}

/// Shortens `text` for quoting in a message.
fn shorten(text: &str) -> String {
    const MAX: usize = 24;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

fn node(kind: Kind) -> Rule {
    Rule { kind: Some(kind) }
}

fn group(items: Vec<Parsed>, any: bool, span: Option<Span>) -> Parsed {
    let span = span.unwrap_or_else(|| match (items.first(), items.last()) {
        (Some(first), Some(last)) => first.1.span.to(last.1.span),
        _ => Span::default(),
    });
    let (rules, children): (Vec<Rule>, Vec<Spans>) = items.into_iter().unzip();
    let group = RuleGroup { rules };
    let kind = if any {
        Kind::Any(group)
    } else {
        Kind::All(group)
    };
    (
        node(kind),
        Spans {
            span,
            children,
            parts: Vec::new(),
        },
    )
}

fn negate((rule, spans): Parsed, not_span: Span) -> Parsed {
    let span = not_span.to(spans.span);
    (
        node(Kind::Not(Box::new(rule))),
        Spans {
            span,
            children: vec![spans],
            parts: Vec::new(),
        },
    )
}

impl<'a> Parser<'a> {
    // ---- tokens -------------------------------------------------------------------

    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    /// Moves past the current token (never past the end) and returns its span.
    fn bump(&mut self) -> Span {
        let token = self.peek();
        let span = token.span;
        if !matches!(token.tok, Tok::End | Tok::Error(_)) {
            self.pos += 1;
        }
        span
    }

    fn slice(&self, span: Span) -> &'a str {
        &self.text[span.start..span.end]
    }

    fn at(&self, tok: &Tok) -> bool {
        &self.peek().tok == tok
    }

    /// The current token when it is an identifier.
    fn word(&self) -> Option<&'a str> {
        let token = self.peek();
        (token.tok == Tok::Ident).then(|| self.slice(token.span))
    }

    fn at_word(&self, word: &str) -> bool {
        self.word() == Some(word)
    }

    /// Whether the current token is a function name, i.e. followed by `(`.
    fn at_call(&self) -> bool {
        self.word().is_some() && self.peek_at(1).tok == Tok::LParen
    }

    // ---- errors -------------------------------------------------------------------

    /// A failure at the current token: the lexer's error if it stopped there, else
    /// `message` and what was found instead (nothing at the end of the text).
    fn unexpected(&self, message: impl Into<String>) -> Failure {
        let token = self.peek();
        let message = message.into();
        match &token.tok {
            Tok::Error(error) => Failure::new(token.span, error.clone()),
            Tok::End => Failure::new(token.span, message),
            _ => Failure::new(
                token.span,
                format!("{message}, found `{}`", shorten(self.slice(token.span))),
            ),
        }
    }

    /// "expected {what} after `{after}`".
    fn expected_after(&self, what: &str, after: &str) -> Failure {
        self.unexpected(format!("expected {what} after `{}`", shorten(after)))
    }

    /// "expected {what} after `{the previous token}`".
    fn expected(&self, what: &str) -> Failure {
        match self.pos.checked_sub(1) {
            Some(previous) => {
                let after = self.slice(self.tokens[previous].span);
                self.expected_after(what, after)
            }
            None => self.unexpected(format!("expected {what}")),
        }
    }

    /// Consumes `)` closing `opened`, or fails with `message`.
    fn close(&mut self, message: &str) -> PResult<Span> {
        if self.at(&Tok::RParen) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(message))
        }
    }

    fn enter(&mut self, span: Span) -> PResult<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Failure::new(
                span,
                format!("the rule is nested too deeply; a rule has at most {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    // ---- rules --------------------------------------------------------------------

    fn rule_text(&mut self) -> PResult<Parsed> {
        let parsed = self.or_expr()?;
        match self.peek().tok {
            Tok::End => Ok(parsed),
            Tok::RParen => Err(Failure::new(self.peek().span, "unmatched `)`")),
            _ => Err(self.unexpected("expected `and`, `or` or the end of the rule")),
        }
    }

    fn or_expr(&mut self) -> PResult<Parsed> {
        let first = self.and_expr()?;
        if !self.at_word("or") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.at_word("or") {
            self.bump();
            items.push(self.and_expr()?);
        }
        Ok(group(items, true, None))
    }

    fn and_expr(&mut self) -> PResult<Parsed> {
        let first = self.unary()?;
        if !self.at_word("and") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.at_word("and") {
            self.bump();
            items.push(self.unary()?);
        }
        Ok(group(items, false, None))
    }

    fn unary(&mut self) -> PResult<Parsed> {
        let token = self.peek().clone();
        match token.tok {
            Tok::LParen => {
                self.enter(token.span)?;
                self.bump();
                let inner = self.or_expr()?;
                self.close("expected `)` to close `(`")?;
                self.nesting -= 1;
                Ok(inner)
            }
            Tok::Ident => match self.slice(token.span) {
                "not" => {
                    self.enter(token.span)?;
                    self.bump();
                    let parsed = if self.at_word("performed") && self.at_call() {
                        self.performed(Some(token.span))?
                    } else {
                        negate(self.unary()?, token.span)
                    };
                    self.nesting -= 1;
                    Ok(parsed)
                }
                "and" | "or" => Err(self.expected("a condition")),
                name if self.at_call() => self.call(name, token.span),
                _ => {
                    let c = self.comparison("a condition")?;
                    let parts = c.parts("trait_condition", "path");
                    let span = c.span;
                    let condition = TraitCondition {
                        path: c.path,
                        operator: operator_proto(c.operator),
                        value: c.value,
                    };
                    Ok((
                        node(Kind::TraitCondition(condition)),
                        Spans::leaf(span, parts),
                    ))
                }
            },
            _ => Err(self.expected("a condition")),
        }
    }

    /// A function call at the start of a condition; the current token is its name.
    fn call(&mut self, name: &'a str, name_span: Span) -> PResult<Parsed> {
        match name {
            "exists" | "not_exists" => {
                let c = self.comparison("a condition")?;
                let parts = c.parts("trait_condition", "path");
                let condition = TraitCondition {
                    path: c.path,
                    operator: operator_proto(c.operator),
                    value: None,
                };
                Ok((
                    node(Kind::TraitCondition(condition)),
                    Spans::leaf(c.span, parts),
                ))
            }
            "performed" => self.performed(None),
            "in_segment" => {
                self.bump();
                self.bump();
                let (segment_id, id_span) = self.string_arg("the segment id", "in_segment(")?;
                let close = self.close("expected `)` to close `in_segment(`")?;
                Ok((
                    node(Kind::InSegment(SegmentCondition { segment_id })),
                    Spans::leaf(
                        name_span.to(close),
                        vec![("in_segment.segment_id".into(), id_span)],
                    ),
                ))
            }
            "all" | "any" => self.group_call(name == "any", name_span),
            _ => {
                if let Some((unit, direction)) = time_function(name) {
                    self.relative_time(name, name_span, unit, direction)
                } else if let Some(kind) = engagement(name) {
                    self.engagement(name, name_span, kind)
                } else {
                    let mut message = format!("unknown function `{}`", shorten(name));
                    if let Some(suggestion) = closest(name, &FUNCTIONS) {
                        message.push_str(&format!("; did you mean `{suggestion}`?"));
                    }
                    Err(Failure::new(name_span, message))
                }
            }
        }
    }

    /// `all(rule, …)` or `any(rule, …)`, with any number of rules.
    fn group_call(&mut self, any: bool, name_span: Span) -> PResult<Parsed> {
        let name = self.slice(name_span);
        self.enter(name_span)?;
        self.bump();
        self.bump();
        let mut items = Vec::new();
        if !self.at(&Tok::RParen) {
            loop {
                items.push(self.or_expr()?);
                if !self.at(&Tok::Comma) {
                    break;
                }
                self.bump();
            }
        }
        let close = self.close(&format!("expected `,` or `)` to close `{name}(`"))?;
        self.nesting -= 1;
        Ok(group(items, any, Some(name_span.to(close))))
    }

    fn relative_time(
        &mut self,
        name: &str,
        name_span: Span,
        unit: TimeUnit,
        direction: TimeDirection,
    ) -> PResult<Parsed> {
        self.bump();
        self.bump();
        let (path, path_span) = self.path(&format!("{name}("))?;
        let close = self.close(&format!("expected `)` to close `{name}(`"))?;
        let operator = match self.peek().tok {
            Tok::Cmp(op) => op,
            _ => {
                return Err(self.unexpected(format!(
                    "expected a comparison (`==`, `!=`, `>`, `>=`, `<` or `<=`) after `{}`",
                    shorten(self.slice(name_span.to(close)))
                )));
            }
        };
        let operator_span = self.bump();
        let (value, value_span) = self.whole_number(operator_text(operator))?;
        let condition = RelativeTimeCondition {
            path,
            unit: unit as i32,
            direction: direction as i32,
            operator: operator_proto(operator),
            value,
        };
        let parts = vec![
            ("relative_time.path".into(), path_span),
            ("relative_time.unit".into(), name_span),
            ("relative_time.direction".into(), name_span),
            ("relative_time.operator".into(), operator_span),
            ("relative_time.value".into(), value_span),
        ];
        Ok((
            node(Kind::RelativeTime(condition)),
            Spans::leaf(name_span.to(value_span), parts),
        ))
    }

    /// `performed(…)`, or with `not_span` the `not performed(…)` after `not`: a
    /// not_performed condition when it has no count, else not over performed.
    fn performed(&mut self, not_span: Option<Span>) -> PResult<Parsed> {
        let name_span = self.bump();
        self.bump();
        let (event_name, event_span) = self.string_arg("the event name", "performed(")?;
        let args = self.args("performed", &ARGUMENTS)?;
        let close = self.close("expected `,` or `)` to close `performed(`")?;
        let span = name_span.to(close);
        if let Some((_, since_span, _)) = args.since {
            if not_span.is_none() {
                return Err(Failure::new(
                    since_span,
                    "`since` is only allowed in `not performed(…)`; use `within` here",
                ));
            }
            if let Some((_, _, count_span, _)) = args.count {
                return Err(Failure::new(
                    count_span,
                    "`not performed(…)` with `since` takes no count",
                ));
            }
        }
        match not_span {
            Some(not_span) if args.count.is_none() => {
                let since = match (args.within, args.since) {
                    (Some((within, _)), _) => Some(Since::Within(within)),
                    (_, Some((at, _, _))) => Some(Since::SinceTime(at)),
                    _ => None,
                };
                let mut parts = args.parts("not_performed");
                parts.push(("not_performed.event_name".into(), event_span));
                let condition = NotPerformedCondition {
                    event_name,
                    property_filters: args.filters,
                    since,
                };
                Ok((
                    node(Kind::NotPerformed(condition)),
                    Spans::leaf(not_span.to(close), parts),
                ))
            }
            _ => {
                let mut parts = args.parts("performed");
                parts.push(("performed.event_name".into(), event_span));
                let (count_comparison, count) = args.count();
                let condition = PerformedCondition {
                    event_name,
                    property_filters: args.filters,
                    count_comparison,
                    count,
                    within: args.within.map(|(w, _)| w),
                };
                let parsed = (node(Kind::Performed(condition)), Spans::leaf(span, parts));
                Ok(match not_span {
                    Some(not_span) => negate(parsed, not_span),
                    None => parsed,
                })
            }
        }
    }

    /// `received(…)`, `displayed(…)`, `clicked(…)`, `dismissed(…)` or `converted(…)`.
    fn engagement(&mut self, name: &str, name_span: Span, kind: EngagementKind) -> PResult<Parsed> {
        self.bump();
        self.bump();
        let (campaign_id, id_span) = self.string_arg("the campaign id", &format!("{name}("))?;
        let args = self.args(name, &["within", "at_least", "at_most", "exactly"])?;
        let close = self.close(&format!("expected `,` or `)` to close `{name}(`"))?;
        let mut parts = args.parts("engagement");
        parts.push(("engagement.kind".into(), name_span));
        parts.push(("engagement.campaign_id".into(), id_span));
        let (count_comparison, count) = args.count();
        let condition = EngagementCondition {
            kind: kind as i32,
            campaign_id,
            within: args.within.map(|(w, _)| w),
            count_comparison,
            count,
        };
        Ok((
            node(Kind::Engagement(condition)),
            Spans::leaf(name_span.to(close), parts),
        ))
    }

    // ---- arguments ----------------------------------------------------------------

    /// The `, name: value` arguments of `function(`, each at most once.
    fn args(&mut self, function: &str, allowed: &[&str]) -> PResult<Args> {
        let list = allowed
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut args = Args::default();
        while self.at(&Tok::Comma) {
            self.bump();
            let Some(name) = self.word() else {
                return Err(self.expected(&format!("an argument ({list})")));
            };
            let name_span = self.peek().span;
            if !allowed.contains(&name) {
                let message = if ARGUMENTS.contains(&name) {
                    format!("`{function}(` takes no `{name}`; its arguments are {list}")
                } else if let Some(suggestion) = closest(name, allowed) {
                    format!(
                        "unknown argument `{}`; did you mean `{suggestion}`?",
                        shorten(name)
                    )
                } else {
                    format!(
                        "unknown argument `{}`; the arguments of `{function}(` are {list}",
                        shorten(name)
                    )
                };
                return Err(Failure::new(name_span, message));
            }
            let twice = match name {
                "where" => args.where_span.is_some(),
                "within" => args.within.is_some(),
                "since" => args.since.is_some(),
                _ => false,
            };
            if twice {
                return Err(Failure::new(name_span, format!("`{name}` is given twice")));
            }
            if (name == "within" && args.since.is_some())
                || (name == "since" && args.within.is_some())
            {
                return Err(Failure::new(
                    name_span,
                    "`since` and `within` cannot both be given",
                ));
            }
            let count = COUNTS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
            if count.is_some() && args.count.is_some() {
                return Err(Failure::new(
                    name_span,
                    "only one of `at_least`, `at_most` and `exactly` can be given",
                ));
            }
            self.bump();
            if !self.at(&Tok::Colon) {
                return Err(self.expected("`:`"));
            }
            self.bump();
            let after = format!("{name}:");
            match (name, count) {
                ("where", _) => {
                    args.where_span = Some(name_span);
                    self.filters(&mut args)?;
                }
                ("within", _) => args.within = Some(self.duration(&after)?),
                ("since", _) => {
                    let (at, span) = self.instant(&after)?;
                    args.since = Some((at, name_span, span));
                }
                (_, Some(comparison)) => {
                    let (count, span) = self.count(&after)?;
                    args.count = Some((comparison, count, name_span, span));
                }
                _ => unreachable!("every allowed argument is handled"),
            }
        }
        Ok(args)
    }

    /// `filter { "and" filter }` after `where:`.
    fn filters(&mut self, args: &mut Args) -> PResult<()> {
        let mut after = "where:";
        loop {
            if self.word().is_none_or(|w| RESERVED.contains(&w)) {
                return Err(self.expected_after("a filter", after));
            }
            let c = self.comparison("a filter")?;
            let prefix = format!("property_filters[{}]", args.filters.len());
            args.filter_parts.extend(c.parts(&prefix, "property"));
            args.filters.push(PropertyFilter {
                property: c.path,
                operator: operator_proto(c.operator),
                value: c.value,
            });
            if !self.at_word("and") {
                return Ok(());
            }
            self.bump();
            after = "and";
        }
    }

    fn string_arg(&mut self, what: &str, after: &str) -> PResult<(String, Span)> {
        match &self.peek().tok {
            Tok::Str(s) => {
                let s = s.clone();
                Ok((s, self.bump()))
            }
            _ => Err(self.expected_after(&format!("{what} as a string"), after)),
        }
    }

    fn duration(&mut self, after: &str) -> PResult<(prost_types::Duration, Span)> {
        match self.peek().tok {
            Tok::Duration(seconds) => Ok((prost_types::Duration { seconds, nanos: 0 }, self.bump())),
            Tok::Number { .. } => Err(self.unexpected(format!(
                "expected a duration after `{after}`: a whole number and a unit (s, m, h, d or w), e.g. `7d`"
            ))),
            _ => Err(self.expected_after("a duration such as `7d`", after)),
        }
    }

    fn instant(&mut self, after: &str) -> PResult<(prost_types::Timestamp, Span)> {
        const EXAMPLE: &str = "\"2024-01-01T00:00:00Z\"";
        let token = self.peek().clone();
        let Tok::Str(text) = &token.tok else {
            return Err(
                self.expected_after(&format!("an RFC 3339 instant such as {EXAMPLE}"), after)
            );
        };
        let Ok(at) = text.parse::<jiff::Timestamp>() else {
            return Err(Failure::new(
                token.span,
                format!("expected an RFC 3339 instant such as {EXAMPLE}"),
            ));
        };
        self.bump();
        Ok((herald_core::time::proto(at), token.span))
    }

    fn count(&mut self, after: &str) -> PResult<(u32, Span)> {
        let token = self.peek().clone();
        if token.tok != (Tok::Number { integer: true }) {
            return Err(self.expected_after("a whole number", after));
        }
        let text = self.slice(token.span);
        if text.starts_with('-') {
            return Err(Failure::new(token.span, "a count cannot be negative"));
        }
        let count = text.parse::<u32>().map_err(|_| {
            Failure::new(token.span, format!("a count must be at most {}", u32::MAX))
        })?;
        self.bump();
        Ok((count, token.span))
    }

    fn whole_number(&mut self, after: &str) -> PResult<(i64, Span)> {
        let token = self.peek().clone();
        if token.tok != (Tok::Number { integer: true }) {
            return Err(self.expected_after("a whole number", after));
        }
        let n = self
            .slice(token.span)
            .parse::<i64>()
            .map_err(|_| Failure::new(token.span, "whole number out of range"))?;
        self.bump();
        Ok((n, token.span))
    }

    // ---- comparisons, paths and values --------------------------------------------

    /// `path op literal`, `exists(path)` or `not_exists(path)`; `what` names it in
    /// errors.
    fn comparison(&mut self, what: &str) -> PResult<Comparison> {
        let start = self.peek().span;
        if let Some(name) = self.word().filter(|_| self.at_call()) {
            let operator = match name {
                "exists" => Operator::Exists,
                "not_exists" => Operator::NotExists,
                _ => {
                    return Err(Failure::new(
                        start,
                        format!(
                            "`{}(…)` cannot be used here; {what} is `path op value`, `exists(path)` or `not_exists(path)`",
                            shorten(name)
                        ),
                    ));
                }
            };
            self.bump();
            self.bump();
            let (path, path_span) = self.path(&format!("{name}("))?;
            let close = self.close(&format!("expected `)` to close `{name}(`"))?;
            return Ok(Comparison {
                path,
                operator,
                value: None,
                span: start.to(close),
                path_span,
                operator_span: start,
                value_span: None,
            });
        }
        let (path, path_span) = self.path("")?;
        let token = self.peek().clone();
        let operator = match token.tok {
            Tok::Cmp(op) => Some(op),
            Tok::Ident => word_operator(self.slice(token.span)),
            _ => None,
        };
        let Some(operator) = operator else {
            return Err(self.unexpected(format!(
                "expected an operator such as `==`, `>` or `in` after `{}`",
                shorten(&path)
            )));
        };
        self.bump();
        let (value, value_span) = self.value(1)?;
        Ok(Comparison {
            path,
            operator,
            value: Some(value),
            span: start.to(value_span),
            path_span,
            operator_span: token.span,
            value_span: Some(value_span),
        })
    }

    /// `ident { "." ident }`; `after` names what precedes it in errors.
    fn path(&mut self, after: &str) -> PResult<(String, Span)> {
        let Some(first) = self.word() else {
            return Err(self.expected_after("a path", after));
        };
        if RESERVED.contains(&first) {
            return Err(Failure::new(
                self.peek().span,
                format!("`{first}` is a keyword and cannot start a path"),
            ));
        }
        let start = self.bump();
        let mut end = start;
        let mut path = first.to_owned();
        while self.at(&Tok::Dot) {
            self.bump();
            let Some(key) = self.word() else {
                return Err(self.expected("a key"));
            };
            path.push('.');
            path.push_str(key);
            end = self.bump();
        }
        Ok((path, start.to(end)))
    }

    /// A JSON value at nesting level `depth` (1 for the value itself).
    fn value(&mut self, depth: usize) -> PResult<(Value, Span)> {
        let token = self.peek().clone();
        if depth > MAX_VALUE_DEPTH {
            return Err(Failure::new(
                token.span,
                format!("the value is nested more than {MAX_VALUE_DEPTH} levels deep"),
            ));
        }
        let kind = match &token.tok {
            Tok::Str(s) => ValueKind::StringValue(s.clone()),
            Tok::Number { .. } => {
                let x = self.slice(token.span).parse::<f64>().unwrap_or(f64::NAN);
                if !x.is_finite() {
                    return Err(Failure::new(token.span, "number out of range"));
                }
                ValueKind::NumberValue(x)
            }
            Tok::Ident => match self.slice(token.span) {
                "true" => ValueKind::BoolValue(true),
                "false" => ValueKind::BoolValue(false),
                "null" => ValueKind::NullValue(0),
                word => {
                    let mut failure = self.expected("a value");
                    if !RESERVED.contains(&word) {
                        failure
                            .message
                            .push_str("; strings are written in double quotes");
                    }
                    return Err(failure);
                }
            },
            Tok::LBracket => return self.list(depth),
            Tok::LBrace => return self.object(depth),
            _ => return Err(self.expected("a value")),
        };
        self.bump();
        Ok((Value { kind: Some(kind) }, token.span))
    }

    fn list(&mut self, depth: usize) -> PResult<(Value, Span)> {
        let open = self.bump();
        let mut values = Vec::new();
        if !self.at(&Tok::RBracket) {
            loop {
                values.push(self.value(depth + 1)?.0);
                if !self.at(&Tok::Comma) {
                    break;
                }
                self.bump();
            }
        }
        if !self.at(&Tok::RBracket) {
            return Err(self.unexpected("expected `,` or `]` to close `[`"));
        }
        let close = self.bump();
        let kind = ValueKind::ListValue(ListValue { values });
        Ok((Value { kind: Some(kind) }, open.to(close)))
    }

    fn object(&mut self, depth: usize) -> PResult<(Value, Span)> {
        let open = self.bump();
        let mut fields = std::collections::BTreeMap::new();
        if !self.at(&Tok::RBrace) {
            loop {
                let token = self.peek().clone();
                let Tok::Str(key) = token.tok else {
                    return Err(self.expected("a key in double quotes"));
                };
                if fields.contains_key(&key) {
                    return Err(Failure::new(
                        token.span,
                        format!(
                            "duplicate key `{}` in an object",
                            shorten(self.slice(token.span))
                        ),
                    ));
                }
                self.bump();
                if !self.at(&Tok::Colon) {
                    return Err(self.expected("`:`"));
                }
                self.bump();
                let (value, _) = self.value(depth + 1)?;
                fields.insert(key, value);
                if !self.at(&Tok::Comma) {
                    break;
                }
                self.bump();
            }
        }
        if !self.at(&Tok::RBrace) {
            return Err(self.unexpected("expected `,` or `}` to close `{`"));
        }
        let close = self.bump();
        let kind = ValueKind::StructValue(Struct { fields });
        Ok((Value { kind: Some(kind) }, open.to(close)))
    }
}
