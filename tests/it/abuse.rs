//! Issue 23's attacks on a real `qtjudge serve`, run by `scripts/load`'s
//! modes at a size that fits CI: half-open connections, slow bodies, idle
//! connections at SIGTERM, a batch of zips that unpack big; and a second
//! service on the same data dir. Each asserts the bound the README's
//! "Security model" gives.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{service_ready, Server, TOKEN};
use crate::stores::Kind;
use crate::support::repo;

/// Runs `scripts/load --json --mode MODE ARGS…` against the server;
/// (exit code, the summary on its last line).
async fn attack(server: &Server, mode: &str, args: &[&str]) -> (i32, Value) {
    let mut command = Command::new("python3");
    command
        .arg(repo().join("scripts/load"))
        .args(["--url", &server.base, "--token", TOKEN, "--json"])
        .args(["--mode", mode])
        .args(args);
    // The modes that watch the server's process (fds, RSS, its exit).
    if mode != "slow-body" {
        command.args(["--pid", &server.pid().to_string()]);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("python3 runs scripts/load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.trim().lines().last().unwrap_or("");
    let summary: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "scripts/load --mode {mode} printed no JSON summary ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_in_time_and_healthz_is_answered_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 256;
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--header-timeout-secs",
            "3",
            "--max-connections",
            &cap.to_string(),
        ],
    );
    // Twelve times the cap: most make room for newer ones, the rest time out.
    let (code, summary) = attack(
        &server,
        "half-open",
        &[
            "--connections",
            "3000",
            "--hold",
            "8",
            "--expect-closed-within",
            "6",
            "--max-healthz-ms",
            "1000",
            "--max-fds",
            &(cap + 64).to_string(),
        ],
    )
    .await;
    assert_eq!(code, 0, "violations: {summary}\nlog:\n{}", server.log());
    assert!(
        summary["connections_opened"].as_u64().unwrap() >= 2000,
        "{summary}"
    );
    assert_eq!(summary["still_open"], 0, "{summary}");
    assert_eq!(summary["healthz"]["failures"], 0, "{summary}");
    let metrics = server.metrics().await;
    let evicted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("qtjudge_http_connections_total{outcome=\"evicted_other\"} "))
        .and_then(|v| v.parse().ok())
        .expect("the eviction counter is exported");
    assert!(evicted > 0, "the cap made room by eviction:\n{metrics}");
    assert!(server.stop() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_in_is_refused_with_408_when_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--body-timeout-secs", "4"]);
    let (code, summary) = attack(
        &server,
        "slow-body",
        &[
            "--connections",
            "5",
            "--hold",
            "9",
            "--expect-closed-within",
            "8",
        ],
    )
    .await;
    assert_eq!(code, 0, "violations: {summary}\nlog:\n{}", server.log());
    assert_eq!(summary["answered"]["408"], 5, "{summary}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_and_half_open_connections_attached_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let (code, summary) = attack(
        &server,
        "idle-at-sigterm",
        &["--connections", "200", "--max-exit-seconds", "5"],
    )
    .await;
    assert_eq!(code, 0, "violations: {summary}\nlog:\n{}", server.log());
    assert_eq!(summary["exited"], true, "{summary}");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "a clean exit: {status}\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_on_the_same_data_dir_refuses_to_start_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let started = Instant::now();
    let second = Command::new(env!("CARGO_BIN_EXE_qtjudge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--tasks-dir")
        .arg(repo().join("fixtures/tasks"))
        .env_remove("QTJUDGE_TOKEN")
        .output()
        .expect("the binary runs");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("pid {}", server.pid())) && stderr.contains("--data-dir"),
        "the error names the other service and what to do: {stderr}"
    );
    // The first one was not disturbed.
    let health = server.health().await;
    assert_eq!(health.status(), 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_zips_that_unpack_big_stays_small_in_memory_and_in_the_store() {
    let Some((server, _, dir)) = service_ready(Kind::Sqlite, &["--workers", "1"]).await else {
        return;
    };
    let data = dir.path().join("data");
    let (code, summary) = attack(
        &server,
        "archive-batch",
        &[
            "--apps",
            "50",
            "--app-unpacked-kb",
            "8000",
            "--hold",
            "6",
            "--data-dir",
            data.to_str().unwrap(),
            "--max-rss-growth-mb",
            "150",
            "--max-store-growth-mb",
            "50",
        ],
    )
    .await;
    assert_eq!(code, 0, "violations: {summary}\nlog:\n{}", server.log());
    assert_eq!(summary["status"], 202, "{summary}");
    assert!(summary["rss_growth_mb"].as_f64().is_some(), "{summary}");
    // A batch whose apps declare more than the limit is refused with the figure.
    server.stop();
    let server = Server::start(&data, &["--workers", "1", "--max-batch-unpacked-mb", "100"]);
    server.wait_ready().await;
    let (code, summary) = attack(
        &server,
        "archive-batch",
        &["--apps", "20", "--app-unpacked-kb", "8000", "--hold", "1"],
    )
    .await;
    assert_eq!(
        code, 1,
        "a refused batch is a violation of the mode: {summary}"
    );
    assert_eq!(summary["status"], 413, "{summary}");
    server.stop();
}
