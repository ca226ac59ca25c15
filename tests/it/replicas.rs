//! Two real `qtjudge serve` replicas on 127.0.0.1 sharing one PostgreSQL
//! schema and the real Docker sandbox: work submitted to one is read from
//! the other, and a replica killed with -9 while it runs a job has that
//! job run again by the other (attempts 2, one result).
//!
//! PostgreSQL: `QTJUDGE_TEST_POSTGRES` (default: what `scripts/postgres`
//! starts). Without it (or Docker) the test fails in CI and skips, loudly,
//! elsewhere.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::replicas_share::gauge;
use crate::server::{containers_of, Server};
use crate::support::{docker, fixture};

const DEFAULT_TEST_URL: &str = "postgres://qtjudge:qtjudge@127.0.0.1:54329/qtjudge_test";

/// A schema of its own on the test server (dropped at the end), and a
/// client on it.
pub(crate) struct Schema {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) client: tokio_postgres::Client,
}

impl Schema {
    pub(crate) async fn make() -> Option<Schema> {
        let admin =
            std::env::var("QTJUDGE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_TEST_URL.into());
        let (client, connection) = match tokio_postgres::connect(&admin, NoTls).await {
            Ok(pair) => pair,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but PostgreSQL is not reachable at {admin}: {e} (scripts/postgres starts it)")
            }
            Err(e) => {
                eprintln!("\n!!! SKIPPED: PostgreSQL is not reachable at {admin}: {e}; run scripts/postgres\n");
                return None;
            }
        };
        tokio::spawn(connection);
        let name = format!("it_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let separator = if admin.contains('?') { '&' } else { '?' };
        Some(Schema {
            url: format!("{admin}{separator}options=-c%20search_path%3D{name}"),
            name,
            client,
        })
    }

    pub(crate) async fn drop_it(self) {
        let _ = self
            .client
            .batch_execute(&format!(
                "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                self.name
            ))
            .await;
    }

    /// The job a process holds now, if any.
    pub(crate) async fn held_by(&self, pid: u32) -> Option<String> {
        self.client
            .query_opt(
                &format!(
                    "SELECT id FROM {}.jobs WHERE status = 'running' AND lease_holder LIKE $1",
                    self.name
                ),
                &[&format!("%/{pid}/%")],
            )
            .await
            .unwrap()
            .map(|row| row.get("id"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_queue_and_a_killed_ones_job_is_run_by_the_other() {
    let Some(_) = docker().await else { return };
    let Some(schema) = Schema::make().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Short leases: the dead replica's job is free again within seconds.
    let args = [
        "--store",
        schema.url.as_str(),
        "--workers",
        "1",
        "--lease-ttl-secs",
        "3",
    ];
    let a = Server::start(&dir.path().join("a"), &args);
    let b = Server::start(&dir.path().join("b"), &args);
    a.wait_ready().await;
    b.wait_ready().await;
    let health = b.get_json("/healthz").await;
    assert_eq!(health["store"]["reachable"], true, "{health}");

    let answers = [
        ("devstral", "devstral.md", 1),
        ("magistral", "magistral.md", 2),
        ("mistral-small", "mistral-small.md", 1),
        ("display-only", "trap-display-only.md", 3),
    ];
    let mut ids = Vec::new();
    for (model, file, _) in answers {
        ids.push(a.submit(model, &fixture(file)).await);
    }
    // What one replica accepted, the other sees at once.
    for id in &ids {
        let view = b.view(id).await;
        assert!(view["status"].is_string(), "{view}");
    }

    // Kill A while it runs a job in its container.
    let deadline = Instant::now() + Duration::from_secs(120);
    let held = loop {
        if let Some(id) = schema.held_by(a.pid()).await {
            if containers_of(a.pid()).await > 0 {
                break id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replica A never ran a job; its log:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let killed = a.kill_9();

    // B finishes everything, the killed replica's job included.
    for (id, (model, _, tier)) in ids.iter().zip(answers) {
        let view = b.finished(id).await;
        assert_eq!(
            view["status"],
            "done",
            "{model}: {view}\nB's log:\n{}",
            b.log()
        );
        assert_eq!(view["result"]["tier"], tier, "{model}: {view}");
        if *id == held {
            assert_eq!(view["attempts"], 2, "run again after the kill: {view}");
        } else {
            assert!(view["attempts"].as_i64().unwrap() <= 2, "{view}");
        }
    }
    // One result per job: nothing left running, nothing finished twice
    // (a second finish would have been refused, and would show here as an
    // error in B's log).
    let health = b.get_json("/healthz").await;
    assert_eq!(health["queue"]["queued"], 0, "{health}");
    assert_eq!(health["queue"]["running"], 0, "{health}");
    let log = b.log();
    assert!(!log.contains("cannot store a result"), "B's log:\n{log}");
    assert_eq!(gauge(&b, "qtjudge_cluster_queue_depth").await, Some(0.0));
    assert_eq!(gauge(&b, "qtjudge_cluster_running").await, Some(0.0));

    b.stop();
    // The killed replica's container: removed by whoever reaps dead
    // owners' containers on this engine (here, the CLI's reap).
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_qtjudge"))
        .arg("reap")
        .output();
    assert_eq!(
        containers_of(killed).await,
        0,
        "the killed replica's container"
    );
    schema.drop_it().await;
}
