//! Two real `qtjudge serve` replicas on 127.0.0.1 sharing one PostgreSQL
//! schema and the real Docker engine, under replica names of their own (as
//! on two hosts: neither can see the other's processes): a 60-answer batch
//! posted to one is read from the other; the first killed with -9 mid-batch
//! has its job run again by the other (attempts 2, one result each), its
//! container removed by the other once the store says it is dead, and
//! every callback delivered once.
//!
//! PostgreSQL: `QTJUDGE_TEST_POSTGRES` (default: what `scripts/postgres`
//! starts). Without it (or Docker) the test fails in CI and skips, loudly,
//! elsewhere.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_postgres::NoTls;

use crate::callbacks::{Receiver, SECRET};
use crate::replicas_share::{gauge, wait_until};
use crate::server::{containers_of, Server};
use crate::support::{docker, fixture, manifest};

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
async fn a_batch_survives_a_replica_killed_mid_run_and_its_containers_are_reaped_by_the_other() {
    let Some(_) = docker().await else { return };
    let Some(schema) = Schema::make().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Short leases: the dead replica's job is free again within seconds,
    // and it is dead to the store after two leases.
    let args = [
        "--store",
        schema.url.as_str(),
        "--workers",
        "1",
        "--lease-ttl-secs",
        "3",
        "--callback-secret",
        SECRET,
    ];
    let start = |name: &str| {
        Server::start_with_env(
            &dir.path().join(name),
            Some(crate::server::TOKEN),
            &args,
            &[("QTJUDGE_REPLICA_NAME", name)],
        )
    };
    let a = start("node-a");
    let b = start("node-b");
    a.wait_ready().await;
    b.wait_ready().await;
    let health = b.get_json("/healthz").await;
    assert_eq!(health["store"]["reachable"], true, "{health}");
    let (receiver, hook) = Receiver::start(0, false).await;

    // Sixty answers: the fixture answers over and over, a model each.
    let expected = manifest();
    let answers: Vec<(String, &crate::support::Expected)> = (0..60)
        .map(|i| {
            let e = &expected[i % expected.len()];
            (format!("{}-{i}", e.model), e)
        })
        .collect();
    let batch: Vec<Value> = answers
        .iter()
        .map(|(model, e)| json!({"model": model, "output": fixture(&e.file)}))
        .collect();
    let batch_id = a.accepted("/v1/batches", &json!(batch), Some(&hook)).await;
    // Two single answers with their own callbacks, one sent to each.
    let single = json!({"output": fixture("devstral.md"), "model": "single", "callback_url": hook});
    let mut singles = Vec::new();
    for server in [&a, &b] {
        singles.push(server.accepted("/v1/verifications", &single, None).await);
    }
    // What A accepted, B sees at once.
    let progress = b.get_json(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(progress["total"], 60, "{progress}");

    // Kill A while it runs a job in its container, mid-batch.
    let deadline = Instant::now() + Duration::from_secs(180);
    let held = loop {
        if let Some(id) = schema.held_by(a.pid()).await {
            let done = b.get_json(&format!("/v1/batches/{batch_id}")).await["progress"]["done"]
                .as_u64()
                .unwrap_or(0);
            if done >= 4 && containers_of(a.pid()).await > 0 {
                break id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replica A never ran a job mid-batch; its log:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let killed = a.kill_9();

    // B finishes everything, the killed replica's job included: each job
    // once, with the verdict its answer gets.
    let batch_path = format!("/v1/batches/{batch_id}?wait=60");
    wait_until("the batch done", Duration::from_secs(900), async || {
        b.get_json(&batch_path).await["status"] == "done"
    })
    .await;
    let view = b.get_json(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(view["status"], "done", "{view}\nB's log:\n{}", b.log());
    let rows = view["verifications"].as_array().unwrap();
    assert_eq!(rows.len(), 60, "{view}");
    let mut rerun = 0;
    for ((model, e), row) in answers.iter().zip(rows) {
        assert_eq!(row["model"], *model, "{row}");
        assert_eq!(row["tier"], e.tier, "{model} ({}): {row}", e.file);
        let job = b.view(row["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "done", "{job}");
        let attempts = job["attempts"].as_i64().unwrap();
        if job["id"] == held {
            assert_eq!(attempts, 2, "run again after the kill: {job}");
        }
        assert!(attempts <= 2, "{job}");
        rerun += usize::from(attempts == 2);
    }
    for id in &singles {
        let job = b.finished(id).await;
        assert_eq!(job["result"]["tier"], 1, "{job}");
        if *id == held {
            assert_eq!(job["attempts"], 2, "run again after the kill: {job}");
        }
    }
    assert!(
        rerun >= 1 || singles.contains(&held),
        "the killed job's re-run shows in attempts"
    );
    let health = b.get_json("/healthz").await;
    assert_eq!(health["queue"]["queued"], 0, "{health}");
    assert_eq!(health["queue"]["running"], 0, "{health}");
    let log = b.log();
    assert!(!log.contains("cannot store a result"), "B's log:\n{log}");
    assert_eq!(gauge(&b, "qtjudge_cluster_queue_depth").await, Some(0.0));
    assert_eq!(gauge(&b, "qtjudge_cluster_running").await, Some(0.0));

    // The killed replica's containers: removed by B, which cannot see A's
    // processes (another replica name), once the store says A is dead.
    wait_until(
        "A's containers reaped by B",
        Duration::from_secs(60),
        async || containers_of(killed).await == 0,
    )
    .await;
    assert!(
        b.log()
            .contains("replicas that stopped answering the store"),
        "B's log:\n{}",
        b.log()
    );

    // Every callback once: the batch's and the two singles', each under
    // one delivery id.
    wait_until(
        "three deliveries taken",
        Duration::from_secs(120),
        async || receiver.seen().iter().filter(|s| s.answered == 200).count() >= 3,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = receiver.seen();
    let mut by_delivery: BTreeMap<String, usize> = BTreeMap::new();
    let mut subjects = Vec::new();
    for attempt in &seen {
        *by_delivery
            .entry(attempt.header("x-qtjudge-delivery"))
            .or_default() += 1;
        subjects.push(attempt.json()["id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 3, "each delivery once: {seen:#?}");
    assert_eq!(by_delivery.len(), 3, "{seen:#?}");
    subjects.sort();
    let mut wanted = vec![batch_id.clone()];
    wanted.extend(singles.iter().cloned());
    wanted.sort();
    assert_eq!(subjects, wanted);

    b.stop();
    schema.drop_it().await;
}
