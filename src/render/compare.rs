//! Two runs compared (`qtjudge compare`, `GET /v1/batches/{id}/compare/{other}`):
//! the results read into `grading::compare`, and its account as text,
//! JSON or Markdown. The rates' cells are the leaderboard's (`board`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{board, one_line};
use crate::grading::compare::{Answer, Comparison, Delta, Direction, Line};
use crate::verify::Verification;

/// The formats a comparison is rendered in (`--format`, `?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompareFormat {
    Text,
    Json,
    Markdown,
}

impl CompareFormat {
    pub const ALL: [CompareFormat; 3] = [
        CompareFormat::Text,
        CompareFormat::Json,
        CompareFormat::Markdown,
    ];

    pub fn name(self) -> &'static str {
        self.format().name()
    }

    /// The media type the API answers it with (the report format's).
    pub fn media_type(self) -> &'static str {
        self.format().media_type()
    }

    fn format(self) -> super::Format {
        match self {
            CompareFormat::Text => super::Format::Text,
            CompareFormat::Json => super::Format::Json,
            CompareFormat::Markdown => super::Format::Markdown,
        }
    }
}

/// Run A's results against run B's.
pub fn comparison(a: &[Verification], b: &[Verification]) -> Comparison {
    Comparison::of(&answers(a), &answers(b))
}

fn answers(run: &[Verification]) -> Vec<Answer<'_>> {
    run.iter()
        .map(|v| Answer {
            model: &v.model,
            task: &v.task,
            sample: v.sample.as_deref(),
            label: v.label,
            failure: v.failure,
            reason: &v.reason,
        })
        .collect()
}

/// The comparison of run A (named `a`, e.g. its folder) with run B, in `format`.
pub fn compare(c: &Comparison, a: &str, b: &str, format: CompareFormat) -> String {
    match format {
        CompareFormat::Json => {
            let value = serde_json::json!({"a": a, "b": b, "comparison": c});
            serde_json::to_string_pretty(&value).expect("serialisable") + "\n"
        }
        CompareFormat::Text => text(c, a, b),
        CompareFormat::Markdown => markdown(c, a, b),
    }
}

/// What every rendering says of its numbers.
fn note(c: &Comparison) -> String {
    format!(
        "pass = tier 1 or 2; Δ = B − A in points; n = answers judged; 95% intervals: a paired bootstrap ({} resamples, seed {}) when every judged answer of a line is in both runs, with McNemar's exact p on the discordant pairs, else Newcombe's hybrid score interval",
        c.resamples, c.seed
    )
}

fn arrow(d: Direction) -> &'static str {
    match d {
        Direction::Regressed => "regressed",
        Direction::Improved => "improved",
        Direction::Changed => "changed",
    }
}

/// `+10 [-5, +25]`, in points; `-` without both runs.
fn delta_cell(d: &Delta) -> String {
    let points = |x: f64| {
        let p = (x * 100.0).round();
        // No `-0`.
        if p == 0.0 {
            "0".to_string()
        } else {
            format!("{p:+.0}")
        }
    };
    match (d.delta, d.low, d.high) {
        (Some(delta), Some(low), Some(high)) => {
            format!("{} [{}, {}]", points(delta), points(low), points(high))
        }
        (Some(delta), _, _) => points(delta),
        _ => "-".into(),
    }
}

fn p_cell(d: &Delta) -> String {
    d.mcnemar_p
        .map(|p| format!("{p:.3}"))
        .unwrap_or_else(|| "-".into())
}

fn heads(with_task: bool) -> Vec<String> {
    let mut heads = vec!["model".to_string()];
    if with_task {
        heads.push("task".into());
    }
    heads.extend(
        [
            "n A",
            "n B",
            "pass A",
            "pass B",
            "Δ pass",
            "p",
            "tier-1 A",
            "tier-1 B",
            "Δ tier-1",
            "interval",
        ]
        .iter()
        .map(|h| h.to_string()),
    );
    heads
}

