//! Extraction: turns a model's raw answer into the script to grade (fenced
//! blocks, `<think>` reasoning, shell blocks, diffs, unfenced code). Pure: no IO.
//!
//! Every step is one pass over the lines of the answer, so the cost stays
//! linear in its size whatever the input (binary noise, unbalanced fences).

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Where the script came from in the answer.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
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

/// The script found in an answer, and how it was found.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Extracted {
    pub script: String,
    pub source: ScriptSource,
    /// The chosen fenced block, numbered from 1 in the answer once its
    /// reasoning is removed (the numbering the notes use).
    pub block_index: Option<usize>,
    /// What was dropped, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ExtractError {
    #[error("no code: the answer holds no Python code block or script")]
    NoCode,
}

/// Finds the script in a model's answer. `original`, when given, is the
/// script the model was asked to refactor: the block holding most of its
/// definitions wins.
///
/// # Errors
///
/// [`ExtractError::NoCode`] when the answer, its reasoning removed, holds
/// neither a Python or diff block nor code outside fences.
pub fn extract(raw: &str, original: Option<&str>) -> Result<Extracted, ExtractError> {
    let text = normalise_newlines(raw);
    let mut notes = Vec::new();
    let visible = strip_reasoning(&text, &mut notes);
    let fences = split_fences(&visible);
    notes.extend(fences.notes);
    if let Some(chosen) = choose_block(&fences.blocks, original, &mut notes) {
        return Ok(Extracted { notes, ..chosen });
    }
    if fences.blocks.is_empty() {
        unfenced(&visible, false, notes)
    } else {
        // Only unusable blocks: the script may still sit outside the fences.
        unfenced(&fences.outside, true, notes)
    }
}

