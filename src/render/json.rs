//! JSON and JSON Lines: the results as the API gives them, without the
//! extracted scripts (large, and already in the run folder).

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

/// The array of results, pretty.
pub(super) fn pretty(results: &[Verification]) -> String {
    let results: Vec<Verification> = results.iter().map(without_script).collect();
    serde_json::to_string_pretty(&results).expect("serialisable") + "\n"
}

/// One result a line.
pub(super) fn lines(results: &[Verification]) -> String {
    results
        .iter()
        .map(|r| serde_json::to_string(&without_script(r)).expect("serialisable") + "\n")
        .collect()
}
