//! Extraction: turns a model's raw answer into the script to grade (fenced
//! blocks, `<think>` reasoning, shell blocks, diffs, unfenced code). Pure: no IO.
//!
//! Every step is one pass over the lines of the answer, so the cost stays
//! linear in its size whatever the input (binary noise, unbalanced fences).
//!
//! A file a step, in the order `extract` takes them: `reasoning` removes
//! `<think>` spans, `fences` splits the fenced blocks out, `choose` picks
//! the block that is the script; with no usable block, `unfenced` finds the
//! code among prose, and `diff` a unified diff.

mod choose;
mod diff;
mod fences;
mod reasoning;
mod unfenced;

use choose::choose_block;
pub use choose::definition_names;
use fences::split_fences;
use reasoning::strip_reasoning;
use unfenced::unfenced;

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

// Last: the tidy test reads a file's product code up to its first test module.
#[cfg(test)]
mod tests;
