//! Two answer shapes the "most definitions, then longest" rule misjudges: a
//! script given in consecutive parts (none holds every definition, together
//! they do), and a full script followed by an optional variant of it (the
//! variant ties on definitions and is longer, yet is not the answer).

use std::collections::HashSet;

use super::choose::defined_name;
use super::fences::Block;

/// The definitions of a block: `Class.method` for the methods of a class the
/// block opens, the bare name for everything else (top-level `def`/`class`,
/// or an indented `def` with no class header, as a snippet shows a method).
#[derive(Default)]
struct Keys<'a> {
    qualified: HashSet<String>,
    /// Names defined outside any class header of the block.
    loose: HashSet<&'a str>,
    /// Bare names of the methods in `qualified`.
    methods: HashSet<&'a str>,
}

fn keys(text: &str) -> Keys<'_> {
    let mut keys = Keys::default();
    let mut class: Option<&str> = None;
    let mut method_indent: Option<usize> = None;
    for line in crate::grading::lines::split(text) {
        let Some(name) = defined_name(line) else {
            continue;
        };
        let body = line.strip_prefix('+').unwrap_or(line);
        let code = body.trim_start_matches([' ', '\t']);
        let indent = body.len() - code.len();
        if indent == 0 {
            keys.qualified.insert(name.to_string());
            keys.loose.insert(name);
            class = code.starts_with("class").then_some(name);
            method_indent = None;
            continue;
        }
        match class {
            // Only the class's own methods: a def nested in one is deeper.
            Some(owner) if *method_indent.get_or_insert(indent) == indent => {
                keys.qualified.insert(format!("{owner}.{name}"));
                keys.methods.insert(name);
            }
            Some(_) => {}
            None => {
                keys.loose.insert(name);
            }
        }
    }
    keys
}

/// Whether two blocks define a same thing (a recap repeats a method): such
/// blocks are versions of each other, never parts of one script.
fn overlap(a: &Keys, b: &Keys) -> bool {
    !a.qualified.is_disjoint(&b.qualified)
        || !a.loose.is_disjoint(&b.loose)
        || !a.loose.is_disjoint(&b.methods)
        || !b.loose.is_disjoint(&a.methods)
}

/// A block that may take part in a join: a Python block (not a diff).
pub(super) struct Part<'b> {
    pub(super) block: &'b Block,
    pub(super) python: bool,
}

/// The shortest run of consecutive Python blocks (first such run on a tie)
/// that together hold every wanted definition, with no definition in two of
/// them: `(first, last)` positions in `parts`. Only for answers where no
/// single block holds them all.
pub(super) fn joined_run(parts: &[Part], wanted: &HashSet<&str>) -> Option<(usize, usize)> {
    if wanted.is_empty() {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    for start in 0..parts.len() {
        let mut seen: Vec<Keys> = Vec::new();
        let mut covered: HashSet<&str> = HashSet::new();
        for end in start..parts.len() {
            let part = &parts[end];
            let follows = end == start || part.block.index == parts[end - 1].block.index + 1;
            if !part.python || !follows {
                break;
            }
            let these = keys(&part.block.text);
            if seen.iter().any(|k| overlap(k, &these)) {
                break;
            }
            seen.push(these);
            covered.extend(
                super::choose::definition_names(&part.block.text)
                    .into_iter()
                    .filter(|n| wanted.contains(n)),
            );
            if covered.len() == wanted.len() {
                let shorter = best.is_none_or(|(s, e)| end - start < e - s);
                if end > start && shorter {
                    best = Some((start, end));
                }
                break;
            }
        }
    }
    best
}

/// The blocks' texts one after the other, each ending with a newline.
pub(super) fn join_texts<'b>(blocks: impl Iterator<Item = &'b Block>) -> String {
    let mut script = String::new();
    for block in blocks {
        script.push_str(&block.text);
        if !script.ends_with('\n') {
            script.push('\n');
        }
    }
    script
}

/// Words by which an answer introduces a block as something besides the
/// answer. English only: the models asked answer in English.
const OPTIONAL_WORDS: [&str; 15] = [
    "optional",
    "optionally",
    "alternative",
    "alternatively",
    "variant",
    "if you want",
    "if you'd like",
    "if you would like",
    "if you prefer",
    "if you'd prefer",
    "if you'd rather",
    "if you would rather",
    "bonus",
    "extra",
    "another version",
];

/// The word by which the prose before a block introduces it as optional or
/// an alternative, read in the prose's last paragraph only (the block's own
/// introduction, not the comments on the block before).
pub(super) fn optional_intro(before: &str) -> Option<&'static str> {
    let last = before
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .last()?;
    let mut words = String::from(" ");
    for c in last.chars() {
        let c = if c == '\u{2019}' { '\'' } else { c };
        if c.is_alphanumeric() || c == '\'' {
            words.extend(c.to_lowercase());
        } else if !words.ends_with(' ') {
            words.push(' ');
        }
    }
    words.push(' ');
    OPTIONAL_WORDS
        .into_iter()
        .find(|w| words.contains(&format!(" {w} ")))
}

/// Whether a block is the original script given back unchanged (lines
/// compared without trailing blanks, blank lines skipped): an echo, never
/// the answer's preferred version.
pub(super) fn is_echo(text: &str, original: &str) -> bool {
    let significant = |s: &str| -> Vec<String> {
        crate::grading::lines::split(s)
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    significant(text) == significant(original)
}
