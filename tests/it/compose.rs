//! `docker compose up` as the README gives it: the service image builds
//! offline FROM the sandbox image, answers on the published loopback port,
//! verifies an answer through the mounted Docker socket, and `down` leaves
//! no sandbox container behind.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{docker, fixture, repo};

/// `docker compose` (v2) or `docker-compose` (v1), whichever is installed.
fn compose() -> Option<Vec<&'static str>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker", &["compose"]) {
        Some(vec!["docker", "compose"])
    } else if works("docker-compose", &[]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

struct Project {
    command: Vec<&'static str>,
    name: String,
    port: u16,
}

impl Project {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.command[0])
            .args(&self.command[1..])
            .args(["-p", &self.name])
            .args(args)
            .current_dir(repo())
            .env("QTJUDGE_TOKEN", "compose-test-token")
            .env("QTJUDGE_PORT", self.port.to_string())
            .env("QTJUDGE_WORKERS", "1")
            .output()
            .expect("compose runs")
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--timeout", "30"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_serves_verifications_and_down_leaves_nothing() {
    if docker().await.is_none() {
        return;
    }
    let Some(command) = compose() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but neither `docker compose` nor `docker-compose` is installed"
        );
        eprintln!("\n!!!!!!!! SKIPPING COMPOSE TEST: no docker compose here !!!!!!!!\n");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let project = Project {
        command,
        name: format!("qtjudgetest{}", std::process::id()),
        port,
    };
    let up = project.run(&["up", "-d", "--build"]);
    assert!(
        up.status.success(),
        "compose up failed:\n{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health: Value = match client.get(format!("{base}/healthz")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if health["status"] == "ok" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the composed service never became ready: {health}\n{}",
            String::from_utf8_lossy(&project.run(&["logs"]).stdout)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done: Value = client
        .post(format!("{base}/v1/verifications?wait=120"))
        .bearer_auth("compose-test-token")
        .json(&json!({"output": fixture("devstral.md"), "model": "devstral"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["tier"], 1, "{done}");
    let run_id = done["result"]["run_id"].as_str().unwrap().to_string();

    let down = project.run(&["down", "-v", "--timeout", "60"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    // The service's warm containers go with it (its SIGTERM drains the pool).
    let engine = qtjudge::sandbox::docker::connect_engine().await.unwrap();
    let left = qtjudge::sandbox::docker::count_labelled(&engine, Some(&run_id))
        .await
        .unwrap();
    assert_eq!(left, 0, "the verified answer's container is left");
    let ps = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=qtjudge.owner",
            "--format",
            "{{.Label \"qtjudge.owner\"}}",
        ])
        .output()
        .unwrap();
    let owners = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !owners.lines().any(|o| o.starts_with("qtjudge-service:")),
        "the composed service left sandbox containers: {owners}"
    );
}
