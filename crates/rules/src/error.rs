//! Parse errors: where in the text the first problem is, and what was expected there.

use std::fmt;

use herald_proto::segmentation::v1 as proto;

/// A byte range of the rule text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The empty span at `offset`.
    pub(crate) fn at(offset: usize) -> Span {
        Span::new(offset, offset)
    }

    /// From the start of `self` to the end of `other`.
    pub(crate) fn to(self, other: Span) -> Span {
        Span::new(self.start, other.end.max(self.start))
    }
}

/// An error found while lexing, parsing or checking, before its line and column are
/// known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub span: Span,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Failure {
        Failure {
            span,
            message: message.into(),
        }
    }
}

/// The first error in a rule's text, positioned the way `herald.segmentation.v1.ParseError`
/// documents it: `line` and `column` are 1-based and the column counts characters;
/// `offset` and `length` count bytes, and `length` is 0 when the error is at the end of
/// the text (something is missing there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line of the error's first character.
    pub line: u32,
    /// The 1-based column of the error's first character, in characters.
    pub column: u32,
    /// The 0-based byte offset of the error's first character.
    pub offset: u32,
    /// The length of the offending text in bytes; 0 at the end of the text.
    pub length: u32,
    /// What is wrong, e.g. "expected a value after `==`".
    pub message: String,
}

impl ParseError {
    /// Places `failure` in `text`.
    pub(crate) fn locate(text: &str, failure: Failure) -> ParseError {
        let start = floor_char_boundary(text, failure.span.start.min(text.len()));
        let end = floor_char_boundary(text, failure.span.end.clamp(start, text.len()));
        let before = &text[..start];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        ParseError {
            line: saturate(line),
            column: saturate(column),
            offset: saturate(start),
            length: saturate(end - start),
            message: failure.message,
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for proto::ParseError {
    fn from(e: ParseError) -> Self {
        proto::ParseError {
            line: e.line,
            column: e.column,
            offset: e.offset,
            length: e.length,
            message: e.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, start: usize, end: usize) -> ParseError {
        ParseError::locate(text, Failure::new(Span::new(start, end), "m"))
    }

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let e = at("plan == ", 8, 8);
        assert_eq!((e.line, e.column, e.offset, e.length), (1, 9, 8, 0));
        let text = "a == \"é\"\nand b";
        let e = at(text, text.find('b').unwrap(), text.len());
        assert_eq!((e.line, e.column, e.length), (2, 5, 1));
        let e = at("é == 1", 2, 4);
        assert_eq!((e.line, e.column, e.offset), (1, 2, 2));
    }

    #[test]
    fn spans_inside_a_character_are_moved_to_its_start() {
        let e = at("é", 1, 2);
        assert_eq!((e.offset, e.length, e.column), (0, 2, 1));
    }

    #[test]
    fn converts_to_the_contract() {
        let e: proto::ParseError = at("ab", 1, 2).into();
        assert_eq!((e.line, e.column, e.offset, e.length), (1, 2, 1, 1));
        assert_eq!(e.message, "m");
    }
}