/// Strips a UTF-8 byte order mark and turns CRLF and lone CR into LF.
fn normalise_newlines(raw: &str) -> String {
    let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\r', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        out.push('\n');
        rest = &rest[at + 1..];
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// Reasoning (`<think>`)

const THINK_OPENERS: [&str; 2] = ["<thinking>", "<think>"];
const THINK_CLOSERS: [&str; 2] = ["</thinking>", "</think>"];

/// The end (byte offset after the tag) of the first closing reasoning tag.
fn find_think_close(line: &str) -> Option<usize> {
    // Every tag starts with `<`: look only where one is (this runs on every
    // line of a long reasoning span).
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(at) = line[from..].find('<').map(|i| from + i) {
        let closer = THINK_CLOSERS.iter().find(|tag| {
            bytes
                .get(at..at + tag.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(tag.as_bytes()))
        });
        if let Some(tag) = closer {
            return Some(at + tag.len());
        }
        from = at + 1;
    }
    None
}

/// Length of the reasoning tag `trimmed` starts with, if any.
fn think_open_len(trimmed: &str) -> Option<usize> {
    THINK_OPENERS.iter().find_map(|tag| {
        let head = trimmed.as_bytes().get(..tag.len())?;
        head.eq_ignore_ascii_case(tag.as_bytes())
            .then_some(tag.len())
    })
}

/// A reasoning span being read.
struct Reasoning {
    first_line: usize,
    drafts: usize,
    draft_fence: Option<Fence>,
}

impl Reasoning {
    fn count_fences(&mut self, line: &str) {
        match &self.draft_fence {
            Some(open) if open.closes(line) => self.draft_fence = None,
            Some(_) => {}
            None => {
                if let Some(open) = Fence::open(line) {
                    self.drafts += 1;
                    self.draft_fence = Some(open);
                }
            }
        }
    }

    fn note(&self, last_line: usize) -> String {
        let drafts = match self.drafts {
            0 => String::new(),
            1 => ", with 1 draft code block".to_string(),
            n => format!(", with {n} draft code blocks"),
        };
        format!(
            "reasoning (<think>) dropped: lines {}-{}{drafts}",
            self.first_line, last_line
        )
    }
}

/// Removes `<think>`/`<thinking>` reasoning, which may hold draft code that
/// must never be taken for the answer. Tags inside fenced code are code.
fn strip_reasoning(text: &str, notes: &mut Vec<String>) -> String {
    let mut visible = String::with_capacity(text.len());
    let mut fence: Option<Fence> = None;
    let mut reasoning: Option<Reasoning> = None;
    let mut seen_structure = false;
    let mut line_no = 0;
    for piece in crate::grading::lines::inclusive(text) {
        line_no += 1;
        let line = piece.strip_suffix('\n').unwrap_or(piece);
        if let Some(span) = reasoning.as_mut() {
            match find_think_close(piece) {
                Some(end) => {
                    notes.push(span.note(line_no));
                    reasoning = None;
                    push_rest(&mut visible, &piece[end..]);
                }
                None => span.count_fences(line),
            }
            continue;
        }
        if let Some(open) = &fence {
            if open.closes(line) {
                fence = None;
            }
            visible.push_str(piece);
            continue;
        }
        let trimmed = piece.trim_start();
        if let Some(tag_len) = think_open_len(trimmed) {
            seen_structure = true;
            let after = &trimmed[tag_len..];
            let span = Reasoning {
                first_line: line_no,
                drafts: 0,
                draft_fence: None,
            };
            match find_think_close(after) {
                Some(end) => {
                    notes.push(span.note(line_no));
                    push_rest(&mut visible, &after[end..]);
                }
                None => reasoning = Some(span),
            }
            continue;
        }
        if !seen_structure {
            // Chat templates often eat the opening tag: a lone closing tag
            // before any code means everything above it was reasoning.
            if let Some(end) = find_think_close(piece) {
                seen_structure = true;
                notes.push(format!(
                    "text before a lone </think> (lines 1-{line_no}) dropped as reasoning"
                ));
                visible.clear();
                push_rest(&mut visible, &piece[end..]);
                continue;
            }
        }
        if let Some(open) = Fence::open(line) {
            seen_structure = true;
            fence = Some(open);
        }
        visible.push_str(piece);
    }
    if let Some(span) = reasoning {
        notes.push(format!(
            "{} (never closed: the rest of the answer is reasoning)",
            span.note(line_no)
        ));
    }
    visible
}

/// Keeps what follows a closing tag on its line, unless it is blank.
fn push_rest(visible: &mut String, rest: &str) {
    if !rest.trim().is_empty() {
        visible.push_str(rest);
        if !rest.ends_with('\n') {
            visible.push('\n');
        }
    }
}

// ---------------------------------------------------------------------------
// Fenced blocks

/// An opening fence: three or more backticks or tildes, and an info string.
struct Fence {
    marker: u8,
    len: usize,
    indent: usize,
    lang: String,
}

impl Fence {
    fn open(line: &str) -> Option<Fence> {
        let trimmed = line.trim_start();
        let marker = *trimmed.as_bytes().first()?;
        if marker != b'`' && marker != b'~' {
            return None;
        }
        let len = trimmed.bytes().take_while(|b| *b == marker).count();
        let info = trimmed[len..].trim();
        // A backtick in the info string means inline code, not a fence.
        if len < 3 || (marker == b'`' && info.contains('`')) {
            return None;
        }
        Some(Fence {
            marker,
            len,
            indent: line.len() - trimmed.len(),
            lang: language_tag(info),
        })
    }

    fn closes(&self, line: &str) -> bool {
        let trimmed = line.trim();
        let run = trimmed.bytes().take_while(|b| *b == self.marker).count();
        run >= self.len && run == trimmed.len()
    }
}

/// The language of an info string: `Python title="x"` → `python`,
/// `{.py}` → `py`, `python:app.py` → `python`.
fn language_tag(info: &str) -> String {
    let word = info
        .trim_start_matches(['{', '.'])
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | '{' | '}' | ','))
        .next()
        .unwrap_or("");
    word.to_ascii_lowercase()
}

struct Block {
    index: usize,
    lang: String,
    text: String,
    lines: usize,
}

impl Block {
    /// `block 2 (python, 250 lines)`, the prefix of every note about it.
    fn describe(&self) -> String {
        let lang = if self.lang.is_empty() {
            "no language"
        } else {
            &self.lang
        };
        let plural = if self.lines == 1 { "" } else { "s" };
        format!("block {} ({lang}, {} line{plural})", self.index, self.lines)
    }
}

struct FenceScan {
    blocks: Vec<Block>,
    /// The answer without its fenced blocks (prose, unfenced code).
    outside: String,
    notes: Vec<String>,
}

