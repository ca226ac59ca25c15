//! `qtjudge grade --server URL`: a benchmark stage sends its answers to a
//! real `qtjudge serve` on 127.0.0.1 and gets the output a local run gives.

use std::process::{Command, Output};

use serde_json::Value;

use crate::server::{Server, TOKEN};
use crate::support::{docker, repo};

fn grade(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qtjudge"));
    command
        .arg("grade")
        .args(args)
        .env_remove("QTJUDGE_TOKEN")
        .env_remove("QTJUDGE_SERVER");
    if let Some(token) = token {
        command.env("QTJUDGE_TOKEN", token);
    }
    command.output().expect("qtjudge grade runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grade_with_server_gives_the_local_output_and_keeps_the_screenshots() {
    if docker().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--workers", "2"]);
    server.wait_ready().await;

    // One answer of each tier, and a model named twice (kept apart as `#2`).
    let answers = repo().join("fixtures/outputs/reset-conversation");
    let jsonl = dir.path().join("stage.jsonl");
    let devstral = std::fs::read_to_string(answers.join("devstral.md")).unwrap();
    let lines = [
        serde_json::json!({"model": "devstral", "output": devstral}),
        serde_json::json!({"model": "devstral", "output": "Sorry, I cannot help with that."}),
    ];
    std::fs::write(
        &jsonl,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let run_dir = dir.path().join("run");
    let out = grade(
        &[
            "--server",
            &server.base,
            "--format",
            "json",
            "--batch-size",
            "2",
            "--run-dir",
            run_dir.to_str().unwrap(),
            answers.join("gpt-oss.md").to_str().unwrap(),
            answers.join("granite4-small.md").to_str().unwrap(),
            jsonl.to_str().unwrap(),
        ],
        Some(TOKEN),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{stderr}\nserver log:\n{}",
        server.log()
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("--format json prints JSON");
    let results = printed["results"]
        .as_array()
        .or_else(|| printed.as_array())
        .expect("a list of results");
    let verdict = |model: &str| {
        let r = results
            .iter()
            .find(|r| r["model"] == model)
            .unwrap_or_else(|| panic!("no result for {model}: {printed}"));
        (r["tier"].as_u64(), r["failure"].as_str().map(String::from))
    };
    assert_eq!(verdict("devstral"), (Some(1), None));
    assert_eq!(verdict("gpt-oss"), (Some(2), None));
    assert_eq!(verdict("granite4-small"), (Some(3), Some("snippet".into())));
    assert_eq!(verdict("devstral#2"), (Some(3), Some("no_code".into())));
    assert_eq!(results.len(), 4);

    // The run folder holds what a local run keeps: re-rendering it with
    // `qtjudge report` prints the same JSON, and the screenshots are PNGs.
    let report = Command::new(env!("CARGO_BIN_EXE_qtjudge"))
        .args(["report", run_dir.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let reprinted: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        reprinted, printed,
        "the saved results differ from the printed ones"
    );
    let screenshots: Vec<_> = walk(&run_dir.join("devstral"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert!(!screenshots.is_empty(), "no screenshot kept for devstral");
    for png in screenshots {
        let bytes = std::fs::read(&png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            png.display()
        );
    }

    // --resume sends nothing that is already graded: with the server gone,
    // the run still completes from the folder.
    server.stop();
    let resumed = grade(
        &[
            "--server",
            "http://127.0.0.1:9",
            "--resume",
            "--format",
            "json",
            "--run-dir",
            run_dir.to_str().unwrap(),
            answers.join("gpt-oss.md").to_str().unwrap(),
        ],
        Some(TOKEN),
    );
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grade_with_server_and_a_wrong_token_says_what_to_do() {
    if docker().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.wait_ready().await;
    let answer = repo().join("fixtures/outputs/reset-conversation/devstral.md");
    let out = grade(
        &[
            "--server",
            &server.base,
            "--run-dir",
            dir.path().join("run").to_str().unwrap(),
            answer.to_str().unwrap(),
        ],
        Some("not-the-token"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("401"), "stderr:\n{stderr}");
    assert!(stderr.contains("--token"), "stderr:\n{stderr}");

    // An unknown task is refused before anything is sent.
    let out = grade(
        &[
            "--server",
            &server.base,
            "--task",
            "no-such-task",
            "--run-dir",
            dir.path().join("run").to_str().unwrap(),
            answer.to_str().unwrap(),
        ],
        Some(TOKEN),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("no-such-task") && stderr.contains("reset-conversation"),
        "stderr:\n{stderr}"
    );
    server.stop();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}
