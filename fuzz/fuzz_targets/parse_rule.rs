//! The rule parser against any text: it never panics, a rule it accepts has a canonical
//! text that reads back as the same tree and formats to the same text again, and an
//! error it reports is placed inside the text as `ParseError` documents it.

#![no_main]

use herald_rules::{ParseError, check, format, normalize, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(rule) => {
            // The parser checks what it returns, and returns trees in normal form.
            assert_eq!(check(&rule), Ok(()), "parsed rule fails check: {text:?}");
            assert_eq!(
                normalize(&rule),
                rule,
                "parsed rule is not normal: {text:?}"
            );
            let canonical = format(&rule);
            let reparsed = parse(&canonical).unwrap_or_else(|e| {
                panic!("canonical text {canonical:?} of {text:?} does not parse: {e}")
            });
            assert_eq!(
                reparsed, rule,
                "canonical text {canonical:?} of {text:?} parses to another tree"
            );
            assert_eq!(
                format(&reparsed),
                canonical,
                "canonical text of {text:?} is not a fixed point"
            );
        }
        Err(error) => located_inside(text, &error),
    }
});

/// `error` points at whole characters of `text`, and its line and column (1-based,
/// columns in characters) are those of its offset.
fn located_inside(text: &str, error: &ParseError) {
    let start = error.offset as usize;
    let end = start + error.length as usize;
    assert!(
        end <= text.len(),
        "error {error:?} ends past the text ({} bytes): {text:?}",
        text.len()
    );
    assert!(
        text.is_char_boundary(start) && text.is_char_boundary(end),
        "error {error:?} splits a character: {text:?}"
    );
    assert!(
        error.line >= 1 && error.column >= 1,
        "error {error:?} has a line or column of 0: {text:?}"
    );
    assert!(
        !error.message.is_empty(),
        "error without a message: {text:?}"
    );
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    assert_eq!(
        (error.line as usize, error.column as usize),
        (line, column),
        "error {error:?} has the line and column of another offset: {text:?}"
    );
}