fn split_fences(text: &str) -> FenceScan {
    let mut scan = FenceScan {
        blocks: Vec::new(),
        outside: String::new(),
        notes: Vec::new(),
    };
    let mut open: Option<(Fence, Block)> = None;
    for line in crate::grading::lines::split(text) {
        match open.take() {
            Some((fence, block)) if fence.closes(line) => scan.blocks.push(block),
            Some((fence, mut block)) => {
                // Content of an indented fence (in a list) loses that indent.
                let strip = line
                    .bytes()
                    .take(fence.indent)
                    .take_while(|b| *b == b' ')
                    .count();
                block.text.push_str(&line[strip..]);
                block.text.push('\n');
                block.lines += 1;
                open = Some((fence, block));
            }
            None => match Fence::open(line) {
                Some(fence) => {
                    let block = Block {
                        index: scan.blocks.len() + 1,
                        lang: fence.lang.clone(),
                        text: String::new(),
                        lines: 0,
                    };
                    open = Some((fence, block));
                }
                None => {
                    scan.outside.push_str(line);
                    scan.outside.push('\n');
                }
            },
        }
    }
    if let Some((_, mut block)) = open {
        // `split` yields an empty last piece after a final newline.
        if block.text.ends_with("\n\n") || block.text == "\n" {
            block.text.pop();
            block.lines -= 1;
        }
        scan.notes.push(format!(
            "{} has no closing fence: taken to the end of the answer",
            block.describe()
        ));
        scan.blocks.push(block);
    }
    scan
}

// ---------------------------------------------------------------------------
// Choosing the block

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
fn choose_block(
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

// ---------------------------------------------------------------------------
// Diffs

/// A unified diff: `---`/`+++` headers and `@@` hunks, or hunks whose lines
/// nearly all start with `+`, `-` or a space.
fn looks_like_diff(text: &str) -> bool {
    let (mut headers, mut minus_header) = (false, false);
    let (mut in_hunk, mut body, mut diffish, mut changes) = (false, 0usize, 0usize, 0usize);
    for line in crate::grading::lines::lines(text) {
        if line.starts_with("@@") {
            in_hunk = true;
            continue;
        }
        if !in_hunk {
            headers |= minus_header && line.starts_with("+++ ");
            minus_header = line.starts_with("--- ");
            continue;
        }
        if line.is_empty() {
            continue;
        }
        body += 1;
        match line.as_bytes()[0] {
            b'+' | b'-' => {
                diffish += 1;
                changes += 1;
            }
            b' ' | b'\\' => diffish += 1,
            _ => {}
        }
    }
    in_hunk && changes > 0 && (headers || diffish * 10 >= body * 9)
}

/// The lines `[start, end)` of the first diff in an unfenced answer.
fn find_diff_region(lines: &[&str]) -> Option<(usize, usize)> {
    let hunk = lines.iter().position(|l| l.starts_with("@@"))?;
    // Headers just above the first hunk belong to the diff.
    let mut start = hunk;
    while start > 0 {
        let above = lines[start - 1];
        if above.starts_with("--- ")
            || above.starts_with("+++ ")
            || above.starts_with("diff ")
            || above.starts_with("index ")
        {
            start -= 1;
        } else {
            break;
        }
    }
    let mut end = hunk;
    let mut last_diff_line = hunk;
    let mut changes = 0;
    while end < lines.len() {
        let line = lines[end];
        let diffish = line.is_empty()
            || line.starts_with(['+', '-', ' ', '\\', '@'])
            || line.starts_with("diff ")
            || line.starts_with("index ");
        if !diffish {
            break;
        }
        if !line.is_empty() {
            last_diff_line = end;
        }
        if line.starts_with(['+', '-']) && !line.starts_with("+++ ") && !line.starts_with("--- ") {
            changes += 1;
        }
        end += 1;
    }
    (changes > 0).then_some((start, last_diff_line + 1))
}

// ---------------------------------------------------------------------------
// Unfenced code

/// What one line of an answer looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LineKind {
    Blank,
    /// Python; `structural` for imports, `def`, `class`, decorators and the
    /// main entry, the lines that make a file a script.
    Code {
        structural: bool,
    },
    /// `#…`: a Python comment or a Markdown heading.
    Comment,
    Prose,
    Unknown,
}

impl LineKind {
    fn is_code(self) -> bool {
        matches!(self, LineKind::Code { .. })
    }

    fn is_significant(self) -> bool {
        matches!(
            self,
            LineKind::Code { .. } | LineKind::Prose | LineKind::Unknown
        )
    }
}

/// Open brackets, strings and continuations carried from line to line.
#[derive(Default)]
struct LexState {
    depth: usize,
    triple_quote: Option<u8>,
    backslash: bool,
}

