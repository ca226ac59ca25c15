//! Issue 7's determinism: every fixture answer verified 10 times
//! (`QTJUDGE_DETERMINISM_RUNS` overrides), two at a time so both cores are
//! busy with other verifications, must get its manifest's verdict every
//! time. Writes the per-answer counts and the flake rate to
//! `target/determinism.md`.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use qtjudge::sandbox::warm_pool::PoolConfig;

use crate::support::{docker, prepared, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_answer_gets_the_same_verdict_every_time_with_both_cores_busy() {
    let Some(cold) = docker().await else { return };
    let _turn = crate::support::BOTH_CORES.lock().await;
    let runs: usize = std::env::var("QTJUDGE_DETERMINISM_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let sandbox = std::sync::Arc::new((*cold).clone().with_warm_pool(PoolConfig::with_size(2)));
    let dir = repo().join("fixtures/outputs/reset-conversation");
    let manifest = crate::support::manifest();
    // The answer that loops forever only measures the wall clock (its
    // verdict is the host's timeout); ten of them would add minutes.
    let answers: Vec<(String, String, String)> = manifest
        .iter()
        .filter(|e| e.failure != "timeout")
        .map(|e| {
            let expected = format!("{} {}", e.tier, e.failure);
            let text = std::fs::read_to_string(dir.join(&e.file)).unwrap();
            (e.model.clone(), text, expected.trim().to_string())
        })
        .collect();
    assert!(answers.len() >= 20);

    let work = (0..runs).flat_map(|_| answers.iter());
    let prepared = prepared();
    let verdicts: Vec<(String, String)> =
        futures_util::stream::iter(work.map(|(model, text, _)| {
            let sandbox = sandbox.clone();
            let prepared = prepared.clone();
            async move {
                let v = qtjudge::verify::verify(text, model, &prepared, sandbox.as_ref()).await;
                let got = match v.tier {
                    Some(tier) => format!(
                        "{tier} {}",
                        v.failure.map(|f| f.as_str()).unwrap_or_default()
                    ),
                    None => format!("not judged: {}", v.reason),
                };
                (model.clone(), got.trim().to_string())
            }
        }))
        .buffer_unordered(2)
        .collect()
        .await;
    sandbox.shutdown().await;

    let mut seen: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (model, got) in &verdicts {
        *seen.entry(model).or_default().entry(got).or_default() += 1;
    }
    let mut table = format!(
        "# Determinism\n\nEvery fixture answer verified {runs} times, two at a time (both cores busy).\n\n| answer | expected | verdicts over {runs} runs |\n|---|---|---|\n"
    );
    let mut flaky = BTreeSet::new();
    let mut wrong = Vec::new();
    for (model, _, expected) in &answers {
        let counts = &seen[model.as_str()];
        if counts.len() > 1 {
            flaky.insert(model.as_str());
        }
        if counts.keys().any(|got| got != expected) {
            wrong.push(format!("{model}: expected {expected}, got {counts:?}"));
        }
        let cells: Vec<String> = counts.iter().map(|(v, n)| format!("{v} ×{n}")).collect();
        table.push_str(&format!(
            "| {model} | {expected} | {} |\n",
            cells.join(", ")
        ));
    }
    table.push_str(&format!(
        "\nFlake rate: {}/{} answers changed verdict.\n",
        flaky.len(),
        answers.len()
    ));
    let _ = std::fs::write(repo().join("target/determinism.md"), &table);
    eprintln!("{table}");
    assert_eq!(verdicts.len(), runs * answers.len());
    assert!(flaky.is_empty(), "flaky answers: {flaky:?}\n{table}");
    assert!(wrong.is_empty(), "misgraded:\n{}", wrong.join("\n"));
}
