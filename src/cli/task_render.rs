//! `task check`'s report as text (a line per item: expected, what its runs
//! got, its flakes, and why a run disagreed) or JSON, and `task list`'s
//! account of a task's gold. Kept beside the command: the rendering room
//! (`render`) is about verifications, this is about a task.

use std::fmt::Write as _;
use std::path::Path;

use super::CheckFormat;
use crate::gold::{CheckReport, Gold, GoldError, ItemKind, ItemReport, Status};

pub(super) fn render(report: &CheckReport, format: CheckFormat) -> String {
    match format {
        CheckFormat::Json => {
            let mut json = serde_json::to_string_pretty(report)
                .expect("a check report is plain data and always serialises");
            json.push('\n');
            json
        }
        CheckFormat::Text => text(report),
    }
}

fn text(report: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "task {}: {} item(s), {} run(s) each\n",
        report.task,
        report.items.len(),
        report.runs
    );
    let name_width = report.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
    let expected_width = report
        .items
        .iter()
        .map(|i| i.expected.to_string().len())
        .max()
        .unwrap_or(0);
    for item in &report.items {
        let _ = writeln!(
            out,
            "{:<10} {:<name_width$}  expected {:<expected_width$}  got {}{}",
            status_word(item.status),
            item.name,
            item.expected.to_string(),
            got(item),
            match item.flakes {
                0 => String::new(),
                n => format!(" ({n} flake(s))"),
            },
        );
        if let Some(why) = disagreeing_reason(item) {
            let _ = writeln!(out, "{:<10} {:<name_width$}  why: {why}", "", "");
        }
    }
    let judged_runs: usize = report
        .items
        .iter()
        .map(|i| i.runs.len() - i.not_judged)
        .sum();
    let _ = writeln!(
        out,
        "\n{} item(s): {} passed, {} mismatched, {} flaky, {} not judged; {} flake(s) in {} judged run(s)",
        report.items.len(),
        report.count(Status::Pass),
        report.count(Status::Mismatch),
        report.count(Status::Flaky),
        report.count(Status::NotJudged),
        report.flakes(),
        judged_runs
    );
    out
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Pass => "ok",
        Status::Mismatch => "MISMATCH",
        Status::Flaky => "FLAKY",
        Status::NotJudged => "NOT JUDGED",
    }
}

/// What the runs got, most common first: `tier 1 ×4, tier 3 timeout ×1`.
fn got(item: &ItemReport) -> String {
    item.tally()
        .into_iter()
        .map(|(verdict, n)| match verdict {
            Some(v) => format!("{v} ×{n}"),
            None => format!("not judged ×{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reason given for the first run that did not get the expected
/// verdict (or could not be judged), for an item that is not a pass.
fn disagreeing_reason(item: &ItemReport) -> Option<String> {
    if item.status == Status::Pass {
        return None;
    }
    let run = item
        .runs
        .iter()
        .find(|r| r.verdict.as_ref() != Some(&item.expected))?;
    let verdict = run
        .verdict
        .as_ref()
        .map_or_else(|| "not judged".to_string(), ToString::to_string);
    let reason: String = run.reason.chars().take(300).collect();
    Some(format!("{verdict}: {reason}"))
}

/// `task list`'s lines about one task's gold.
pub(super) fn gold_summary(dir: &Path, gold: Result<Gold, GoldError>) -> String {
    let gold = match gold {
        Ok(gold) => gold,
        Err(GoldError::NoOriginal { .. }) => {
            return "  built in or discovery only: no original, no gold\n".into()
        }
        Err(e) => return format!("  no gold: {e}\n"),
    };
    let mut out = String::new();
    if let Some(original) = gold.items.iter().find(|i| i.kind == ItemKind::Original) {
        let _ = writeln!(out, "  original: must get {}", original.expected);
    }
    let relative = |p: &Path| {
        p.strip_prefix(dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let references: Vec<String> = gold
        .items
        .iter()
        .filter(|i| i.kind == ItemKind::Reference)
        .map(|i| relative(&i.path))
        .collect();
    let _ = writeln!(
        out,
        "  references: {} ({})",
        references.len(),
        references.join(", ")
    );
    match &gold.answers_manifest {
        Some(manifest) => {
            let _ = writeln!(
                out,
                "  fixture answers: {} ({})",
                gold.count(ItemKind::Answer),
                relative(manifest)
            );
        }
        None => out.push_str("  fixture answers: none\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::{GoldItem, RunGot, Verdict};
    use crate::grading::verdict::Label;

    #[test]
    fn a_flaky_item_shows_its_runs_its_flakes_and_why_one_disagreed() {
        let item = GoldItem {
            kind: ItemKind::Reference,
            name: "reference/correct.py".into(),
            path: "correct.py".into(),
            expected: Verdict::flawless(),
        };
        let run = |tier, failure: &str, reason: &str| RunGot {
            verdict: Some(Verdict {
                tier,
                failure: failure.into(),
            }),
            label: if tier == 1 {
                Label::Flawless
            } else {
                Label::Fail
            },
            reason: reason.into(),
            duration_ms: 500,
        };
        let report = CheckReport {
            task: "t".into(),
            runs: 3,
            items: vec![ItemReport::new(
                &item,
                vec![
                    run(1, "", "fine"),
                    run(3, "timeout", "the window never appeared"),
                    run(1, "", "fine"),
                ],
            )],
        };
        let text = render(&report, CheckFormat::Text);
        assert!(
            text.contains("FLAKY      reference/correct.py  expected tier 1  got tier 1 ×2, tier 3 timeout ×1 (1 flake(s))"),
            "{text}"
        );
        assert!(
            text.contains("why: tier 3 timeout: the window never appeared"),
            "{text}"
        );
        assert!(text.contains("0 passed, 0 mismatched, 1 flaky"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, CheckFormat::Json)).unwrap();
        assert_eq!(json["items"][0]["status"], "flaky");
        assert_eq!(json["items"][0]["flakes"], 1);
        assert_eq!(json["items"][0]["runs"][1]["verdict"]["failure"], "timeout");
    }
}
