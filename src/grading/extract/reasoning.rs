//! `<think>`/`<thinking>` reasoning removed from an answer: it may hold
//! draft code that must never be taken for the answer.

use super::fences::Fence;

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
pub(super) fn strip_reasoning(text: &str, notes: &mut Vec<String>) -> String {
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
