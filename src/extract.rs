//! From a model's raw answer to the script to run: fenced blocks, reasoning
//! (`<think>`) removed, shell lines dropped, diffs recognised, and the block
//! that best covers the original chosen. Pure: no IO.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ScriptSource {
    /// The whole answer is the script (a plain `.py` file).
    WholeFile,
    /// One fenced block of a Markdown answer.
    FencedBlock,
    /// Code with prose around it and no fence.
    Unfenced,
    /// A unified diff instead of a script.
    Diff,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extracted {
    pub script: String,
    pub source: ScriptSource,
    /// Index (from 1) of the chosen fenced block, in the answer's order.
    pub block_index: Option<usize>,
    /// What was dropped, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ExtractError {
    #[error("no code: the answer holds no Python code block or script")]
    NoCode,
}

struct Block {
    index: usize,
    lang: String,
    text: String,
}

fn think_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?is)<(think|thinking)>.*?</(think|thinking)>").expect("valid regex"))
}

fn definition_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?m)^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_][A-Za-z0-9_]*)").expect("valid regex"))
}

/// The `def`/`class` names of a script, in order.
pub fn definition_names(script: &str) -> Vec<&str> {
    definition_regex()
        .captures_iter(script)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect()
}

pub fn extract(raw: &str, original: Option<&str>) -> Result<Extracted, ExtractError> {
    let mut notes = Vec::new();
    let text = raw.strip_prefix('\u{feff}').unwrap_or(raw).replace("\r\n", "\n").replace('\r', "\n");
    let mut text = think_regex()
        .replace_all(&text, |_: &regex::Captures| {
            notes.push("reasoning (<think>…</think>) dropped, with any draft code in it".to_string());
            String::new()
        })
        .into_owned();
    // An unterminated <think> at the start: everything after it is thinking.
    let trimmed = text.trim_start().to_ascii_lowercase();
    if trimmed.starts_with("<think>") || trimmed.starts_with("<thinking>") {
        notes.push("an unterminated <think> block holds the rest of the answer".into());
        text.clear();
    }
    notes.dedup();

    let blocks = fenced_blocks(&text);
    if blocks.is_empty() {
        return unfenced(&text, notes);
    }
    let wanted: Vec<&str> = original.map(definition_names).unwrap_or_default();
    let mut best: Option<(&Block, (usize, usize))> = None;
    let mut diff_block: Option<&Block> = None;
    for block in &blocks {
        if is_shell(block) {
            notes.push(format!(
                "block {} ({}, {} line(s)) dropped: shell command or output",
                block.index,
                if block.lang.is_empty() { "no language" } else { &block.lang },
                block.text.lines().count()
            ));
            continue;
        }
        if block.lang == "diff" || block.lang == "patch" || looks_like_diff(&block.text) {
            diff_block.get_or_insert(block);
            continue;
        }
        if !looks_like_python(&block.text) {
            notes.push(format!("block {} ({}) dropped: not Python", block.index, block.lang));
            continue;
        }
        let names = definition_names(&block.text);
        let covered = wanted.iter().filter(|w| names.contains(w)).count();
        let score = (covered, block.text.len());
        if best.as_ref().is_none_or(|(_, s)| score > *s) {
            best = Some((block, score));
        }
    }
    if let Some((chosen, _)) = best {
        for block in &blocks {
            if block.index != chosen.index && !is_shell(block) && looks_like_python(&block.text) {
                notes.push(format!("block {} dropped: block {} covers the original better", block.index, chosen.index));
            }
        }
        return Ok(Extracted {
            script: chosen.text.clone(),
            source: ScriptSource::FencedBlock,
            block_index: Some(chosen.index),
            notes,
        });
    }
    if let Some(block) = diff_block {
        return Ok(Extracted {
            script: block.text.clone(),
            source: ScriptSource::Diff,
            block_index: Some(block.index),
            notes,
        });
    }
    Err(ExtractError::NoCode)
}

