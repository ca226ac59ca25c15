//! `qtjudge grade --server URL`: a benchmark stage sends its answers to a
//! real `qtjudge serve` on 127.0.0.1 and gets the output a local run gives.

use std::process::{Command, Output};

use serde_json::Value;

use crate::server::{service_ready, TOKEN};
use crate::stores::Kind;
use crate::support::repo;

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
    let Some((server, _, dir)) = service_ready(Kind::Sqlite, &["--workers", "2"]).await else {
        return;
    };

    // One answer of each tier, and a model named twice (kept apart as samples 1 and 2).
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
    let verdict = |name: &str| {
        let (model, sample) = name
            .split_once('#')
            .map_or((name, None), |(m, s)| (m, Some(s)));
        let r = results
            .iter()
            .find(|r| r["model"] == model && r["sample"].as_str() == sample)
            .unwrap_or_else(|| panic!("no result for {model}: {printed}"));
        (r["tier"].as_u64(), r["failure"].as_str().map(String::from))
    };
    assert_eq!(verdict("devstral#1"), (Some(1), None));
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
    let screenshots: Vec<_> = walk(&run_dir.join("devstral_1"))
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
    let Some((server, _, dir)) = service_ready(Kind::Sqlite, &[]).await else {
        return;
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grade_with_server_sends_a_folder_app_and_an_archive() {
    let Some((server, _, dir)) = service_ready(Kind::Sqlite, &["--workers", "2"]).await else {
        return;
    };
    let apps = repo().join("fixtures/apps");
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(apps.join("manifest.toml")).unwrap()).unwrap();
    let expected = |file: &str| {
        let app = manifest["app"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["file"].as_str() == Some(file))
            .unwrap_or_else(|| panic!("{file} is not in the apps manifest"));
        let failure = app["failure"].as_str().unwrap_or("");
        (
            app["tier"].as_integer().map(|t| t as u64),
            (!failure.is_empty()).then(|| failure.to_string()),
        )
    };
    // A stage's folder of answers: each subfolder and archive is an app.
    let stage = dir.path().join("stage");
    copy_dir(
        &apps.join("package_settings"),
        &stage.join("package_settings"),
    );
    std::fs::copy(
        apps.join("archived_chat.tar.gz"),
        stage.join("archived_chat.tar.gz"),
    )
    .unwrap();
    let run_dir = dir.path().join("run");
    let out = grade(
        &[
            "--server",
            &server.base,
            "--format",
            "json",
            "--run-dir",
            run_dir.to_str().unwrap(),
            stage.to_str().unwrap(),
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
    // What the run folder keeps, as `qtjudge report` reads it back.
    let report = Command::new(env!("CARGO_BIN_EXE_qtjudge"))
        .args(["report", run_dir.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let saved: Value = serde_json::from_slice(&report.stdout).unwrap();
    let results = saved["results"]
        .as_array()
        .or_else(|| saved.as_array())
        .expect("a list of results");
    assert_eq!(results.len(), 2, "{saved:#}");
    for (model, file, origin, entry) in [
        (
            "package_settings",
            "package_settings",
            "directory",
            "main.py",
        ),
        ("archived_chat", "archived_chat.tar.gz", "tar_gz", "app.py"),
    ] {
        let r = results
            .iter()
            .find(|r| r["model"] == model)
            .unwrap_or_else(|| panic!("no result for {model}: {saved:#}"));
        assert_eq!(
            (r["tier"].as_u64(), r["failure"].as_str().map(String::from)),
            expected(file),
            "{model}: {r:#}"
        );
        assert_eq!(r["task"], "generic-reset", "{model}");
        assert_eq!(r["task_choice"]["how"], "default", "{model}");
        // The app as it was given, not the archive it travelled in.
        assert_eq!(r["bundle"]["origin"], origin, "{model}: {:#}", r["bundle"]);
        assert_eq!(r["bundle"]["entry"], entry, "{model}: {:#}", r["bundle"]);
        assert!(
            r["bundle"]["files"].as_array().unwrap().len() > 1,
            "{model}: {:#}",
            r["bundle"]
        );
    }
    server.stop();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}
