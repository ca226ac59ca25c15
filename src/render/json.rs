//! JSON and JSON Lines: the results as the API gives them, without the
//! extracted scripts (large, and already in the run folder).

use crate::grading::leaderboard::Leaderboard;
use crate::verify::Verification;

fn without_script(v: &Verification) -> Verification {
    let mut v = v.clone();
    v.script = None;
    v
}

/// One result, pretty (`qtjudge verify --format json`).
pub(super) fn pretty_one(v: &Verification) -> String {
    serde_json::to_string_pretty(&without_script(v)).expect("serialisable") + "\n"
}

/// The results with their leaderboard (`{"results", "leaderboard"}`), or
/// without one the array of results; pretty.
pub(super) fn pretty(results: &[Verification], leaderboard: Option<&Leaderboard>) -> String {
    let results: Vec<Verification> = results.iter().map(without_script).collect();
    let value = match leaderboard {
        Some(leaderboard) => {
            serde_json::json!({"results": results, "leaderboard": leaderboard})
        }
        None => serde_json::to_value(&results).expect("serialisable"),
    };
    serde_json::to_string_pretty(&value).expect("serialisable") + "\n"
}

/// One result a line.
pub(super) fn lines(results: &[Verification]) -> String {
    results
        .iter()
        .map(|r| serde_json::to_string(&without_script(r)).expect("serialisable") + "\n")
        .collect()
}
