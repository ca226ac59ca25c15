//! The leaderboard (`grading::leaderboard`) as the formats show it: its
//! cells written once (rates with their intervals, pass@k, the median
//! time, the failure codes), laid out as a text table, a Markdown table,
//! JUnit properties; the HTML page takes the same cells.

use std::fmt::Write as _;

use crate::grading::leaderboard::{Leaderboard, PassAt, Rate, Row};

/// What every rendering says of its numbers.
pub(super) const NOTE: &str =
    "95% Wilson score intervals; pass = tier 1 or 2; n = answers judged, those not judged left out";

/// Why a pass@k may read `n<k`.
pub(super) fn undefined_note(board: &Leaderboard) -> Option<&'static str> {
    board.any_undefined_pass_at().then_some(
        "pass@k reads n<k (undefined) where a model has fewer than k judged answers to a task",
    )
}

/// One row's cells, formatted.
pub(crate) struct Cells {
    pub model: String,
    pub task: String,
    pub n: String,
    pub tier1: String,
    pub tier2: String,
    pub tier3: String,
    pub tier1_rate: String,
    pub pass_rate: String,
    pub pass_at: Vec<String>,
    pub median: String,
    /// The failure codes, most frequent first, and answers not judged.
    pub notes: String,
}

pub(crate) fn cells(row: &Row) -> Cells {
    let mut notes: Vec<String> = row
        .failures
        .iter()
        .map(|f| format!("{} {}", f.code, f.count))
        .collect();
    if row.not_judged > 0 {
        notes.push(format!("{} not judged", row.not_judged));
    }
    Cells {
        model: row.model.clone(),
        task: row.task.clone().unwrap_or_default(),
        n: row.n.to_string(),
        tier1: row.tier1.to_string(),
        tier2: row.tier2.to_string(),
        tier3: row.tier3.to_string(),
        tier1_rate: rate(&row.tier1_rate),
        pass_rate: rate(&row.pass_rate),
        // Nothing judged: no pass@k to speak of, whatever k.
        pass_at: match row.n {
            0 => row.pass_at.iter().map(|_| "-".to_string()).collect(),
            _ => row.pass_at.iter().map(pass_at).collect(),
        },
        median: row
            .median_ms
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into()),
        notes: notes.join(", "),
    }
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// `30% [11–60%]`, or `-` when nothing was judged.
pub(crate) fn rate(r: &Rate) -> String {
    match (r.value, r.low, r.high) {
        (Some(value), Some(low), Some(high)) => {
            format!("{} [{:.0}–{}]", percent(value), low * 100.0, percent(high))
        }
        _ => "-".into(),
    }
}

fn pass_at(p: &PassAt) -> String {
    match p.value {
        Some(value) => format!("{value:.3}"),
        None => "n<k".into(),
    }
}

/// The column heads, `task` included on model × task lines.
fn heads(board: &Leaderboard, with_task: bool) -> Vec<String> {
    let mut heads = vec!["model".to_string()];
    if with_task {
        heads.push("task".into());
    }
    heads.extend(
        [
            "n",
            "tier 1",
            "tier 2",
            "tier 3",
            "tier-1 rate",
            "pass rate",
        ]
        .iter()
        .map(|h| h.to_string()),
    );
    heads.extend(board.pass_at.iter().map(|k| format!("pass@{k}")));
    heads.extend(["median".to_string(), "failures".to_string()]);
    heads
}

fn line(c: Cells, with_task: bool) -> Vec<String> {
    let mut line = vec![c.model];
    if with_task {
        line.push(c.task);
    }
    line.extend([c.n, c.tier1, c.tier2, c.tier3, c.tier1_rate, c.pass_rate]);
    line.extend(c.pass_at);
    line.extend([c.median, c.notes]);
    line
}

/// The tables: a line per model, then per model × task when there are
/// several tasks.
fn tables(board: &Leaderboard) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut tables = vec![(
        heads(board, false),
        board.models.iter().map(|r| line(cells(r), false)).collect(),
    )];
    if !board.by_task.is_empty() {
        tables.push((
            heads(board, true),
            board.by_task.iter().map(|r| line(cells(r), true)).collect(),
        ));
    }
    tables
}

/// The text leaderboard: aligned columns, numbers to the right.
pub(super) fn text(board: &Leaderboard) -> String {
    let mut out = format!("\nleaderboard ({NOTE})\n");
    for (i, (heads, lines)) in tables(board).into_iter().enumerate() {
        if i > 0 {
            out.push_str("\nper model × task\n");
        }
        let width = |col: usize| {
            lines
                .iter()
                .map(|l| l[col].chars().count())
                .chain(std::iter::once(heads[col].chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..heads.len()).map(width).collect();
        // The model (and task) to the left, the numbers to the right.
        let labels = 1 + usize::from(heads[1] == "task");
        for l in std::iter::once(&heads).chain(&lines) {
            let mut row = String::new();
            for (col, cell) in l.iter().enumerate() {
                let w = widths[col];
                if col + 1 == l.len() {
                    row.push_str(cell);
                } else if col < labels {
                    let _ = write!(row, "{cell:<w$}  ");
                } else {
                    let _ = write!(row, "{cell:>w$}  ");
                }
            }
            out.push_str(row.trim_end());
            out.push('\n');
        }
    }
    if let Some(note) = undefined_note(board) {
        let _ = writeln!(out, "{note}");
    }
    out
}

/// The Markdown leaderboard.
pub(super) fn markdown(board: &Leaderboard) -> String {
    let mut out = String::from("\n### Leaderboard\n");
    for (i, (heads, lines)) in tables(board).into_iter().enumerate() {
        if i > 0 {
            out.push_str("\n#### Per model × task\n");
        }
        let cell = |s: &str| s.replace('|', "\\|");
        let _ = writeln!(
            out,
            "\n| {} |\n|{}",
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
    let _ = writeln!(out, "\n{NOTE}.");
    if let Some(note) = undefined_note(board) {
        let _ = writeln!(out, "{note}.");
    }
    out
}

/// The leaderboard as a JUnit test suite's properties: a property per
/// model (and model × task), its numbers as `key=value` words.
pub(super) fn junit_properties(board: &Leaderboard, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::from("    <properties>\n");
    for r in board.models.iter().chain(&board.by_task) {
        let name = match &r.task {
            Some(task) => format!("leaderboard {} {task}", r.model),
            None => format!("leaderboard {}", r.model),
        };
        let c = cells(r);
        let mut value = format!(
            "n={} tier1={} tier2={} tier3={} not_judged={} tier1_rate={} pass_rate={}",
            c.n,
            c.tier1,
            c.tier2,
            c.tier3,
            r.not_judged,
            c.tier1_rate.replace(' ', ""),
            c.pass_rate.replace(' ', "")
        );
        for (k, p) in board.pass_at.iter().zip(&c.pass_at) {
            let _ = write!(value, " pass@{k}={p}");
        }
        let _ = write!(value, " median_s={}", c.median.trim_end_matches(" s"));
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape(&name),
            escape(&value)
        );
    }
    out.push_str("    </properties>\n");
    out
}
