//! Unfenced code: every line of an answer classified as code, prose or
//! blank (following brackets and strings), and the longest run of code
//! taken when no fenced block is usable.

use std::sync::OnceLock;

use regex::Regex;

use super::diff::find_diff_region;
use super::{ExtractError, Extracted, ScriptSource};

/// What one line of an answer looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum LineKind {
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
    pub(super) fn is_code(self) -> bool {
        matches!(self, LineKind::Code { .. })
    }

    pub(super) fn is_significant(self) -> bool {
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
pub(super) fn classify_lines(lines: &[&str]) -> Vec<LineKind> {
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
pub(super) fn unfenced(
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
