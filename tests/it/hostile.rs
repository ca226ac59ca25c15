//! Issue 7's attacks: every hostile answer of fixtures/hostile/ through the
//! real Docker sandbox, with a benign answer verified alongside. Each must
//! get its verdict within its wall limit, and leave no container behind.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Deserialize;

use crate::support::{docker, fixture, repo, task};

#[derive(Deserialize)]
struct Attacks {
    attack: Vec<Attack>,
}

#[derive(Deserialize, Clone)]
struct Attack {
    name: String,
    file: String,
    #[serde(default)]
    limit: String,
    tier: u8,
    failure: String,
}

/// The operator may tighten limits; a short wall keeps the suite fast.
const WALL_SECONDS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_gets_its_verdict_within_its_limits_and_leaves_nothing() {
    let Some(sandbox) = docker().await else {
        return;
    };
    let dir = repo().join("fixtures/hostile");
    let attacks: Attacks =
        toml::from_str(&std::fs::read_to_string(dir.join("attacks.toml")).unwrap()).unwrap();
    assert!(attacks.attack.len() >= 30, "at least 30 attacks");
    let mut task = task();
    task.limits.wall_seconds = WALL_SECONDS;
    let prepared = qtjudge::verify::PreparedTask::new(task, None);

    // The benign answer goes first in the queue, so it runs among the attacks.
    let mut inputs: Vec<(Attack, String)> = vec![(
        Attack {
            name: "benign (in parallel)".into(),
            file: "correct.py".into(),
            limit: "-".into(),
            tier: 1,
            failure: String::new(),
        },
        fixture("correct.py"),
    )];
    for attack in &attacks.attack {
        let bytes = std::fs::read(dir.join(&attack.file)).unwrap();
        inputs.push((attack.clone(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    let results: Vec<(Attack, qtjudge::verify::Verification, Duration)> =
        futures_util::stream::iter(inputs)
            .map(|(attack, answer)| {
                let prepared = prepared.clone();
                let sandbox = sandbox.clone();
                async move {
                    let started = Instant::now();
                    let v =
                        qtjudge::verify::verify(&answer, &attack.name, &prepared, sandbox.as_ref())
                            .await;
                    (attack, v, started.elapsed())
                }
            })
            .buffer_unordered(2)
            .collect()
            .await;

    write_attack_table(&results);
    // Containers are removed just after their result is returned.
    sandbox.settled().await;
    let mut wrong = Vec::new();
    for (attack, v, took) in &results {
        let failure = v.failure.clone().unwrap_or_default();
        if v.tier != Some(attack.tier) || failure != attack.failure {
            wrong.push(format!(
                "{}: expected {} {:?}, got {:?} {:?} ({})",
                attack.file, attack.tier, attack.failure, v.tier, failure, v.reason
            ));
        }
        // The wall limit plus container start-up and removal.
        if *took > Duration::from_secs(WALL_SECONDS + 8) {
            wrong.push(format!(
                "{}: took {took:?} for a {WALL_SECONDS} s limit",
                attack.file
            ));
        }
        let left = qtjudge::sandbox::docker::count_labelled(sandbox.engine(), Some(&v.run_id))
            .await
            .unwrap();
        if left != 0 {
            wrong.push(format!(
                "{}: its container {} was left behind",
                attack.file, v.run_id
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "attacks not handled as expected:\n{}",
        wrong.join("\n")
    );
}

/// The table of attacks and their verdicts, from this run, for the README's
/// security model: `target/hostile-attacks.md`.
fn write_attack_table(results: &[(Attack, qtjudge::verify::Verification, Duration)]) {
    let mut table =
        String::from("| attack | stopped by | verdict | seconds |\n|---|---|---|---|\n");
    for (attack, v, took) in results {
        let verdict = match (&v.tier, &v.failure) {
            (Some(t), Some(f)) => format!("{t} {f}"),
            (Some(t), None) => format!("{t} {}", v.label.as_str()),
            (None, _) => "not judged".into(),
        };
        table.push_str(&format!(
            "| {} | {} | {} | {:.1} |\n",
            attack.name,
            attack.limit,
            verdict,
            took.as_secs_f64()
        ));
    }
    let _ = std::fs::write(repo().join("target/hostile-attacks.md"), table);
}