fn cells(l: &Line, with_task: bool) -> Vec<String> {
    let mut cells = vec![l.model.clone()];
    if with_task {
        cells.push(l.task.clone().unwrap_or_default());
    }
    cells.extend([
        l.n_a.to_string(),
        l.n_b.to_string(),
        board::rate(&l.pass.a),
        board::rate(&l.pass.b),
        delta_cell(&l.pass),
        p_cell(&l.pass),
        board::rate(&l.tier1.a),
        board::rate(&l.tier1.b),
        delta_cell(&l.tier1),
        l.method.as_str().to_string(),
    ]);
    cells
}

/// A table: its title, its heads and its lines.
type Table = (&'static str, Vec<String>, Vec<Vec<String>>);

fn tables(c: &Comparison) -> Vec<Table> {
    let mut tables = vec![(
        "per model",
        heads(false),
        c.models.iter().map(|l| cells(l, false)).collect(),
    )];
    if !c.by_task.is_empty() {
        tables.push((
            "per model × task",
            heads(true),
            c.by_task.iter().map(|l| cells(l, true)).collect(),
        ));
    }
    tables
}

fn text(c: &Comparison, a: &str, b: &str) -> String {
    let mut out = format!("A: {a}\nB: {b}\n");
    let _ = writeln!(out, "\nchanged verdicts ({}):", c.changed.len());
    for x in &c.changed {
        let _ = writeln!(
            out,
            "  {}: {} → {} ({}): {}",
            x.key.name(),
            x.old,
            x.new,
            arrow(x.direction),
            one_line(&x.reason, 160)
        );
    }
    for (what, keys) in [("only in A", &c.only_in_a), ("only in B", &c.only_in_b)] {
        let _ = writeln!(out, "{what} ({}):", keys.len());
        for k in keys {
            let _ = writeln!(out, "  {}", k.name());
        }
    }
    let _ = writeln!(out, "unchanged: {}", c.unchanged);
    for (title, heads, lines) in tables(c) {
        let _ = writeln!(out, "\n{title}");
        let widths: Vec<usize> = (0..heads.len())
            .map(|col| {
                lines
                    .iter()
                    .chain(std::iter::once(&heads))
                    .map(|l| l[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let labels = 1 + usize::from(heads[1] == "task");
        for l in std::iter::once(&heads).chain(&lines) {
            let mut row = String::new();
            for (col, cell) in l.iter().enumerate() {
                let w = widths[col];
                if col < labels || col + 1 == l.len() {
                    let _ = write!(row, "{cell:<w$}  ");
                } else {
                    let _ = write!(row, "{cell:>w$}  ");
                }
            }
            out.push_str(row.trim_end());
            out.push('\n');
        }
    }
    let _ = writeln!(out, "\n{}", note(c));
    out
}

fn markdown(c: &Comparison, a: &str, b: &str) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = format!("## A: `{}` → B: `{}`\n", cell(a), cell(b));
    let _ = writeln!(out, "\n### Changed verdicts ({})\n", c.changed.len());
    if !c.changed.is_empty() {
        out.push_str("| answer | A | B | change | reason |\n|---|---|---|---|---|\n");
        for x in &c.changed {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&x.key.name()),
                x.old,
                x.new,
                arrow(x.direction),
                cell(&one_line(&x.reason, 200))
            );
        }
    }
    for (what, keys) in [("Only in A", &c.only_in_a), ("Only in B", &c.only_in_b)] {
        let _ = writeln!(out, "\n**{what} ({}):**", keys.len());
        for k in keys {
            let _ = writeln!(out, "- {}", cell(&k.name()));
        }
    }
    let _ = writeln!(out, "\n**Unchanged:** {}", c.unchanged);
    for (title, heads, lines) in tables(c) {
        let _ = writeln!(
            out,
            "\n### {}{}\n\n| {} |\n|{}",
            title[..1].to_uppercase(),
            &title[1..],
            heads.join(" | "),
            "---|".repeat(heads.len())
        );
        for l in lines {
            let _ = writeln!(
                out,
                "| {} |",
                l.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    let _ = writeln!(out, "\n{}.", note(c));
    out
}