impl LexState {
    fn continuing(&self) -> bool {
        self.depth > 0 || self.triple_quote.is_some() || self.backslash
    }

    /// Follows brackets and strings through one line of code.
    fn lex(&mut self, line: &str) {
        let bytes = line.as_bytes();
        let mut i = 0;
        let mut in_comment = false;
        self.backslash = false;
        while i < bytes.len() {
            let byte = bytes[i];
            if let Some(quote) = self.triple_quote {
                if byte == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i..].starts_with(&[quote, quote, quote]) {
                    self.triple_quote = None;
                    i += 3;
                    continue;
                }
                i += 1;
                continue;
            }
            match byte {
                b'#' => {
                    in_comment = true;
                    break;
                }
                b'"' | b'\'' => {
                    if bytes[i..].starts_with(&[byte, byte, byte]) {
                        self.triple_quote = Some(byte);
                        i += 3;
                        continue;
                    }
                    i += 1;
                    while i < bytes.len() && bytes[i] != byte {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
                // Bounded so that hostile input cannot grow it forever.
                b'(' | b'[' | b'{' => self.depth = (self.depth + 1).min(10_000),
                b')' | b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        self.backslash = !in_comment && self.triple_quote.is_none() && line.ends_with('\\');
    }

    fn reset(&mut self) {
        *self = LexState::default();
    }
}

struct LinePatterns {
    import: Regex,
    from_import: Regex,
    def: Regex,
    class: Regex,
    decorator: Regex,
    main_entry: Regex,
    block_header: Regex,
    for_header: Regex,
    simple: Regex,
    call: Regex,
}

fn line_patterns() -> &'static LinePatterns {
    static PATTERNS: OnceLock<LinePatterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("the line patterns are valid");
        LinePatterns {
            import: re(r"^import\s+[A-Za-z_][\w.]*(\s+as\s+\w+)?(\s*,\s*[A-Za-z_][\w.]*(\s+as\s+\w+)?)*\s*(#.*)?$"),
            from_import: re(r"^from\s+\.*[\w.]*\s+import\s+[(*A-Za-z_]"),
            def: re(r"^(async\s+)?def\s+[A-Za-z_]\w*\s*\("),
            class: re(r"^class\s+[A-Za-z_]\w*\s*[(:]"),
            decorator: re(r"^@[A-Za-z_][\w.]*(\(.*)?$"),
            main_entry: re(r#"^if\s+__name__\s*==\s*['"]__main__['"]\s*:"#),
            block_header: re(r"^((el)?if|while|with|except|match|case|async\s+with)\b.*:\s*(#.*)?$|^(else|try|finally)\s*:\s*(#.*)?$|^except\s*:"),
            for_header: re(r"^(async\s+)?for\s+[\w, ()\[\]]+?\s+in\s+.+:\s*(#.*)?$"),
            simple: re(r"^(return|raise|yield|del|global|nonlocal|assert|await|print)(\s|\(|$)|^(pass|break|continue)\s*(#.*)?$|^>>>"),
            call: re(r"^[A-Za-z_][\w.]*(\[[^\]]*\])?(\.[A-Za-z_]\w*)*\s*\(.*[)(,\[{\\:]$"),
        }
    })
}

/// `Some(structural)` when a trimmed, unindented-context line reads as a
/// Python statement.
fn statement_kind(trimmed: &str) -> Option<bool> {
    let p = line_patterns();
    if trimmed.starts_with("#!")
        || p.import.is_match(trimmed)
        || p.from_import.is_match(trimmed)
        || p.def.is_match(trimmed)
        || p.class.is_match(trimmed)
        || p.decorator.is_match(trimmed)
        || p.main_entry.is_match(trimmed)
    {
        return Some(true);
    }
    let triple_string = trimmed
        .trim_start_matches(['r', 'b', 'u', 'f', 'R', 'B', 'U', 'F'])
        .starts_with(r#"""""#)
        || trimmed.starts_with("'''");
    let plain = p.block_header.is_match(trimmed)
        || p.for_header.is_match(trimmed)
        || p.simple.is_match(trimmed)
        || is_assignment(trimmed)
        || p.call.is_match(trimmed)
        || trimmed.starts_with([')', ']', '}'])
        || triple_string;
    plain.then_some(false)
}

/// `a = …`, `self.x[0] += …`, `a, b = …`, `x: int = …`.
fn is_assignment(trimmed: &str) -> bool {
    let bytes = trimmed.as_bytes();
    let is_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let is_part = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'*') {
            i += 1;
        }
        if !bytes.get(i).is_some_and(|b| is_start(*b)) {
            return false;
        }
        while bytes.get(i).is_some_and(|b| is_part(*b)) {
            i += 1;
        }
        loop {
            match bytes.get(i) {
                Some(b'.') if bytes.get(i + 1).is_some_and(|b| is_start(*b)) => {
                    i += 1;
                    while bytes.get(i).is_some_and(|b| is_part(*b)) {
                        i += 1;
                    }
                }
                Some(b'[') => match bytes[i..].iter().position(|b| *b == b']') {
                    Some(close) => i += close + 1,
                    None => return false,
                },
                _ => break,
            }
        }
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        if bytes.get(i) == Some(&b',') {
            i += 1;
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            continue;
        }
        break;
    }
    let rest = &trimmed[i..];
    if let Some(after) = rest.strip_prefix(':') {
        // An annotation: `name: type` or `name: type = value`.
        let annotation = after.split('=').next().unwrap_or("").trim();
        return !annotation.is_empty()
            && annotation
                .bytes()
                .all(|b| is_part(b) || b" .[],|".contains(&b));
    }
    const OPERATORS: [&str; 13] = [
        "=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "|=", "&=", "^=", ">>=", "<<=",
    ];
    OPERATORS.iter().any(|op| {
        rest.strip_prefix(op)
            .is_some_and(|after| !after.starts_with('='))
    })
}

