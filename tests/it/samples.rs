//! Samples and the leaderboard through the real binary: `grade` on a JSONL
//! of several models × samples (keys, metadata, the run folder, the
//! leaderboard, `--resume`) in Docker, and `report` re-rendering a run
//! folder (this one's, one written by hand, and one from before samples).

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::support::{docker, json_of, repo};

fn qtjudge(args: &[&str]) -> Output {
    crate::support::qtjudge_cli(args, None)
}

/// A result as `grade` keeps it in its run folder.
pub(crate) fn write_result(dir: &Path, file: &str, fields: Value) {
    let mut v = json!({
        "model": "", "task": "reset-conversation", "tier": null, "label": "error",
        "failure": null, "reason": "", "history_cleared": null,
        "unrequested_changes": [], "missing": [], "steps": [], "artifacts": [],
        "extraction": null, "static": null, "behaviour": null, "error": null,
        "sandbox": "docker", "run_id": "0123456789ab", "duration_ms": 1000,
    });
    for (key, value) in fields.as_object().unwrap() {
        v[key] = value.clone();
    }
    std::fs::write(dir.join(file), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

pub(crate) fn tier(t: u8) -> Value {
    match t {
        1 => json!({"tier": 1, "label": "flawless"}),
        2 => json!({"tier": 2, "label": "unrequested_changes"}),
        _ => json!({"tier": 3, "label": "fail", "failure": "snippet"}),
    }
}

pub(crate) fn merged(a: Value, b: Value) -> Value {
    let mut a = a;
    for (key, value) in b.as_object().unwrap() {
        a[key] = value.clone();
    }
    a
}

/// `report` on a folder of 3 models × 10 samples: the leaderboard's
/// numbers as computed by hand (Wilson, pass@5 = 11/12 for 3 of 10), in
/// JSON and text; pass@20 undefined and said so.
#[test]
fn report_gives_the_leaderboard_of_a_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=10u8 {
        let a = if i <= 3 { 1 } else { 3 };
        let b = if i <= 5 { 1 } else { 2 };
        for (model, t) in [("a", a), ("b", b), ("c", 3)] {
            write_result(
                dir.path(),
                &format!("{model}_{i}.json"),
                merged(
                    json!({"model": model, "sample": i.to_string(), "metadata": {"seed": i}}),
                    tier(t),
                ),
            );
        }
    }
    let out = qtjudge(&[
        "report",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
        "--pass-at",
        "1,5,20",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json_of(&out);
    assert_eq!(report["results"].as_array().unwrap().len(), 30);
    assert_eq!(report["results"][0]["metadata"], json!({"seed": 1}));
    let board = &report["leaderboard"];
    let models: Vec<&str> = board["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["b", "a", "c"], "ranked by tier-1 rate");
    let a = &board["models"][1];
    assert_eq!(
        (a["n"].as_u64(), a["tier1"].as_u64(), a["tier3"].as_u64()),
        (Some(10), Some(3), Some(7))
    );
    let pass_at: Vec<Option<f64>> = a["pass_at"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64())
        .collect();
    assert!((pass_at[0].unwrap() - 0.3).abs() < 1e-9, "{a}");
    assert!((pass_at[1].unwrap() - 11.0 / 12.0).abs() < 1e-9, "{a}");
    assert_eq!(pass_at[2], None, "20 > 10 samples: undefined");
    let low = a["tier1_rate"]["low"].as_f64().unwrap();
    assert!((low - 0.1078).abs() < 1e-3, "Wilson 3/10 low bound: {low}");
    assert_eq!(a["failures"], json!([{"code": "snippet", "count": 7}]));

    let text = qtjudge(&[
        "report",
        dir.path().to_str().unwrap(),
        "--pass-at",
        "1,5,20",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("a #10"), "samples named in the table: {text}");
    assert!(text.contains("leaderboard (95% Wilson"), "{text}");
    assert!(text.contains("30% [11–60%]"), "{text}");
    assert!(text.contains("pass@20") && text.contains("n<k"), "{text}");

    // Not a run folder: a usage error.
    let empty = tempfile::tempdir().unwrap();
    let out = qtjudge(&["report", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no results"));
}

/// A run folder from before samples (`devstral`, `devstral#2`) reads back
/// as one model with samples 1 and 2.
#[test]
fn report_reads_a_run_from_before_samples_as_samples() {
    let dir = tempfile::tempdir().unwrap();
    write_result(
        dir.path(),
        "devstral.json",
        merged(json!({"model": "devstral"}), tier(1)),
    );
    write_result(
        dir.path(),
        "devstral_2.json",
        merged(json!({"model": "devstral#2"}), tier(3)),
    );
    let report = json_of(&qtjudge(&[
        "report",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]));
    let keys: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().into(),
                r["sample"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("devstral".into(), "1".into()),
            ("devstral".into(), "2".into())
        ]
    );
    let row = &report["leaderboard"]["models"][0];
    assert_eq!(
        (row["n"].as_u64(), row["tier1"].as_u64()),
        (Some(2), Some(1))
    );
}

/// `grade` on a JSONL of two models, several samples each (one with its
/// own sample ids, one numbered in order), metadata on every line: results
/// keyed by (model, task, sample), metadata in every output and the run
/// folder, the leaderboard at the end, `report` giving the same JSON, and
/// `--resume` running nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grade_keys_samples_and_ends_with_the_leaderboard() {
    if docker().await.is_none() {
        return;
    }
    let answers = repo().join("fixtures/outputs/reset-conversation");
    let read = |name: &str| std::fs::read_to_string(answers.join(name)).unwrap();
    let (correct, snippet) = (read("correct.py"), read("trap-diff-only.md"));
    let lines = [
        json!({"model": "good", "sample": "s1", "output": correct, "metadata": {"temperature": 0.2}}),
        json!({"model": "good", "id": "s2", "output": snippet, "metadata": {"temperature": 0.2}}),
        json!({"model": "poor", "output": snippet, "metadata": {"temperature": 0.8}}),
        json!({"model": "poor", "output": "Sorry, I cannot help with that.", "metadata": {"temperature": 0.8}}),
        json!({"model": "poor", "output": snippet, "metadata": {"temperature": 0.8}}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("samples.jsonl");
    std::fs::write(
        &jsonl,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let run_dir = dir.path().join("run");
    let grade = |extra: &[&str]| {
        let mut args = vec![
            "grade",
            jsonl.to_str().unwrap(),
            "--task",
            "reset-conversation",
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--jobs",
            "2",
        ];
        args.extend_from_slice(extra);
        qtjudge(&args)
    };
    let out = grade(&["--format", "json", "--pass-at", "1,2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = json_of(&out);
    let keys: Vec<(String, String, Option<u64>)> = printed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().into(),
                r["sample"].as_str().unwrap().into(),
                r["tier"].as_u64(),
            )
        })
        .collect();
    let key = |m: &str, s: &str, t: u64| (m.to_string(), s.to_string(), Some(t));
    assert_eq!(
        keys,
        [
            key("good", "s1", 1),
            key("good", "s2", 3),
            key("poor", "1", 3),
            key("poor", "2", 3),
            key("poor", "3", 3)
        ]
    );
    for r in printed["results"].as_array().unwrap() {
        assert!(r["metadata"]["temperature"].is_number(), "{r}");
    }
    let board = &printed["leaderboard"];
    assert_eq!(board["models"][0]["model"], "good");
    assert_eq!(
        board["models"][0]["pass_at"][1],
        json!({"k": 2, "value": 1.0})
    );
    assert_eq!(
        board["models"][1]["failures"],
        json!([{"code": "snippet", "count": 2}, {"code": "no_code", "count": 1}])
    );
    for file in [
        "good_s1.json",
        "good_s2.json",
        "poor_1.json",
        "poor_2.json",
        "poor_3.json",
    ] {
        let saved: Value =
            serde_json::from_slice(&std::fs::read(run_dir.join(file)).unwrap()).unwrap();
        assert!(saved["metadata"].is_object(), "{file}: {saved}");
    }
    let report = json_of(&qtjudge(&[
        "report",
        run_dir.to_str().unwrap(),
        "--format",
        "json",
        "--pass-at",
        "1,2",
    ]));
    assert_eq!(
        report, printed,
        "the run folder re-renders as `grade` printed it"
    );

    // --resume: every key is already there, so nothing runs again.
    let again = grade(&["--resume"]);
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{text}");
    assert!(
        text.contains("leaderboard (95% Wilson") && text.contains("poor #3"),
        "{text}"
    );
    let resumed: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("good_s1.json")).unwrap()).unwrap();
    assert_eq!(
        resumed["run_id"], printed["results"][0]["run_id"],
        "not run again"
    );
}
