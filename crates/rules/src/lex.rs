//! The lexer: the rule text as tokens with byte spans. Lexing stops at the first bad
//! character with an [`Tok::Error`] token, so the parser reports it only when it gets
//! there, and an earlier syntax error still comes first.

use herald_conditions::Operator;

use crate::error::{Failure, Span};
use crate::names::DURATION_UNITS;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `[A-Za-z_][A-Za-z0-9_]*`: a keyword, a function or argument name, or a path key.
    Ident,
    /// A JSON string, unescaped.
    Str(String),
    /// A JSON number; `integer` when it has neither fraction nor exponent.
    Number {
        integer: bool,
    },
    /// A whole number with a unit, e.g. `7d`, in seconds.
    Duration(i64),
    /// `==`, `!=`, `>`, `>=`, `<`, `<=`.
    Cmp(Operator),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    /// The end of the text.
    End,
    /// The text cannot be lexed from here on.
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// The tokens of `text`, ending with [`Tok::End`] or [`Tok::Error`].
pub(crate) fn lex(text: &str) -> Vec<Token> {
    let mut lexer = Lexer { text, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        match lexer.token() {
            Ok(token) => {
                let end = token.tok == Tok::End;
                tokens.push(token);
                if end {
                    return tokens;
                }
            }
            Err(failure) => {
                tokens.push(Token {
                    tok: Tok::Error(failure.message),
                    span: failure.span,
                });
                return tokens;
            }
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn token(&mut self) -> Result<Token, Failure> {
        while matches!(self.byte(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(b) = self.byte(start) else {
            return Ok(Token {
                tok: Tok::End,
                span: Span::at(start),
            });
        };
        let next = self.byte(start + 1);
        let (tok, len) = match b {
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b',' => (Tok::Comma, 1),
            b':' => (Tok::Colon, 1),
            b'.' => (Tok::Dot, 1),
            b'=' if next == Some(b'=') => (Tok::Cmp(Operator::Eq), 2),
            b'!' if next == Some(b'=') => (Tok::Cmp(Operator::Ne), 2),
            b'>' if next == Some(b'=') => (Tok::Cmp(Operator::Gte), 2),
            b'<' if next == Some(b'=') => (Tok::Cmp(Operator::Lte), 2),
            b'>' => (Tok::Cmp(Operator::Gt), 1),
            b'<' => (Tok::Cmp(Operator::Lt), 1),
            b'=' => return Err(self.bad(1, "unexpected `=`; compare with `==`")),
            b'!' => return Err(self.bad(1, "unexpected `!`; negate with `not`")),
            b'&' => {
                let len = if next == Some(b'&') { 2 } else { 1 };
                return Err(self.bad(len, "unexpected `&`; combine conditions with `and`"));
            }
            b'|' => {
                let len = if next == Some(b'|') { 2 } else { 1 };
                return Err(self.bad(len, "unexpected `|`; combine conditions with `or`"));
            }
            b'\'' => return Err(self.bad(1, "strings are written in double quotes")),
            b'"' => return self.string(start),
            b'-' | b'0'..=b'9' => return self.number(start),
            b if is_ident_start(b) => {
                let mut end = start + 1;
                while self.byte(end).is_some_and(is_ident_char) {
                    end += 1;
                }
                (Tok::Ident, end - start)
            }
            _ => {
                let c = self.text[start..].chars().next().unwrap_or('?');
                return Err(self.bad(
                    c.len_utf8(),
                    format!("unexpected character `{}`", c.escape_debug()),
                ));
            }
        };
        self.pos = start + len;
        Ok(Token {
            tok,
            span: Span::new(start, start + len),
        })
    }

    fn bad(&self, len: usize, message: impl Into<String>) -> Failure {
        Failure::new(Span::new(self.pos, self.pos + len), message)
    }

    fn digits(&self, mut at: usize) -> usize {
        while self.byte(at).is_some_and(|b| b.is_ascii_digit()) {
            at += 1;
        }
        at
    }

    /// A JSON number, or a whole number directly followed by a unit: a duration.
    fn number(&mut self, start: usize) -> Result<Token, Failure> {
        let negative = self.byte(start) == Some(b'-');
        let int_start = start + usize::from(negative);
        let int_end = match self.byte(int_start) {
            Some(b'0') => {
                let end = self.digits(int_start + 1);
                if end > int_start + 1 {
                    return Err(Failure::new(
                        Span::new(start, end),
                        "numbers cannot have leading zeros",
                    ));
                }
                end
            }
            Some(b'1'..=b'9') => self.digits(int_start + 1),
            _ => {
                return Err(Failure::new(
                    Span::new(start, int_start),
                    "expected a digit after `-`",
                ));
            }
        };
        let mut end = int_end;
        let mut integer = true;
        if self.byte(end) == Some(b'.') {
            let fraction_end = self.digits(end + 1);
            if fraction_end == end + 1 {
                return Err(Failure::new(
                    Span::new(end, end + 1),
                    "expected a digit after `.` in a number",
                ));
            }
            end = fraction_end;
            integer = false;
        }
        if matches!(self.byte(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.byte(end + 1), Some(b'+' | b'-')));
            let exponent_end = self.digits(end + 1 + sign);
            if exponent_end > end + 1 + sign {
                end = exponent_end;
                integer = false;
            } else if sign == 1 {
                return Err(Failure::new(
                    Span::new(end, end + 2),
                    "expected a digit in the exponent of a number",
                ));
            }
        }
        if !self.byte(end).is_some_and(is_ident_char) {
            self.pos = end;
            return Ok(Token {
                tok: Tok::Number { integer },
                span: Span::new(start, end),
            });
        }
        // A unit directly after the number: a duration such as `7d`.
        let unit_start = end;
        while self.byte(end).is_some_and(is_ident_char) {
            end += 1;
        }
        let span = Span::new(start, end);
        if negative {
            return Err(Failure::new(span, "a duration cannot be negative"));
        }
        if !integer {
            return Err(Failure::new(
                span,
                "a duration is a whole number and a unit, e.g. `90m`",
            ));
        }
        let unit = &self.text[unit_start..end];
        let Some((_, seconds)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(Failure::new(
                Span::new(unit_start, end),
                format!("unknown duration unit `{unit}`; use s, m, h, d or w"),
            ));
        };
        let total = self.text[start..int_end]
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(*seconds))
            .ok_or_else(|| Failure::new(span, "duration out of range"))?;
        self.pos = end;
        Ok(Token {
            tok: Tok::Duration(total),
            span,
        })
    }

    /// A JSON string, with its escapes decoded.
    fn string(&mut self, start: usize) -> Result<Token, Failure> {
        let mut out = String::new();
        let mut at = start + 1;
        let unterminated = |text: &str| {
            Failure::new(
                Span::new(start, text.len()),
                "unterminated string; expected a closing `\"`",
            )
        };
        loop {
            let Some(c) = self.text[at..].chars().next() else {
                return Err(unterminated(self.text));
            };
            match c {
                '"' => {
                    at += 1;
                    break;
                }
                '\\' => {
                    let Some(e) = self.text[at + 1..].chars().next() else {
                        return Err(unterminated(self.text));
                    };
                    let decoded = match e {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'u' => {
                            let (c, len) = self.unicode_escape(at)?;
                            out.push(c);
                            at += len;
                            continue;
                        }
                        other => {
                            return Err(Failure::new(
                                Span::new(at, at + 1 + other.len_utf8()),
                                format!("invalid escape `\\{}` in a string", other.escape_debug()),
                            ));
                        }
                    };
                    out.push(decoded);
                    at += 2;
                }
                c if u32::from(c) < 0x20 => {
                    return Err(Failure::new(
                        Span::new(at, at + 1),
                        "control characters in strings must be escaped, e.g. `\\n`",
                    ));
                }
                c => {
                    out.push(c);
                    at += c.len_utf8();
                }
            }
        }
        self.pos = at;
        Ok(Token {
            tok: Tok::Str(out),
            span: Span::new(start, at),
        })
    }

    /// The four hex digits of `\uXXXX` at `at` (the backslash), as a code unit.
    fn hex4(&self, at: usize) -> Result<u32, Failure> {
        let digits = self.text.as_bytes().get(at + 2..at + 6);
        match digits {
            Some(d) if d.iter().all(u8::is_ascii_hexdigit) => {
                let d = std::str::from_utf8(d).unwrap_or("0");
                Ok(u32::from_str_radix(d, 16).unwrap_or(0))
            }
            _ => Err(Failure::new(
                Span::new(at, at + 2),
                "expected four hex digits after `\\u`",
            )),
        }
    }

    /// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, at `at`: the character and the
    /// escape's length in bytes.
    fn unicode_escape(&self, at: usize) -> Result<(char, usize), Failure> {
        let unit = self.hex4(at)?;
        let unpaired = || {
            Failure::new(
                Span::new(at, at + 6),
                format!("unpaired surrogate `\\u{unit:04x}` in a string"),
            )
        };
        match unit {
            0xD800..=0xDBFF => {
                if self.text.as_bytes().get(at + 6..at + 8) != Some(b"\\u") {
                    return Err(unpaired());
                }
                let low = self.hex4(at + 6)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(unpaired());
                }
                let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                char::from_u32(c).map(|c| (c, 12)).ok_or_else(unpaired)
            }
            0xDC00..=0xDFFF => Err(unpaired()),
            _ => char::from_u32(unit).map(|c| (c, 6)).ok_or_else(unpaired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        lex(text).into_iter().map(|t| t.tok).collect()
    }

    fn error(text: &str) -> (String, Span) {
        match lex(text).pop() {
            Some(Token {
                tok: Tok::Error(message),
                span,
            }) => (message, span),
            other => panic!("no error for {text:?}: {other:?}"),
        }
    }

    #[test]
    fn symbols_words_and_spans() {
        let tokens = lex("plan == \"pro\" and\n days_since(x) >= -5");
        let spans: Vec<(usize, usize)> =
            tokens.iter().map(|t| (t.span.start, t.span.end)).collect();
        assert_eq!(
            spans,
            [
                (0, 4),
                (5, 7),
                (8, 13),
                (14, 17),
                (19, 29),
                (29, 30),
                (30, 31),
                (31, 32),
                (33, 35),
                (36, 38),
                (38, 38)
            ]
        );
        assert_eq!(
            toks("a.b != 1 < 2 > 3 <= 4 [ ] { } , :"),
            [
                Tok::Ident,
                Tok::Dot,
                Tok::Ident,
                Tok::Cmp(Operator::Ne),
                Tok::Number { integer: true },
                Tok::Cmp(Operator::Lt),
                Tok::Number { integer: true },
                Tok::Cmp(Operator::Gt),
                Tok::Number { integer: true },
                Tok::Cmp(Operator::Lte),
                Tok::Number { integer: true },
                Tok::LBracket,
                Tok::RBracket,
                Tok::LBrace,
                Tok::RBrace,
                Tok::Comma,
                Tok::Colon,
                Tok::End,
            ]
        );
    }

    #[test]
    fn numbers_follow_json() {
        for (text, integer) in [
            ("0", true),
            ("-12", true),
            ("1.5", false),
            ("2e10", false),
            ("-0.5E-3", false),
            ("1e+2", false),
        ] {
            assert_eq!(toks(text), [Tok::Number { integer }, Tok::End], "{text}");
        }
        assert_eq!(error("01").0, "numbers cannot have leading zeros");
        assert_eq!(error("- 1").0, "expected a digit after `-`");
        assert_eq!(error("1.").0, "expected a digit after `.` in a number");
        assert_eq!(
            error("1e+").0,
            "expected a digit in the exponent of a number"
        );
    }

    #[test]
    fn durations_are_whole_numbers_with_a_unit() {
        for (text, seconds) in [
            ("45s", 45),
            ("30m", 1800),
            ("12h", 43_200),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("0m", 0),
        ] {
            assert_eq!(toks(text), [Tok::Duration(seconds), Tok::End], "{text}");
        }
        assert_eq!(
            error("7days").0,
            "unknown duration unit `days`; use s, m, h, d or w"
        );
        assert_eq!(error("7days").1, Span::new(1, 5));
        assert_eq!(
            error("1e").0,
            "unknown duration unit `e`; use s, m, h, d or w"
        );
        assert_eq!(
            error("1.5d").0,
            "a duration is a whole number and a unit, e.g. `90m`"
        );
        assert_eq!(error("-7d").0, "a duration cannot be negative");
        assert_eq!(error("99999999999999999999w").0, "duration out of range");
    }

    #[test]
    fn strings_follow_json() {
        assert_eq!(
            toks(r#""a\"b\\c\/\n\t\r\b\f\u00e9\ud83d\ude00""#),
            [Tok::Str("a\"b\\c/\n\t\r\u{8}\u{c}é😀".into()), Tok::End]
        );
        assert_eq!(toks("\"é ü\""), [Tok::Str("é ü".into()), Tok::End]);
        assert_eq!(
            error("\"abc").0,
            "unterminated string; expected a closing `\"`"
        );
        assert_eq!(error("x \"abc").1, Span::new(2, 6));
        assert_eq!(
            error(r#""a\qb""#),
            ("invalid escape `\\q` in a string".into(), Span::new(2, 4))
        );
        assert_eq!(error(r#""\u12""#).0, "expected four hex digits after `\\u`");
        assert_eq!(
            error(r#""\ud800x""#).0,
            "unpaired surrogate `\\ud800` in a string"
        );
        assert_eq!(
            error(r#""\udc00""#).0,
            "unpaired surrogate `\\udc00` in a string"
        );
        assert_eq!(
            error("\"a\nb\"").0,
            "control characters in strings must be escaped, e.g. `\\n`"
        );
    }

    #[test]
    fn habits_from_other_languages_get_a_hint() {
        assert_eq!(error("a = 1").0, "unexpected `=`; compare with `==`");
        assert_eq!(
            error("a && b").0,
            "unexpected `&`; combine conditions with `and`"
        );
        assert_eq!(error("a && b").1, Span::new(2, 4));
        assert_eq!(
            error("a || b").0,
            "unexpected `|`; combine conditions with `or`"
        );
        assert_eq!(error("!a").0, "unexpected `!`; negate with `not`");
        assert_eq!(error("a == 'x'").0, "strings are written in double quotes");
        assert_eq!(
            error("a @ b"),
            ("unexpected character `@`".into(), Span::new(2, 3))
        );
        assert_eq!(error("é").1, Span::new(0, 2));
    }

    #[test]
    fn lexing_stops_at_the_first_error() {
        let tokens = toks("a == 1 @ \"unterminated");
        assert_eq!(tokens.len(), 4);
        assert!(matches!(tokens[3], Tok::Error(_)));
    }
}
