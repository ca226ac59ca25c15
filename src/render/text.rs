//! Text: one verification's account (`qtjudge verify`) and the
//! experiment's table of many (`grade`, `report`, a batch's `table`).

use std::fmt::Write as _;

use super::{board, one_line, row_names, tier_text, Counts};
use crate::grading::leaderboard::Leaderboard;
use crate::verify::Verification;

/// The human-readable account of one verification.
pub(super) fn account(v: &Verification) -> String {
    let mut out = String::new();
    let tier = v
        .tier
        .map(|t| format!("tier {t}"))
        .unwrap_or_else(|| "not judged".into());
    let _ = writeln!(out, "{}: {} ({})", v.answer_name(), tier, v.label.as_str());
    let _ = writeln!(out, "  reason: {}", v.reason);
    if let Some(c) = &v.task_choice {
        let _ = writeln!(out, "  task: {} ({})", c.task, c.reason);
    }
    // The harness stood in for a launcher the app does not have.
    if let Some(step) = v.steps.iter().find(|s| {
        s.name == "find_window" && s.ok && s.detail.starts_with("the script showed no window")
    }) {
        let _ = writeln!(out, "  note: {}", step.detail);
    }
    if let Some(b) = &v.bundle {
        let compared = if b.compared != b.entry {
            format!(", compared with the original: {}", b.compared)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  app: {} files from a {:?}, entry {}{compared}",
            b.files.len(),
            b.origin,
            b.entry
        );
    }
    if let Some(failure) = &v.failure {
        let _ = writeln!(out, "  failure: {failure}");
    }
    if let Some(p) = &v.history_cleared {
        let show = |b: Option<bool>| match b {
            Some(true) => "cleared",
            Some(false) => "NOT cleared",
            None => "not reached",
        };
        let _ = writeln!(
            out,
            "  history: memory {}, screen {}, next request {}",
            show(p.memory),
            show(p.screen),
            show(p.next_request)
        );
    }
    if let Some(d) = v.behaviour.as_ref().and_then(|b| b.discovered.as_ref()) {
        discovered_text(&mut out, d);
    }
    if !v.steps.is_empty() {
        let _ = writeln!(out, "  steps:");
        for s in &v.steps {
            let _ = writeln!(
                out,
                "    {} {:<14} {:>7.1} ms  {}",
                if s.ok { "ok  " } else { "FAIL" },
                s.name,
                s.ms,
                s.detail
            );
        }
    }
    for m in &v.missing {
        let _ = writeln!(
            out,
            "  missing: {} {} (original line {})",
            m.kind, m.name, m.original_line
        );
    }
    for c in &v.unrequested_changes {
        let line = c.line.map(|l| format!(" (line {l})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  unrequested [{}] {}: {}{}",
            c.source, c.kind, c.detail, line
        );
    }
    for a in &v.artifacts {
        if let Some(path) = &a.path {
            let _ = writeln!(out, "  screenshot: {path}");
        }
    }
    if let Some(e) = &v.error {
        let _ = writeln!(out, "  error: {e}");
    }
    out
}

/// What the harness drove: each control with how it was found.
fn discovered_text(out: &mut String, d: &crate::harness::Discovered) {
    let name = |c: &crate::harness::Control| {
        if c.kind == "key" {
            let key = c.text.as_deref().unwrap_or("?");
            return format!("the {key} key in the {} ({})", c.class, c.how);
        }
        let mut s = c.class.clone();
        if let Some(a) = &c.attribute {
            s.push_str(&format!(" self.{a}"));
        } else if let Some(o) = &c.object_name {
            s.push_str(&format!(" #{o}"));
        }
        if let Some(t) = c.text.as_deref().filter(|t| !t.is_empty()) {
            s.push_str(&format!(" {t:?}"));
        }
        format!("{s} ({})", c.how)
    };
    let _ = writeln!(out, "  found:");
    if let Some(b) = &d.binding {
        let _ = writeln!(out, "    binding        {b}");
    }
    let one = |c: &Option<crate::harness::Control>| {
        c.as_ref()
            .map(name)
            .unwrap_or_else(|| "not found".to_string())
    };
    if let Some(started) = &d.started_chat {
        let _ = writeln!(
            out,
            "    chat started   {started:?} clicked before the first turn"
        );
    }
    if let Some(followed) = &d.followed_window {
        let _ = writeln!(out, "    window         {followed}");
    }
    let _ = writeln!(out, "    prompt input   {}", one(&d.prompt_input));
    let _ = writeln!(out, "    send           {}", one(&d.send));
    // One message per widget: "4 × QLabel (discovered)", not four lines.
    let mut display: Vec<(usize, String)> = Vec::new();
    for shown in d.display.iter().map(name) {
        match display.iter_mut().find(|(_, n)| *n == shown) {
            Some((count, _)) => *count += 1,
            None => display.push((1, shown)),
        }
    }
    let display: Vec<String> = display
        .into_iter()
        .map(|(count, n)| {
            if count > 1 {
                format!("{count} × {n}")
            } else {
                n
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "    display        {}",
        if display.is_empty() {
            "none".into()
        } else {
            display.join(", ")
        }
    );
    let _ = writeln!(out, "    reset          {}", one(&d.reset));
    let mut memory = if d.memory.is_empty() {
        "nothing held a turn".to_string()
    } else {
        d.memory.join(", ")
    };
    if !d.memory_configured.is_empty() {
        memory.push_str(&format!(
            "; checked as configured: {}",
            d.memory_configured.join(", ")
        ));
    }
    let _ = writeln!(out, "    memory         {memory}");
}

/// The experiment's table: a row per answer, then the counts and the
/// leaderboard.
pub(super) fn table(results: &[Verification], leaderboard: Option<&Leaderboard>) -> String {
    let names = row_names(results);
    let width = names
        .iter()
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:<22}  reason", "model", "tier");
    for (r, name) in results.iter().zip(&names) {
        let _ = writeln!(
            out,
            "{:<width$}  {:<22}  {}",
            name,
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
    if let Some(leaderboard) = leaderboard {
        out.push_str(&board::text(leaderboard));
    }
    out
}
