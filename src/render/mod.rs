//! The rendering room: one result model (`verify::Verification`), every
//! view of it. The formats are listed once, in [`Format`], which drives the
//! CLI's `--format`, the API's `?format=` and the OpenAPI document; each
//! has its file here. Renders one result (`qtjudge verify`) or many
//! (`grade`, `report`, a batch's report) with their leaderboard
//! (`grading::leaderboard`, laid out by `board`).

mod board;
mod compare;
mod diff;
pub mod html;
mod json;
mod junit;
mod markdown;
mod text;

use serde::{Deserialize, Serialize};

pub use compare::{compare, comparison, CompareFormat};

use crate::grading::leaderboard::{Leaderboard, Outcome};
use crate::grading::verdict::Label;
use crate::verify::Verification;

/// How results are rendered. Adding one is an edit here and its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One result's account, or the experiment's table of many (`table`
    /// is the name it had).
    #[value(alias = "table")]
    #[serde(alias = "table")]
    Text,
    /// Pretty JSON: the result, or many results with their leaderboard
    /// (`{"results", "leaderboard"}`; no scripts).
    Json,
    /// One JSON result per line (no scripts).
    Jsonl,
    /// JUnit XML: a test case per answer, tier 3 a failure, not judged an
    /// error; the leaderboard as the suite's properties.
    Junit,
    /// The experiment's table and the leaderboard in Markdown.
    Markdown,
    /// A page: one result's, or the batch page of many.
    Html,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Json,
        Format::Jsonl,
        Format::Junit,
        Format::Markdown,
        Format::Html,
    ];

    /// Its name in `--format` and `?format=`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Junit => "junit",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }

    /// Other names it is accepted by (kept when a format was renamed).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Format::Text => &["table"],
            _ => &[],
        }
    }

    /// Every name `?format=` accepts, for the OpenAPI document.
    pub fn accepted_names() -> Vec<&'static str> {
        Format::ALL
            .iter()
            .flat_map(|f| std::iter::once(f.name()).chain(f.aliases().iter().copied()))
            .collect()
    }

    /// The media type the API answers it with.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Jsonl => "application/jsonl",
            Format::Junit => "application/xml",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// One result (`qtjudge verify`).
pub fn one(v: &Verification, format: Format) -> String {
    match format {
        Format::Text => text::account(v),
        Format::Json => json::pretty_one(v),
        _ => render(std::slice::from_ref(v), format, None),
    }
}

/// Many results (`grade`, `report`, a batch), in the order given, and
/// their leaderboard with pass@1.
pub fn many(results: &[Verification], format: Format) -> String {
    report(results, format, &[1])
}

/// Many results, in the order given, and their leaderboard with pass@k
/// for each k of `pass_at`.
pub fn report(results: &[Verification], format: Format, pass_at: &[usize]) -> String {
    render(results, format, Some(&leaderboard(results, pass_at)))
}

fn render(results: &[Verification], format: Format, board: Option<&Leaderboard>) -> String {
    match format {
        Format::Text => text::table(results, board),
        Format::Json => json::pretty(results, board),
        Format::Jsonl => json::lines(results),
        Format::Junit => junit::junit(results, board),
        Format::Markdown => markdown::markdown(results, board),
        Format::Html => html::results(results, board.map_or(&[1][..], |b| b.pass_at.as_slice())),
    }
}

/// The leaderboard of `results`, per model (and model × task), with
/// pass@k for each k of `pass_at`.
pub fn leaderboard<'a>(
    results: impl IntoIterator<Item = &'a Verification>,
    pass_at: &[usize],
) -> Leaderboard {
    let outcomes: Vec<Outcome> = results
        .into_iter()
        .map(|v| Outcome {
            model: &v.model,
            task: &v.task,
            label: v.label,
            failure: v.failure,
            duration_ms: v.duration_ms,
        })
        .collect();
    Leaderboard::of(&outcomes, pass_at)
}

/// Counts per tier (and of answers not judged).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub tier1: usize,
    pub tier2: usize,
    pub tier3: usize,
    pub error: usize,
}

impl Counts {
    pub fn of(results: &[Verification]) -> Counts {
        Counts::of_all(results)
    }

    pub fn of_all<'a>(results: impl IntoIterator<Item = &'a Verification>) -> Counts {
        let mut counts = Counts::default();
        for r in results {
            match r.label {
                Label::Flawless => counts.tier1 += 1,
                Label::UnrequestedChanges => counts.tier2 += 1,
                Label::Fail => counts.tier3 += 1,
                Label::Error => counts.error += 1,
            }
        }
        counts
    }

    pub fn total(&self) -> usize {
        self.tier1 + self.tier2 + self.tier3 + self.error
    }

    /// Share of tier-1 answers among all answers.
    pub fn tier1_rate(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            self.tier1 as f64 / self.total() as f64
        }
    }
}

/// How a table row names an answer: its model and sample, and its task
/// when the results span several (`alpha #2 [generic-reset]`).
fn row_names(results: &[Verification]) -> Vec<String> {
    let several = results.iter().any(|r| r.task != results[0].task);
    results
        .iter()
        .map(|r| match several {
            true => format!("{} [{}]", r.answer_name(), r.task),
            false => r.answer_name(),
        })
        .collect()
}

/// `1 flawless`, `2 unrequested_changes`, or for tier 3 its failure code.
fn tier_text(r: &Verification) -> String {
    match (r.tier, r.label, r.failure) {
        (Some(t), Label::Fail, Some(failure)) => format!("{t} {failure}"),
        (Some(t), label, _) => format!("{t} {}", label.as_str()),
        (None, _, _) => "- not judged".into(),
    }
}

/// Whitespace folded to single spaces, cut at `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        flat.chars().take(max - 1).collect::<String>() + "…"
    } else {
        flat
    }
}

#[cfg(test)]
mod tests;
