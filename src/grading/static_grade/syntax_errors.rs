//! What a script with syntax errors still says: its unbalanced brackets,
//! named as Python names them (the tree often puts the error far below the
//! line that caused it), and its definitions read line by line.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::SyntaxError;

/// At most this many syntax errors are listed: one broken line can make
/// the parser flag hundreds.
pub(super) const MAX_SYNTAX_ERRORS: usize = 20;

/// Definitions found by line pattern: a syntax error can break the tree
/// around them, not the lines.
#[derive(Debug, Default)]
pub(super) struct TextDefinitions {
    pub(super) classes: HashSet<String>,
    pub(super) functions: HashSet<String>,
    pub(super) main_entry: bool,
}

/// Unclosed and unmatched brackets, named as Python names them: the tree
/// often puts the error far below the line that caused it.
/// Each error comes with its byte offset.
pub(super) fn bracket_errors(source: &str) -> Vec<(SyntaxError, usize)> {
    // (opener, line, line start, offset): the column is counted only for
    // the few brackets reported, so one long line stays linear.
    let mut open: Vec<(u8, usize, usize, usize)> = Vec::new();
    let mut errors = Vec::new();
    let bytes = source.as_bytes();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    let column = |at: usize, line_start: usize| {
        source
            .get(line_start..at)
            .map_or(1, |s| s.chars().count() + 1)
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            b'#' => {
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(&[quote, quote, quote]);
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 1,
                        b'\n' if !triple => break,
                        b'\n' => {
                            line += 1;
                            line_start = i + 1;
                        }
                        b if b == quote
                            && (!triple || bytes[i..].starts_with(&[quote, quote, quote])) =>
                        {
                            i += if triple { 2 } else { 0 };
                            break;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == b'\n' {
                    continue;
                }
            }
            b'(' | b'[' | b'{' => open.push((bytes[i], line, line_start, i)),
            close @ (b')' | b']' | b'}') => {
                let expected = match close {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                let message = match open.pop() {
                    Some((opener, ..)) if opener == expected => None,
                    Some((opener, ..)) => Some(format!(
                        "closing `{}` does not match `{}`",
                        close as char, opener as char
                    )),
                    None => Some(format!("unmatched `{}`", close as char)),
                };
                if let Some(message) = message {
                    let error = SyntaxError {
                        line,
                        column: column(i, line_start),
                        message,
                    };
                    errors.push((error, i));
                }
            }
            _ => {}
        }
        if errors.len() >= MAX_SYNTAX_ERRORS {
            return errors;
        }
        i += 1;
    }
    if let Some(&(opener, line, line_start, at)) = open.first() {
        let error = SyntaxError {
            line,
            column: column(at, line_start),
            message: format!("`{}` was never closed", opener as char),
        };
        errors.insert(0, (error, at));
    }
    errors
}

pub(super) fn text_definitions(source: &str) -> TextDefinitions {
    static DEFINITION: OnceLock<Regex> = OnceLock::new();
    let definition = DEFINITION.get_or_init(|| {
        Regex::new(r#"^([ \t]*)(?:(?:async[ \t]+)?(def)|(class))[ \t]+([A-Za-z_]\w*)|^if[ \t]+__name__[ \t]*==[ \t]*['"]__main__['"]"#)
            .expect("the definition pattern is valid")
    });
    let mut found = TextDefinitions::default();
    let mut class: Option<&str> = None;
    for line in source.lines() {
        let Some(captures) = definition.captures(line) else {
            continue;
        };
        let Some(name) = captures.get(4).map(|m| m.as_str()) else {
            found.main_entry = true;
            class = None;
            continue;
        };
        let indented = captures.get(1).is_some_and(|m| !m.as_str().is_empty());
        if captures.get(3).is_some() {
            if !indented {
                found.classes.insert(name.to_string());
                class = Some(name);
            }
        } else if !indented {
            found.functions.insert(name.to_string());
            class = None;
        } else if let Some(class) = class {
            found.functions.insert(format!("{class}.{name}"));
        }
    }
    found
}