fn looks_like_prose(trimmed: &str) -> bool {
    let words = trimmed
        .split_whitespace()
        .filter(|w| {
            let w = w.trim_matches(|c: char| ",.;:!?()\"'`*".contains(c));
            !w.is_empty() && w.chars().all(char::is_alphabetic)
        })
        .count();
    let markdown = trimmed.starts_with(['-', '*', '>', '|'])
        || trimmed
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    words >= 2 || markdown || trimmed.ends_with(['.', ':', '!', '?'])
}

/// Classifies every line, following brackets and strings so that the
/// inside of a call or a docstring counts as code.
fn classify_lines(lines: &[&str]) -> Vec<LineKind> {
    let mut state = LexState::default();
    let mut after_code = false;
    let mut kinds = Vec::with_capacity(lines.len());
    for line in lines {
        let trimmed = line.trim();
        let indented = line.starts_with([' ', '\t']);
        let mut kind = None;
        if state.continuing() {
            // An unindented prose line ends a bracket a misread line opened.
            let stray = state.triple_quote.is_none()
                && !indented
                && !trimmed.is_empty()
                && !trimmed.starts_with([')', ']', '}', '"', '\''])
                && statement_kind(trimmed).is_none()
                && looks_like_prose(trimmed);
            if stray {
                state.reset();
            } else {
                kind = Some(LineKind::Code { structural: false });
            }
        }
        let kind = kind.unwrap_or_else(|| {
            if trimmed.is_empty() {
                LineKind::Blank
            } else if trimmed.starts_with('#') && !trimmed.starts_with("#!") {
                LineKind::Comment
            } else if let Some(structural) = statement_kind(trimmed) {
                LineKind::Code { structural }
            } else if indented && after_code {
                LineKind::Code { structural: false }
            } else if looks_like_prose(trimmed) {
                LineKind::Prose
            } else {
                LineKind::Unknown
            }
        });
        match kind {
            LineKind::Code { .. } => {
                state.lex(line);
                after_code = true;
            }
            LineKind::Prose | LineKind::Unknown => after_code = false,
            LineKind::Blank | LineKind::Comment => {}
        }
        kinds.push(kind);
    }
    kinds
}

/// A run of code lines between prose: `[start, end]`, inclusive.
struct CodeRun {
    start: usize,
    end: usize,
    code_lines: usize,
    structural: bool,
}

