//! Choosing the block: each fenced block classified (Python, a diff, or
//! dropped with why), and the one holding most of the original's
//! definitions taken.

use std::collections::HashSet;

use super::diff::looks_like_diff;
use super::fences::Block;
use super::unfenced::classify_lines;
use super::{Extracted, ScriptSource};

const PYTHON_TAGS: [&str; 10] = [
    "python", "py", "python3", "py3", "python2", "pyqt", "pyqt5", "ipython", "pycon", "pyw",
];
const DIFF_TAGS: [&str; 4] = ["diff", "patch", "udiff", "git-diff"];
const SHELL_TAGS: [&str; 14] = [
    "bash",
    "sh",
    "shell",
    "zsh",
    "console",
    "shell-session",
    "shellsession",
    "terminal",
    "powershell",
    "ps",
    "ps1",
    "cmd",
    "bat",
    "fish",
];
const OTHER_LANGUAGE_TAGS: [&str; 26] = [
    "json",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "html",
    "xml",
    "css",
    "javascript",
    "js",
    "typescript",
    "ts",
    "c",
    "cpp",
    "c++",
    "java",
    "rust",
    "go",
    "sql",
    "markdown",
    "md",
    "dockerfile",
    "makefile",
    "csv",
    "qml",
];
const COMMAND_WORDS: [&str; 30] = [
    "pip", "pip3", "pipx", "python", "python3", "py", "conda", "mamba", "uv", "poetry", "apt",
    "apt-get", "sudo", "brew", "git", "patch", "cd", "export", "set", "source", "chmod", "mkdir",
    "ls", "cat", "echo", "ollama", "curl", "wget", "docker", "npm",
];

enum BlockKind {
    Python,
    Diff,
    Dropped(String),
}

fn classify_block(block: &Block) -> BlockKind {
    let lang = block.lang.as_str();
    if SHELL_TAGS.contains(&lang) {
        return BlockKind::Dropped("shell command".into());
    }
    if DIFF_TAGS.contains(&lang) || looks_like_diff(&block.text) {
        return BlockKind::Diff;
    }
    if is_shell(&block.text) {
        return BlockKind::Dropped("shell command".into());
    }
    if PYTHON_TAGS.contains(&lang) || lang.ends_with(".py") {
        return BlockKind::Python;
    }
    if OTHER_LANGUAGE_TAGS.contains(&lang) {
        return BlockKind::Dropped(format!("{lang}, not Python"));
    }
    let lines: Vec<&str> = crate::grading::lines::lines(&block.text).collect();
    let kinds = classify_lines(&lines);
    let code = kinds.iter().filter(|k| k.is_code()).count();
    let significant = kinds.iter().filter(|k| k.is_significant()).count();
    if code > 0 && code * 2 >= significant {
        BlockKind::Python
    } else if block.text.trim().is_empty() {
        BlockKind::Dropped("empty".into())
    } else {
        BlockKind::Dropped("not code (prose or program output)".into())
    }
}

/// Every non-comment line is a shell or pip command.
fn is_shell(text: &str) -> bool {
    let mut commands = 0;
    for line in crate::grading::lines::lines(text) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("$ ")
            .or_else(|| line.strip_prefix("> "))
            .or_else(|| line.strip_prefix("PS> "))
            .unwrap_or(line);
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        // `python = 3` or `python.run()` would be Python, not a command.
        let second = words.next().unwrap_or("");
        let is_command = COMMAND_WORDS.contains(&first)
            && !second.starts_with(['=', '.', '('])
            && !first.contains(['(', '=']);
        if !is_command {
            return false;
        }
        commands += 1;
    }
    commands > 0
}

/// The `def`/`class` names of a script (or of the added and context lines
/// of a diff), found line by line so that a syntax error hides none. A
/// hand-written scan: it runs on every block of every answer, and a regex
/// with captures cost more than the rest of extraction.
pub fn definition_names(script: &str) -> HashSet<&str> {
    crate::grading::lines::split(script)
        .filter_map(defined_name)
        .collect()
}

/// `name` for a line `[+][ \t]*[async[ \t]+](def|class)[ \t]+name…`.
fn defined_name(line: &str) -> Option<&str> {
    let blank = |c: char| c == ' ' || c == '\t';
    let rest = line
        .strip_prefix('+')
        .unwrap_or(line)
        .trim_start_matches(blank);
    let rest = match rest.strip_prefix("async") {
        Some(after) if after.starts_with(blank) => after.trim_start_matches(blank),
        _ => rest,
    };
    let after = rest
        .strip_prefix("def")
        .or_else(|| rest.strip_prefix("class"))?;
    let name = after.strip_prefix(blank)?.trim_start_matches(blank);
    let end = name
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    let name = &name[..end];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

struct Candidate<'b> {
    block: &'b Block,
    is_diff: bool,
    covered: usize,
}

/// Picks the block that is the refactored script: most of the original's
/// definitions, then the longest, then the last.
pub(super) fn choose_block(
    blocks: &[Block],
    original: Option<&str>,
    notes: &mut Vec<String>,
) -> Option<Extracted> {
    let wanted = original.map(definition_names).unwrap_or_default();
    let mut candidates = Vec::new();
    for block in blocks {
        let is_diff = match classify_block(block) {
            BlockKind::Python => false,
            BlockKind::Diff => true,
            BlockKind::Dropped(why) => {
                notes.push(format!("{} dropped: {why}", block.describe()));
                continue;
            }
        };
        let covered = definition_names(&block.text)
            .iter()
            .filter(|name| wanted.contains(*name))
            .count();
        candidates.push(Candidate {
            block,
            is_diff,
            covered,
        });
    }
    let best = candidates
        .iter()
        .max_by_key(|c| (c.covered, c.block.text.len(), c.block.index))?;
    for other in candidates
        .iter()
        .filter(|c| c.block.index != best.block.index)
    {
        let why = if !wanted.is_empty() && other.covered < best.covered {
            format!(
                "has {} of the original's {} definitions, block {} has {}",
                other.covered,
                wanted.len(),
                best.block.index,
                best.covered
            )
        } else {
            format!("shorter than block {}", best.block.index)
        };
        notes.push(format!("{} dropped: {why}", other.block.describe()));
    }
    Some(Extracted {
        script: best.block.text.clone(),
        source: if best.is_diff {
            ScriptSource::Diff
        } else {
            ScriptSource::FencedBlock
        },
        block_index: Some(best.block.index),
        notes: Vec::new(),
    })
}
