//! Text reduced for comparing and for details: whitespace taken out or
//! folded, a statement normalised, a string literal's value, an excerpt.

use std::borrow::Cow;

/// Text without any whitespace: a key that formatting cannot change.
/// Borrowed when there is none, as in nearly every expression.
pub(super) fn compact(text: &str) -> Cow<'_, str> {
    if text.contains(char::is_whitespace) {
        Cow::Owned(text.chars().filter(|c| !c.is_whitespace()).collect())
    } else {
        Cow::Borrowed(text)
    }
}

pub(super) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most 80 characters, for details.
pub(super) fn shorten(text: &str) -> String {
    const LIMIT: usize = 80;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The value of a simple string literal: `"Reset"` → `Reset`.
pub(super) fn string_value(literal: &str) -> String {
    let body = literal.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    for quote in [r#"""""#, "'''", "\"", "'"] {
        if let Some(inner) = body.strip_prefix(quote).and_then(|b| b.strip_suffix(quote)) {
            return inner.to_string();
        }
    }
    body.to_string()
}

/// A label as Python reads its literal's escapes: `\U0001F5D1` is the 🗑 a
/// person sees (`\u`, `\U`, `\x` and `\N{…}` left as written); the label
/// matched against the reset pattern as the harness matches it.
pub(super) fn unescaped(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = match after.chars().next() {
            Some('x') => 2,
            Some('u') => 4,
            Some('U') => 8,
            _ => 0,
        };
        let code = after
            .get(1..1 + digits)
            .filter(|hex| digits > 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &after[1 + digits..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

pub(super) fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}

/// A statement's text with comments, formatting and quote style taken out,
/// in one pass over its bytes: whitespace survives only between two word
/// characters, strings get double quotes, and a comma before a closing
/// bracket goes.
pub(super) fn normalise(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut spaced = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'\\' => {
                // A backslash outside strings only continues a line.
                spaced = true;
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                spaced = true;
            }
            b',' if closes_next(bytes, i + 1) => i += 1,
            b'"' | b'\'' => {
                let quote_len = if bytes[i..].starts_with(&[byte, byte, byte]) {
                    3
                } else {
                    1
                };
                let start = i + quote_len;
                let mut end = start;
                while end < bytes.len() {
                    if bytes[end] == b'\\' {
                        end += 2;
                        continue;
                    }
                    let closed = if quote_len == 3 {
                        bytes[end..].starts_with(&[byte, byte, byte])
                    } else {
                        bytes[end] == byte || bytes[end] == b'\n'
                    };
                    if closed {
                        break;
                    }
                    end += 1;
                }
                let end = end.min(bytes.len());
                out.extend(std::iter::repeat_n(b'"', quote_len));
                out.extend_from_slice(&bytes[start.min(end)..end]);
                out.extend(std::iter::repeat_n(b'"', quote_len));
                spaced = false;
                i = end + quote_len;
            }
            _ => {
                if spaced && is_word_byte(byte) && out.last().is_some_and(|b| is_word_byte(*b)) {
                    out.push(b' ');
                }
                spaced = false;
                out.push(byte);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were dropped or replaced, so this is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The next character after `from`, past blanks and comments, closes a
/// bracket.
fn closes_next(bytes: &[u8], from: usize) -> bool {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b'\\' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b')' | b']' | b'}' => return true,
            _ => return false,
        }
    }
    false
}
