//! `docker compose up` as the README gives it: the service image builds
//! offline FROM the sandbox image, answers on the published loopback port,
//! verifies an answer through the mounted Docker socket, and `down` leaves
//! no sandbox container behind. The `scale` profile: PostgreSQL built from
//! Debian's package and two replicas sharing its queue.

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
    /// The scale profile's replicas' ports.
    replica_ports: [u16; 2],
}

impl Project {
    fn new(command: Vec<&'static str>, name: &str) -> Project {
        Project {
            command,
            name: format!("qtjudgetest{name}{}", std::process::id()),
            port: free_port(),
            replica_ports: [free_port(), free_port()],
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.command[0])
            .args(&self.command[1..])
            .args(["-p", &self.name])
            .args(args)
            .current_dir(repo())
            .env("QTJUDGE_TOKEN", "compose-test-token")
            .env("QTJUDGE_PORT", self.port.to_string())
            .env("QTJUDGE_REPLICA_1_PORT", self.replica_ports[0].to_string())
            .env("QTJUDGE_REPLICA_2_PORT", self.replica_ports[1].to_string())
            .env("QTJUDGE_PG_PASSWORD", "compose-test-password")
            .env("QTJUDGE_WORKERS", "1")
            .output()
            .expect("compose runs")
    }

    fn up(&self, args: &[&str]) {
        let up = self.run(args);
        assert!(
            up.status.success(),
            "compose up failed:\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
    }

    /// Waits for the service on `port` to say ok.
    async fn ready(&self, port: u16) -> String {
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let health: Value = match client.get(format!("{base}/healthz")).send().await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            if health["status"] == "ok" {
                return base;
            }
            assert!(
                Instant::now() < deadline,
                "the composed service on {port} never became ready: {health}\n{}",
                String::from_utf8_lossy(&self.run(&["logs"]).stdout)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn down(&self) {
        let down = self.run(&["down", "-v", "--timeout", "60"]);
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A verification of a flawless answer through the service at `base`.
async fn verify_flawless(base: &str) -> Value {
    let done: Value = reqwest::Client::new()
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
    done
}

/// `compose` when installed; `None` (a loud skip) elsewhere than CI.
fn compose_or_skip() -> Option<Vec<&'static str>> {
    let command = compose();
    if command.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but neither `docker compose` nor `docker-compose` is installed"
        );
        eprintln!("\n!!!!!!!! SKIPPING COMPOSE TEST: no docker compose here !!!!!!!!\n");
    }
    command
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
    let Some(command) = compose_or_skip() else {
        return;
    };
    let project = Project::new(command, "");
    project.up(&["up", "-d", "--build"]);
    let base = project.ready(project.port).await;
    let done = verify_flawless(&base).await;
    let run_id = done["result"]["run_id"].as_str().unwrap().to_string();

    project.down();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_profile_runs_two_replicas_on_one_postgresql_queue() {
    if docker().await.is_none() {
        return;
    }
    let Some(command) = compose_or_skip() else {
        return;
    };
    let project = Project::new(command, "scale");
    project.up(&[
        "--profile",
        "scale",
        "up",
        "-d",
        "--build",
        "postgres",
        "replica-1",
        "replica-2",
    ]);
    let first = project.ready(project.replica_ports[0]).await;
    let second = project.ready(project.replica_ports[1]).await;
    // Only the three services named: not the single SQLite service.
    let single = project.run(&["ps", "-q", "qtjudge"]);
    let single = String::from_utf8_lossy(&single.stdout).to_string();
    assert!(
        single.trim().is_empty(),
        "the single service runs: {single}"
    );
    let health: Value = reqwest::get(format!("{second}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"]["reachable"], true, "{health}");

    // Verified through one replica, read from the other: one queue.
    let done = verify_flawless(&first).await;
    let id = done["id"].as_str().unwrap();
    let seen: Value = reqwest::Client::new()
        .get(format!("{second}/v1/verifications/{id}"))
        .bearer_auth("compose-test-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["result"]["tier"], 1, "{seen}");
    assert_eq!(seen["result"]["run_id"], done["result"]["run_id"]);
    project.down();
}
