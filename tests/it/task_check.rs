//! Issue 21's gold validation, through the real binary: every task's
//! original fails with its expected code and every reference gets tier 1,
//! in the real sandbox, twice each (the fixture answers are graded by
//! `fixtures_graded`); a mismatch exits 1 and an outage 3, whatever the
//! items.

use std::path::Path;
use std::process::Output;

use crate::support::{docker, repo};

fn qtjudge(args: &[&str], python: Option<&str>) -> Output {
    crate::support::qtjudge_cli(args, python)
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tasks_original_fails_and_its_references_pass_in_every_run() {
    let Some(_) = docker().await else {
        return;
    };
    let tasks = qtjudge::task::load_with_originals(&repo().join("fixtures/tasks"));
    assert!(!tasks.is_empty());
    for task in tasks {
        let out = qtjudge(
            &[
                "task", "check", &task.id, "--runs", "2", "--only", "gold", "--format", "json",
                "--jobs", "2",
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{}: {}", task.id, explain(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let items = report["items"].as_array().unwrap();
        let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[0], "original", "{}", task.id);
        assert!(kinds[1..].iter().all(|k| *k == "reference") && kinds.len() >= 2);
        for item in items {
            assert_eq!(item["status"], "pass", "{}: {item}", task.id);
            assert_eq!(item["runs"].as_array().unwrap().len(), 2);
        }
    }
}

/// A copy of the reset task with `reference` as its one reference and no
/// fixture answers; returns the task's folder.
fn task_with_reference(root: &Path, reference: &str) -> String {
    let from = repo().join("fixtures/tasks/reset-conversation");
    let dir = root.join("reset-conversation");
    std::fs::create_dir_all(dir.join("reference")).unwrap();
    std::fs::copy(from.join("original.py"), dir.join("original.py")).unwrap();
    let toml = std::fs::read_to_string(from.join("task.toml")).unwrap();
    let toml: String = toml
        .lines()
        .filter(|l| !l.starts_with("answers ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("task.toml"), toml).unwrap();
    let answer = repo()
        .join("fixtures/outputs/reset-conversation")
        .join(reference);
    std::fs::copy(answer, dir.join("reference").join(reference)).unwrap();
    dir.to_string_lossy().into_owned()
}

/// No Docker needed: the harness's interpreter is `false`, so every run
/// is an engine fault of the judge's, while a snippet is judged without
/// running.
#[test]
fn a_reference_that_fails_exits_1_and_runs_not_judged_exit_3() {
    let root = tempfile::tempdir().unwrap();
    let local = ["--sandbox", "local", "--runs", "1", "--jobs", "1"];
    let check = |folder: &str| {
        let mut args = vec!["task", "check", folder];
        args.extend_from_slice(&local);
        qtjudge(&args, Some("/bin/false"))
    };

    let snippet = task_with_reference(&root.path().join("a"), "trap-diff-only.md");
    let out = check(&snippet);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(
        text.contains("MISMATCH") && text.contains("got tier 3 snippet"),
        "{text}"
    );

    let correct = task_with_reference(&root.path().join("b"), "correct.py");
    let out = check(&correct);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert!(text.contains("not judged ×1"), "{text}");

    let unknown = qtjudge(&["task", "check", "no-such-task"], None);
    assert_eq!(unknown.status.code(), Some(2), "{}", explain(&unknown));
}

#[test]
fn task_list_names_each_tasks_gold() {
    let out = qtjudge(&["task", "list"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        text.contains("reset-conversation  Add a button that resets the conversation"),
        "{text}"
    );
    assert!(text.contains("original: must get tier 3"), "{text}");
    assert!(
        text.contains("references: 1 (reference/correct.py)"),
        "{text}"
    );
    assert!(
        text.contains("fixture answers: ") && !text.contains("fixture answers: none"),
        "{text}"
    );
    assert!(text.contains("generic-reset"), "{text}");
}
