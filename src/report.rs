//! Renderers of graded answers: the experiment's table (text), JSON,
//! JSONL, JUnit XML and Markdown. One result model, many views.

use std::fmt::Write as _;

use serde::Serialize;

use crate::grading::verdict::Label;
use crate::verify::Verification;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Junit,
    Markdown,
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

pub fn render(results: &[Verification], format: Format) -> String {
    match format {
        Format::Table => table(results),
        Format::Json => {
            serde_json::to_string_pretty(&without_scripts(results)).expect("serialisable") + "\n"
        }
        Format::Jsonl => without_scripts(results)
            .iter()
            .map(|r| serde_json::to_string(r).expect("serialisable") + "\n")
            .collect(),
        Format::Junit => junit(results),
        Format::Markdown => markdown(results),
    }
}

/// The extracted scripts are large and already in the run folder.
fn without_scripts(results: &[Verification]) -> Vec<Verification> {
    results
        .iter()
        .cloned()
        .map(|mut r| {
            r.script = None;
            r
        })
        .collect()
}

/// `1 flawless`, `2 unrequested_changes`, or for tier 3 its failure code.
fn tier_text(r: &Verification) -> String {
    match (r.tier, r.label, &r.failure) {
        (Some(t), Label::Fail, Some(failure)) => format!("{t} {failure}"),
        (Some(t), label, _) => format!("{t} {}", label.as_str()),
        (None, _, _) => "- not judged".into(),
    }
}

fn table(results: &[Verification]) -> String {
    let width = results
        .iter()
        .map(|r| r.model.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:<22}  reason", "model", "tier");
    for r in results {
        let _ = writeln!(
            out,
            "{:<width$}  {:<22}  {}",
            r.model,
            tier_text(r),
            one_line(&r.reason, 110)
        );
    }
    let c = Counts::of(results);
    let _ = writeln!(
        out,
        "\ntier 1 flawless: {}   tier 2 unrequested changes: {}   tier 3 fail: {}{}",
        c.tier1,
        c.tier2,
        c.tier3,
        if c.error > 0 {
            format!("   not judged: {}", c.error)
        } else {
            String::new()
        }
    );
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        flat.chars().take(max - 1).collect::<String>() + "…"
    } else {
        flat
    }
}

fn markdown(results: &[Verification]) -> String {
    let mut out = String::from("| model | tier | reason |\n|---|---|---|\n");
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            r.model.replace('|', "\\|"),
            tier_text(r),
            one_line(&r.reason, 200).replace('|', "\\|")
        );
    }
    let c = Counts::of(results);
    let _ =
        writeln!(
        out,
        "\n**Tier 1 flawless:** {} · **Tier 2 unrequested changes:** {} · **Tier 3 fail:** {}{}",
        c.tier1,
        c.tier2,
        c.tier3,
        if c.error > 0 { format!(" · **not judged:** {}", c.error) } else { String::new() }
    );
    out
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit: one test case per answer; tier 3 is a failure, not judged an error.
fn junit(results: &[Verification]) -> String {
    let c = Counts::of(results);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"qtjudge\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        c.total(),
        c.tier3,
        c.error
    );
    let task = results
        .first()
        .map(|r| r.task.as_str())
        .unwrap_or("qtjudge");
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        xml_escape(task),
        c.total(),
        c.tier3,
        c.error
    );
    for r in results {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            xml_escape(&r.task),
            xml_escape(&r.model),
            r.duration_ms as f64 / 1000.0
        );
        match r.label {
            Label::Fail => {
                let _ = write!(
                    out,
                    "<failure type=\"{}\" message=\"{}\"/>",
                    xml_escape(r.failure.as_deref().unwrap_or("fail")),
                    xml_escape(&one_line(&r.reason, 300))
                );
            }
            Label::Error => {
                let _ = write!(
                    out,
                    "<error message=\"{}\"/>",
                    xml_escape(&one_line(&r.reason, 300))
                );
            }
            Label::UnrequestedChanges => {
                let _ = write!(out, "<system-out>{}</system-out>", xml_escape(&r.reason));
            }
            Label::Flawless => {}
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
