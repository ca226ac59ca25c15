//! Markdown: the experiment's table, for a pull request or a wiki.

use std::fmt::Write as _;

use super::{board, one_line, row_names, tier_text, Counts};
use crate::grading::leaderboard::Leaderboard;
use crate::verify::Verification;

/// The experiment's table in Markdown, then the counts and the leaderboard.
pub(super) fn markdown(results: &[Verification], leaderboard: Option<&Leaderboard>) -> String {
    let mut out = String::from("| model | tier | reason |\n|---|---|---|\n");
    for (r, name) in results.iter().zip(row_names(results)) {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            name.replace('|', "\\|"),
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
    if let Some(leaderboard) = leaderboard {
        out.push_str(&board::markdown(leaderboard));
    }
    out
}