/// The run with the most code lines; prose ends a run, blank lines and
/// comments do not.
fn best_code_run(kinds: &[LineKind]) -> Option<CodeRun> {
    let mut best: Option<CodeRun> = None;
    let mut current: Option<CodeRun> = None;
    for (i, kind) in kinds.iter().enumerate() {
        match kind {
            LineKind::Code { structural } => {
                let run = current.get_or_insert(CodeRun {
                    start: i,
                    end: i,
                    code_lines: 0,
                    structural: false,
                });
                run.end = i;
                run.code_lines += 1;
                run.structural |= structural;
            }
            LineKind::Prose => {
                if let Some(run) = current.take() {
                    if best.as_ref().is_none_or(|b| run.code_lines > b.code_lines) {
                        best = Some(run);
                    }
                }
            }
            LineKind::Blank | LineKind::Comment | LineKind::Unknown => {}
        }
    }
    if let Some(run) = current {
        if best.as_ref().is_none_or(|b| run.code_lines > b.code_lines) {
            best = Some(run);
        }
    }
    best
}

fn join_lines(lines: &[&str]) -> String {
    let mut script = lines.join("\n");
    script.push('\n');
    script
}

/// No usable fence: the whole answer, a diff, or the longest run of code.
/// `beside_fences` says the text is what was left outside fenced blocks.
fn unfenced(
    text: &str,
    beside_fences: bool,
    mut notes: Vec<String>,
) -> Result<Extracted, ExtractError> {
    let lines: Vec<&str> = crate::grading::lines::split(text).collect();
    let kinds = classify_lines(&lines);
    let run = best_code_run(&kinds);
    let run_size = run.as_ref().map_or(0, |r| r.code_lines);
    if let Some((start, end)) = find_diff_region(&lines) {
        if end - start >= run_size {
            let around = lines[..start]
                .iter()
                .chain(&lines[end..])
                .any(|l| !l.trim().is_empty());
            if around {
                notes.push(format!(
                    "no fence: diff at lines {}-{} taken, text around it dropped",
                    start + 1,
                    end
                ));
            }
            return Ok(Extracted {
                script: join_lines(&lines[start..end]),
                source: ScriptSource::Diff,
                block_index: None,
                notes,
            });
        }
    }
    let Some(run) = run else {
        return Err(ExtractError::NoCode);
    };
    let has_prose = kinds.contains(&LineKind::Prose);
    if !beside_fences && !has_prose {
        return Ok(Extracted {
            script: text.to_string(),
            source: ScriptSource::WholeFile,
            block_index: None,
            notes,
        });
    }
    if run.code_lines < 3 || !run.structural {
        return Err(ExtractError::NoCode);
    }
    let place = if beside_fences {
        "no usable fenced block: code outside the fences"
    } else {
        "no fence: code"
    };
    notes.push(format!(
        "{place} at lines {}-{} taken, prose around it dropped",
        run.start + 1,
        run.end + 1
    ));
    Ok(Extracted {
        script: join_lines(&lines[run.start..=run.end]),
        source: ScriptSource::Unfenced,
        block_index: None,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_names_are_read_line_by_line_as_python_and_diffs_write_them() {
        let text = "class App(QMainWindow):\n    def init_ui(self):\n+    async def fetch(self):\n\tdef\ttabbed(x):\nclass_ = 1\ndefine = 2\n# def commented(self):\ndef 9bad():\n+class Added:\n  async  def  spaced():\nasyncdef nope():\ndef";
        let mut names: Vec<&str> = definition_names(text).into_iter().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec!["Added", "App", "fetch", "init_ui", "spaced", "tabbed"]
        );
    }

    const ORIGINAL: &str = "import sys\n\n\nclass App:\n    def init_ui(self):\n        self.x = 1\n\n    def submit(self):\n        pass\n\n\ndef main():\n    App()\n";

    const FULL: &str = "import sys\n\n\nclass App:\n    def init_ui(self):\n        self.x = 1\n\n    def submit(self):\n        pass\n\n    def reset(self):\n        self.history = []\n\n\ndef main():\n    App()\n";

    fn fenced(lang: &str, body: &str) -> String {
        format!("```{lang}\n{body}```\n")
    }

    #[test]
    fn several_blocks_pick_the_one_covering_the_original() {
        let raw = format!(
            "Install first:\n{}Add this method:\n{}Here is the full script:\n{}Run it:\n{}",
            fenced("bash", "pip install PyQt5\n"),
            fenced("python", "def reset(self):\n    self.history = []\n    self.display.clear()\n    self.output.clear()\n    self.prompt.clear()\n"),
            fenced("python", FULL),
            fenced("", "python app.py\n"),
        );
        let got = extract(&raw, Some(ORIGINAL)).unwrap();
        assert_eq!(got.source, ScriptSource::FencedBlock);
        assert_eq!(got.block_index, Some(3));
        assert_eq!(got.script, FULL);
        assert!(got
            .notes
            .contains(&"block 1 (bash, 1 line) dropped: shell command".to_string()));
        assert!(got
            .notes
            .contains(&"block 4 (no language, 1 line) dropped: shell command".to_string()));
        assert!(got.notes.iter().any(|n| n.starts_with(
            "block 2 (python, 5 lines) dropped: has 0 of the original's 4 definitions"
        )));
    }

    #[test]
    fn without_the_original_the_longest_block_wins() {
        let raw = format!("{}{}", fenced("py", FULL), fenced("python", "x = 1\n"));
        let got = extract(&raw, None).unwrap();
        assert_eq!(got.block_index, Some(1));
        assert!(got.notes[0].contains("shorter than block 1"));
    }

    #[test]
    fn draft_code_in_the_thinking_is_never_chosen() {
        let raw = format!(
            "<think>\nThe user wants a button. Draft:\n{}Hmm, better keep everything.\n</think>\nHere it is:\n{}",
            fenced("python", FULL),
            fenced("python", "import sys\n\nclass App:\n    def init_ui(self):\n        self.y = 2\n"),
        );
        let got = extract(&raw, Some(ORIGINAL)).unwrap();
        assert!(got.script.contains("self.y = 2"));
        assert_eq!(got.block_index, Some(1));
        assert!(got
            .notes
            .iter()
            .any(|n| n == "reasoning (<think>) dropped: lines 1-22, with 1 draft code block"));
    }

    #[test]
    fn inline_and_lone_closing_think_tags() {
        let inline = format!(
            "<think>plan the change</think>Here you go:\n{}",
            fenced("python", FULL)
        );
        let got = extract(&inline, Some(ORIGINAL)).unwrap();
        assert_eq!(got.script, FULL);
        let lone = format!(
            "thinking about it\n{}</think>\n{}",
            fenced("python", "x = 1\n"),
            fenced("python", FULL)
        );
        // A fence before the lone tag: the tag is not trusted, both blocks stay.
        assert_eq!(extract(&lone, Some(ORIGINAL)).unwrap().block_index, Some(2));
        let eaten = format!("so I need a button\n</think>\n{}", fenced("python", FULL));
        let got = extract(&eaten, Some(ORIGINAL)).unwrap();
        assert!(got.notes[0].contains("lone </think>"));
        assert_eq!(got.block_index, Some(1));
    }

    #[test]
    fn unterminated_think_at_the_start_hides_everything() {
        let raw = format!("<thinking>\nlet me write it\n{}", fenced("python", FULL));
        assert_eq!(
            extract(&raw, Some(ORIGINAL)).unwrap_err(),
            ExtractError::NoCode
        );
    }

    #[test]
    fn think_tags_inside_code_are_code() {
        let body =
            "import re\n\ndef strip(text):\n    return re.sub('<think>.*</think>', '', text)\n";
        let raw = format!("Here:\n{}", fenced("python", body));
        assert_eq!(extract(&raw, None).unwrap().script, body);
    }

    #[test]
    fn no_fence_with_prose_around_is_unfenced() {
        let raw = format!("Here is the full refactored script, with the reset button added.\n\n{FULL}\nThis adds a button that clears the history.\n");
        let got = extract(&raw, Some(ORIGINAL)).unwrap();
        assert_eq!(got.source, ScriptSource::Unfenced);
        assert_eq!(got.script, FULL);
        assert!(got.notes[0].starts_with("no fence: code at lines 3-18"));
    }

    #[test]
    fn plain_file_is_taken_whole_and_unchanged() {
        let file = "#!/usr/bin/env python3\n\"\"\"server.py - a small front end.\n\nPick a model, type a prompt and send it.\n\"\"\"\n\nimport sys\nfrom PyQt5.QtWidgets import (\n    QApplication,\n    QPushButton,\n)\n\nURL = \"http://localhost\"  # the server\n\n\nclass App:\n    def submit(self):\n        QMessageBox.warning(\n            self,\n            \"Large files\",\n        )\n\n\nif __name__ == \"__main__\":\n    App()\n";
        let got = extract(file, Some(ORIGINAL)).unwrap();
        assert_eq!(got.source, ScriptSource::WholeFile);
        assert_eq!(got.script, file);
        assert!(got.notes.is_empty());
        let tabs = "def f():\n\treturn 1\n";
        assert_eq!(extract(tabs, None).unwrap().script, tabs);
    }

    #[test]
    fn crlf_cr_and_bom_are_normalised() {
        let raw = "\u{feff}```python\r\nimport sys\r\n\r\ndef main():\r\n    print(1)\r\n```\r\n";
        let got = extract(raw, None).unwrap();
        assert_eq!(got.script, "import sys\n\ndef main():\n    print(1)\n");
        let whole = extract("import sys\rprint(sys.argv)\r", None).unwrap();
        assert_eq!(whole.source, ScriptSource::WholeFile);
        assert_eq!(whole.script, "import sys\nprint(sys.argv)\n");
    }

    #[test]
    fn diffs_fenced_untagged_and_bare() {
        let diff = "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,4 @@\n import sys\n+import os\n \n class App:\n";
        let tagged = format!(
            "Patch:\n{}Apply with:\n{}",
            fenced("diff", diff),
            fenced("bash", "git apply reset.diff\n")
        );
        let got = extract(&tagged, Some(ORIGINAL)).unwrap();
        assert_eq!(got.source, ScriptSource::Diff);
        assert_eq!((got.block_index, got.script.as_str()), (Some(1), diff));
        let untagged = fenced("", "@@ -5,2 +5,3 @@\n     def init_ui(self):\n+        self.reset = 1\n         self.x = 1\n");
        assert_eq!(extract(&untagged, None).unwrap().source, ScriptSource::Diff);
        let bare = format!("The change:\n\n{diff}\nThat is all.\n");
        let got = extract(&bare, None).unwrap();
        assert_eq!(
            (got.source, got.script.as_str()),
            (ScriptSource::Diff, diff)
        );
    }

    #[test]
    fn prose_only_is_no_code() {
        let prose = "Sure! To add a reset button, create a QPushButton in init_ui and connect it.\n\n1. Empty the history list.\n2. Clear the text areas.\n";
        assert_eq!(extract(prose, None).unwrap_err(), ExtractError::NoCode);
        assert_eq!(extract("", None).unwrap_err(), ExtractError::NoCode);
        assert_eq!(extract("hello", None).unwrap_err(), ExtractError::NoCode);
        let shell_only = format!("Install:\n{}", fenced("bash", "pip install requests\n"));
        assert_eq!(
            extract(&shell_only, None).unwrap_err(),
            ExtractError::NoCode
        );
    }

    #[test]
    fn unterminated_fence_runs_to_the_end() {
        let raw = "Here:\n~~~~python\nimport sys\n```\nprint(sys.argv)\n";
        let got = extract(raw, None).unwrap();
        assert_eq!(got.script, "import sys\n```\nprint(sys.argv)\n");
        assert!(got.notes[0].contains("no closing fence"));
    }

    #[test]
    fn closing_fence_must_be_as_long_as_the_opening() {
        let raw = "````python\nx = '''\n```\n'''\n````\n";
        assert_eq!(extract(raw, None).unwrap().script, "x = '''\n```\n'''\n");
    }

    #[test]
    fn indented_fence_in_a_list_loses_its_indent() {
        let raw = "1. Add:\n   ```python\n   def reset(self):\n       self.history = []\n   ```\n";
        assert_eq!(
            extract(raw, None).unwrap().script,
            "def reset(self):\n    self.history = []\n"
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let huge = "(".repeat(100_000) + &"```".repeat(1000) + "\n\"\"\"\n";
        let inputs = [
            "\u{0}\u{1}```",
            "~~~~\n~~~\n",
            "````python\n```\n",
            "\u{feff}```",
            "```\n\n",
            "<think>",
            "</think>",
            "<think></think>",
            "\r\r\r",
            "@@\n+\n-",
            "é```é\n```ü",
            "\u{0}\u{0}\u{0}\ndef\nclass\n",
            huge.as_str(),
        ];
        for raw in inputs {
            let _ = extract(raw, Some(ORIGINAL));
            let _ = extract(raw, None);
        }
    }

    #[test]
    fn large_answers_are_extracted() {
        let mut raw = String::from("Here it is:\n```python\n");
        for i in 0..20_000 {
            raw.push_str(&format!("    def method_{i}(self):\n        return {i}\n"));
        }
        raw.push_str("```\n");
        // Its time is a figure of `scripts/bench` (benches/static_grade.rs).
        let got = extract(&raw, Some(ORIGINAL)).unwrap();
        assert_eq!(got.source, ScriptSource::FencedBlock);
    }
}
