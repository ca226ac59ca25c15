//! JUnit XML: one test case per answer, for CI dashboards.

use std::fmt::Write as _;

use super::{board, one_line, Counts};
use crate::grading::leaderboard::Leaderboard;
use crate::grading::verdict::Label;
use crate::verify::Verification;

fn xml_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit: one test case per answer; tier 3 is a failure, not judged an
/// error; the leaderboard as the suite's properties.
pub(super) fn junit(results: &[Verification], leaderboard: Option<&Leaderboard>) -> String {
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
    if let Some(leaderboard) = leaderboard {
        out.push_str(&board::junit_properties(leaderboard, xml_escape));
    }
    for r in results {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            xml_escape(&r.task),
            xml_escape(&r.answer_name()),
            r.duration_ms as f64 / 1000.0
        );
        match r.label {
            Label::Fail => {
                let _ = write!(
                    out,
                    "<failure type=\"{}\" message=\"{}\"/>",
                    xml_escape(r.failure.map(|f| f.as_str()).unwrap_or("fail")),
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