/// Fenced blocks (``` or ~~~, three or more); an unclosed fence runs to the end.
fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, String, Vec<&str>)> = None;
    for line in text.split('\n') {
        let trimmed = line.trim_start();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map(|c| trimmed.chars().take_while(|x| *x == c).count()).unwrap_or(0);
        match &mut open {
            None if run >= 3 => {
                let info = trimmed[run..].trim().to_ascii_lowercase();
                let lang = info.split_whitespace().next().unwrap_or("").trim_matches('{').to_string();
                open = Some((fence_char.expect("run > 0"), run, lang, Vec::new()));
            }
            None => {}
            Some((c, n, _, _)) if fence_char == Some(*c) && run >= *n && trimmed[run..].trim().is_empty() => {
                let (_, _, lang, lines) = open.take().expect("open");
                blocks.push(Block {
                    index: blocks.len() + 1,
                    lang,
                    text: join_lines(&lines),
                });
            }
            Some((_, _, _, lines)) => lines.push(line),
        }
    }
    if let Some((_, _, lang, lines)) = open {
        blocks.push(Block {
            index: blocks.len() + 1,
            lang,
            text: join_lines(&lines),
        });
    }
    blocks
}

fn join_lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn is_shell(block: &Block) -> bool {
    if matches!(block.lang.as_str(), "bash" | "sh" | "shell" | "console" | "zsh" | "powershell" | "cmd" | "shell-session") {
        return true;
    }
    let lines: Vec<&str> = block.text.lines().filter(|l| !l.trim().is_empty()).collect();
    !lines.is_empty()
        && lines.iter().all(|l| {
            let l = l.trim_start();
            l.starts_with("pip ") || l.starts_with("pip3 ") || l.starts_with("$ ") || l.starts_with("python ") || l.starts_with("python3 ") || l.starts_with("sudo ") || l.starts_with("apt")
        })
}

fn looks_like_diff(text: &str) -> bool {
    let mut headers = 0;
    let mut hunks = 0;
    for line in text.lines() {
        if line.starts_with("--- ") || line.starts_with("+++ ") {
            headers += 1;
        } else if line.starts_with("@@ ") {
            hunks += 1;
        }
    }
    hunks > 0 && (headers >= 2 || hunks >= 1 && text.lines().filter(|l| l.starts_with('+') || l.starts_with('-')).count() * 2 > text.lines().count())
}

fn is_code_line(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() {
        return false;
    }
    const STARTS: [&str; 22] = [
        "import ", "from ", "def ", "class ", "if ", "elif ", "else:", "for ", "while ", "return", "self.", "@", "try:", "except", "with ", "finally:", "raise ", "pass", "#", "async ", "super(", "print(",
    ];
    line.starts_with("    ")
        || line.starts_with('\t')
        || STARTS.iter().any(|s| t.starts_with(s))
        || (t.contains(" = ") && !t.ends_with('.') && t.split_whitespace().count() < 12)
        || (t.ends_with(')') && t.contains('(') && !t.contains(". "))
}

fn looks_like_python(text: &str) -> bool {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return false;
    }
    let code = lines.iter().filter(|l| is_code_line(l)).count();
    code * 10 >= lines.len() * 6
}

/// No fence: the whole answer, the longest code-looking run, or a diff.
fn unfenced(text: &str, notes: Vec<String>) -> Result<Extracted, ExtractError> {
    if looks_like_diff(text) {
        return Ok(Extracted {
            script: text.to_string(),
            source: ScriptSource::Diff,
            block_index: None,
            notes,
        });
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let non_empty = lines.iter().filter(|l| !l.trim().is_empty()).count();
    let code = lines.iter().filter(|l| is_code_line(l)).count();
    if non_empty > 0 && code * 10 >= non_empty * 9 {
        return Ok(Extracted {
            script: text.to_string(),
            source: ScriptSource::WholeFile,
            block_index: None,
            notes,
        });
    }
    // The longest run of code lines (blank lines inside it allowed).
    let (mut best, mut start, mut count, mut best_count) = ((0, 0), None, 0, 0);
    for (i, line) in lines.iter().enumerate() {
        if is_code_line(line) {
            let s = *start.get_or_insert(i);
            count += 1;
            if count > best_count {
                best_count = count;
                best = (s, i + 1);
            }
        } else if !line.trim().is_empty() {
            start = None;
            count = 0;
        }
    }
    if best_count >= 5 && definition_regex().is_match(&lines[best.0..best.1].join("\n")) {
        let mut notes = notes;
        notes.push(format!("no fence: took lines {}-{} as the script, prose around them dropped", best.0 + 1, best.1));
        return Ok(Extracted {
            script: join_lines(&lines[best.0..best.1]),
            source: ScriptSource::Unfenced,
            block_index: None,
            notes,
        });
    }
    Err(ExtractError::NoCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "import sys\nclass App:\n    def init_ui(self):\n        pass\n    def submit(self):\n        pass\n";

    #[test]
    fn picks_the_block_that_covers_the_original() {
        let raw = "Install:\n```bash\npip install PyQt5\n```\nDraft:\n```python\ndef reset(self):\n    self.h = []\n```\nFull:\n```python\nimport sys\nclass App:\n    def init_ui(self):\n        pass\n    def submit(self):\n        pass\n    def reset(self):\n        pass\n```\n";
        let e = extract(raw, Some(ORIGINAL)).unwrap();
        assert_eq!(e.block_index, Some(3));
        assert!(e.script.contains("def submit"));
        assert!(e.notes.iter().any(|n| n.contains("shell")));
    }

    #[test]
    fn code_inside_thinking_is_never_chosen() {
        let raw = "<think>\nmaybe:\n```python\nimport sys\nclass App:\n    def init_ui(self): pass\n    def submit(self): pass\n```\n</think>\nHere it is:\n```python\nclass App:\n    def init_ui(self):\n        x = 1\n```\n";
        let e = extract(raw, Some(ORIGINAL)).unwrap();
        assert!(e.script.contains("x = 1"));
        assert!(e.notes.iter().any(|n| n.contains("think")));
    }

    #[test]
    fn a_plain_script_is_taken_whole_and_crlf_normalised() {
        let e = extract("import sys\r\n\r\ndef main():\r\n    print(1)\r\n", None).unwrap();
        assert_eq!(e.source, ScriptSource::WholeFile);
        assert!(!e.script.contains('\r'));
    }

    #[test]
    fn a_diff_is_recognised() {
        let raw = "```diff\n--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,3 @@\n import sys\n+import os\n```\n";
        assert_eq!(extract(raw, None).unwrap().source, ScriptSource::Diff);
    }

    #[test]
    fn prose_only_is_no_code() {
        assert_eq!(extract("Sure! Add a QPushButton and connect it to a method that clears the list.", None).unwrap_err(), ExtractError::NoCode);
        assert_eq!(extract("", None).unwrap_err(), ExtractError::NoCode);
        assert_eq!(extract("<think>\n```python\nimport sys\n```\n", None).unwrap_err(), ExtractError::NoCode);
    }

    #[test]
    fn an_unterminated_fence_runs_to_the_end() {
        let e = extract("Here:\n```python\nimport sys\nprint(sys.argv)\n", None).unwrap();
        assert!(e.script.contains("print(sys.argv)"));
    }

    #[test]
    fn code_with_prose_around_and_no_fence() {
        let raw = "Here is the code you asked for, complete.\nimport sys\nfrom x import y\n\nclass App:\n    def a(self):\n        return 1\n    def b(self):\n        return 2\nHope this helps you a lot with the task today.\n";
        let e = extract(raw, None).unwrap();
        assert_eq!(e.source, ScriptSource::Unfenced);
        assert!(e.script.starts_with("import sys"));
    }

    #[test]
    fn garbage_never_panics() {
        for raw in ["\u{0}\u{1}```", "~~~~\n~~~\n", "````python\n```\n", "\u{feff}```", "```\n\n"] {
            let _ = extract(raw, Some(ORIGINAL));
        }
    }
}
