//! Issue 20: the shared store goes away during a batch, two ways. In the
//! first test the replica reaches PostgreSQL through a TCP proxy on
//! 127.0.0.1 that the test switches off (live connections dropped, new
//! ones closed at once: to this replica, the store is gone; other tests'
//! are untouched) and on again. In the second, the PostgreSQL server
//! itself (a cluster of the test's own) is stopped (`pg_ctl -m fast`) and
//! started again: every session ends, the pool's connections and the
//! `LISTEN` connection with them. Meanwhile `/healthz` says the store is
//! unreachable, the API answers 503 `store_unavailable`, a verification
//! that ends keeps its result until the store is back, and nothing panics;
//! after it, every accepted job finishes once, with its answer's verdict.
//!
//! Real parts: PostgreSQL, the real Docker sandbox, a `qtjudge serve`
//! process. Without them the test fails in CI and skips, loudly,
//! elsewhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::replicas::Schema;
use crate::replicas_share::{gauge, wait_until};
use crate::server::{containers_of, Server};
use crate::support::{docker, drop_connections, fixture, manifest, Expected};

/// Forwards connections on a loopback port to PostgreSQL while on; while
/// off, closes each at once and has dropped the live ones.
struct StoreProxy {
    port: u16,
    up: Arc<AtomicBool>,
    /// The accept loop (first) and every connection's copy task.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl StoreProxy {
    async fn start(upstream: String) -> StoreProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (accept_up, accept_tasks) = (up.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut tasks = accept_tasks.lock().unwrap();
                tasks.retain(|t| !t.is_finished());
                tasks.push(copy.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        StoreProxy { port, up, tasks }
    }

    fn off(&self) {
        self.up.store(false, Ordering::SeqCst);
        drop_connections(&self.tasks);
    }

    fn on(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for StoreProxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// `url` with its server replaced by the proxy's port, and the server.
fn through_proxy(url: &str, port: u16) -> (String, String) {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test server must be on TCP: {other:?}"),
    };
    let upstream = format!("{host}:{}", config.get_ports().first().unwrap_or(&5432));
    let proxied = url.replacen(&format!("@{upstream}/"), &format!("@127.0.0.1:{port}/"), 1);
    assert_ne!(proxied, url, "the URL names its host and port: {url}");
    (proxied, upstream)
}

async fn health(server: &Server) -> Value {
    let response = server.health().await;
    assert_eq!(response.status(), 200, "/healthz always answers 200");
    response.json().await.unwrap()
}

async fn wait_for_store(server: &Server, reachable: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = health(server).await;
        if body["store"]["reachable"] == reachable {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never said reachable {reachable}: {body}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 503 `store_unavailable` with Retry-After.
async fn assert_store_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(
        response.headers().contains_key("retry-after"),
        "{what}: {:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "store_unavailable", "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_outlives_its_store_going_away_and_nothing_is_lost_or_run_twice() {
    let Some(_) = docker().await else { return };
    let Some(schema) = Schema::make().await else {
        return;
    };
    let (_, upstream) = through_proxy(&schema.url, 1);
    let proxy = StoreProxy::start(upstream).await;
    let (url, _) = through_proxy(&schema.url, proxy.port);
    let dir = tempfile::tempdir().unwrap();
    // Leases outlive the outage: the job running across it stays this
    // replica's, and its result is written once the store is back.
    let server = Server::start(
        &dir.path().join("data"),
        &["--store", &url, "--workers", "1", "--lease-ttl-secs", "300"],
    );
    server.wait_ready().await;

    let answers = [
        ("devstral", "devstral.md", 1),
        ("display-only", "trap-display-only.md", 3),
        ("magistral", "magistral.md", 2),
    ];
    let batch: Vec<Value> = answers
        .iter()
        .map(|(model, file, _)| json!({"model": model, "output": fixture(file)}))
        .collect();
    let batch_id = server.accepted("/v1/batches", &json!(batch), None).await;

    // Cut while a job runs in its container.
    let deadline = Instant::now() + Duration::from_secs(120);
    let held = loop {
        if let Some(id) = schema.held_by(server.pid()).await {
            if containers_of(server.pid()).await > 0 {
                break id;
            }
        }
        assert!(Instant::now() < deadline, "no job ran:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    proxy.off();

    let body = wait_for_store(&server, false).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["queue"]["queued"].is_null(),
        "unknown meanwhile: {body}"
    );
    let single = server
        .post("/v1/verifications")
        .json(&json!({"output": fixture("devstral.md"), "model": "late"}))
        .send()
        .await
        .unwrap();
    assert_store_unavailable(single, "a verification").await;
    let another = server
        .post("/v1/batches")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_store_unavailable(another, "a batch").await;
    let read = server
        .get(&format!("/v1/batches/{batch_id}"))
        .send()
        .await
        .unwrap();
    assert_store_unavailable(read, "a batch's progress").await;
    // The replica's own counters still answer.
    assert_eq!(gauge(&server, "qtjudge_store_up").await, Some(0.0));
    assert_eq!(gauge(&server, "qtjudge_cluster_queue_depth").await, None);

    // The running verification ends while the store is away.
    let deadline = Instant::now() + Duration::from_secs(180);
    while containers_of(server.pid()).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the run never ended:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = server.log();
    assert!(
        log.contains("the job's outcome waits for it"),
        "the result waits for the store:\n{log}"
    );
    let body = health(&server).await;
    assert_eq!(body["store"]["reachable"], false, "still cut: {body}");

    proxy.on();
    wait_for_store(&server, true).await;
    let view = server
        .get_json(&format!("/v1/batches/{batch_id}?wait=300"))
        .await;
    assert_eq!(view["status"], "done", "{view}\nlog:\n{}", server.log());
    let rows = view["verifications"].as_array().unwrap();
    assert_eq!(rows.len(), answers.len(), "{view}");
    for ((model, _, tier), row) in answers.iter().zip(rows) {
        assert_eq!(row["tier"], *tier, "{model}: {row}");
        let one = server.view(row["id"].as_str().unwrap()).await;
        assert_eq!(one["attempts"], 1, "{model} ran once: {one}");
        assert_eq!(one["status"], "done", "{one}");
    }
    assert!(
        rows.iter().any(|r| r["id"] == held.as_str()),
        "the job cut off is one of the batch"
    );
    // Nothing stored twice, nothing left behind.
    let health = health(&server).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["queue"]["queued"], 0, "{health}");
    assert_eq!(health["queue"]["running"], 0, "{health}");
    let jobs: i64 = schema
        .client
        .query_one(
            &format!("SELECT COUNT(*) AS n FROM {}.jobs", schema.name),
            &[],
        )
        .await
        .unwrap()
        .get("n");
    assert_eq!(jobs, 3, "only the batch's jobs were accepted");
    let log = server.log();
    assert!(!log.contains("panicked"), "log:\n{log}");
    assert!(!log.contains("cannot store a result"), "log:\n{log}");
    server.stop();
    schema.drop_it().await;
}

/// A PostgreSQL cluster of one test's own (`scripts/postgres` in a temp
/// folder, on a free loopback port), so the test may stop and start the
/// server itself without touching any other test's. Stopped and deleted
/// when dropped, a failed assertion included.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
    url: String,
}

impl OwnPostgres {
    /// `None` (a loud skip) outside CI when the server is not installed
    /// or does not start; in CI either is a failure.
    fn start() -> Option<OwnPostgres> {
        let skip = |why: String| {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {why}");
            }
            eprintln!("\n!!! SKIPPED: {why}\n");
            None
        };
        // Checked here: as root, scripts/postgres would install it.
        let installed = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|version| version.path().join("bin/initdb").is_file());
        if !installed {
            return skip("PostgreSQL's server is not installed (scripts/setup installs it)".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("qtjudge-restart-pg.")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut postgres = OwnPostgres {
            dir,
            port,
            url: String::new(),
        };
        match postgres.script(None) {
            Ok(url) => postgres.url = url,
            Err(why) => return skip(format!("scripts/postgres did not start a cluster: {why}")),
        }
        Some(postgres)
    }

    /// `scripts/postgres [ARG]` on this cluster; what it printed.
    fn script(&self, arg: Option<&str>) -> Result<String, String> {
        let out = std::process::Command::new(crate::support::repo().join("scripts/postgres"))
            .args(arg)
            .env("QTJUDGE_PG_DIR", self.dir.path())
            .env("QTJUDGE_PG_PORT", self.port.to_string())
            .output()
            .map_err(|e| e.to_string())?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(format!(
                "{}: {said} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(said)
    }

    /// `pg_ctl -m fast stop`: sessions ended, the server gone.
    fn stop(&self) {
        self.script(Some("stop")).unwrap();
        let log = self.dir.path().join("server.log");
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(log.contains("database system is shut down"), "{log}");
    }

    fn start_again(&self) {
        let url = self.script(None).unwrap();
        assert_eq!(url, self.url);
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.script(Some("stop"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_outlives_its_postgresql_server_stopped_and_started_again() {
    let Some(_) = docker().await else { return };
    let Some(postgres) = OwnPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The default lease (30 s, renewed every 10 s): the ~21 s outage below
    // mostly keeps every claim; one that expires has its job run again
    // (attempts 2), which is allowed, a second stored result is not.
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--store", &postgres.url, "--workers", "2"],
    );
    server.wait_ready().await;
    // Counts every job's move to finished (a result stored): a second run
    // to completion would show as a second row.
    postgres
        .client()
        .await
        .batch_execute(
            "CREATE TABLE finishes (job_id TEXT NOT NULL, status TEXT NOT NULL);
             CREATE FUNCTION count_finish() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO finishes VALUES (NEW.id, NEW.status); RETURN NULL; END $$;
             CREATE TRIGGER count_finish AFTER UPDATE ON jobs FOR EACH ROW
             WHEN (OLD.status NOT IN ('done', 'error') AND NEW.status IN ('done', 'error'))
             EXECUTE FUNCTION count_finish();",
        )
        .await
        .unwrap();

    // Twelve answers of the manifest across its verdicts (none that
    // times out: they would only make the test slower).
    let expected: Vec<Expected> = manifest()
        .into_iter()
        .filter(|e| e.failure != "timeout")
        .step_by(3)
        .take(12)
        .collect();
    assert_eq!(expected.len(), 12);
    let batch: Vec<Value> = expected
        .iter()
        .map(|e| json!({"model": e.model, "output": fixture(&e.file)}))
        .collect();
    let batch_id = server.accepted("/v1/batches", &json!(batch), None).await;

    // Stop PostgreSQL while a job runs in its container.
    let deadline = Instant::now() + Duration::from_secs(180);
    while containers_of(server.pid()).await == 0 {
        assert!(Instant::now() < deadline, "no job ran:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let progress = server.get_json(&format!("/v1/batches/{batch_id}")).await;
    assert_ne!(progress["status"], "done", "stopped mid-batch: {progress}");
    let stopped = Instant::now();
    postgres.stop();

    let body = wait_for_store(&server, false).await;
    assert_eq!(body["status"], "degraded", "{body}");
    let single = server
        .post("/v1/verifications")
        .json(&json!({"output": fixture("devstral.md"), "model": "late"}))
        .send()
        .await
        .unwrap();
    assert_store_unavailable(single, "a verification while the server is down").await;
    assert_eq!(gauge(&server, "qtjudge_store_up").await, Some(0.0));
    // The runs under way end meanwhile (or 20 s pass): their outcomes
    // wait for the store.
    let deadline = Instant::now() + Duration::from_secs(20);
    while containers_of(server.pid()).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outcome_waits = server.log().contains("the job's outcome waits for it");
    let body = health(&server).await;
    assert_eq!(body["store"]["reachable"], false, "still down: {body}");
    assert!(
        server.child.try_wait().is_ok_and(|exit| exit.is_none()),
        "qtjudge serve outlives the outage:\n{}",
        server.log()
    );

    postgres.start_again();
    let outage = stopped.elapsed();
    wait_for_store(&server, true).await;
    // The news connection is back: one session of the replica listens.
    let client = postgres.client().await;
    wait_until(
        "the replica LISTENs again",
        Duration::from_secs(30),
        async || {
            let listening =
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN qtjudge_%'";
            client
                .query_one(listening, &[])
                .await
                .unwrap()
                .get::<_, i64>("n")
                == 1
        },
    )
    .await;
    // New work is accepted again.
    let after = server.submit("after", &fixture("devstral.md")).await;
    let waiting = format!("/v1/batches/{batch_id}?wait=60");
    wait_until("the batch done", Duration::from_secs(900), async || {
        server.get_json(&waiting).await["status"] == "done"
    })
    .await;
    let view = server.get_json(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(view["status"], "done", "{view}\nlog:\n{}", server.log());
    let rows = view["verifications"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{view}");
    let mut attempts = Vec::new();
    for (e, row) in expected.iter().zip(rows) {
        assert_eq!(row["model"], e.model.as_str(), "{row}");
        let job = server.view(row["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "done", "{}: {job}", e.file);
        assert_eq!(job["result"]["tier"], e.tier, "{}: {job}", e.file);
        let failure = job["result"]["failure"].as_str().unwrap_or("");
        assert_eq!(failure, e.failure, "{}: {job}", e.file);
        let n = job["attempts"].as_i64().unwrap();
        assert!((1..=2).contains(&n), "{}: {job}", e.file);
        attempts.push(n);
    }
    let job = server.finished(&after).await;
    assert_eq!(job["result"]["tier"], 1, "{job}");
    // Each job finished once in the store; nothing else was accepted.
    let per_job = client
        .query(
            "SELECT j.id AS id, COUNT(f.job_id) AS n FROM jobs j
             LEFT JOIN finishes f ON f.job_id = j.id GROUP BY j.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(per_job.len(), expected.len() + 1, "the batch's and `after`");
    for row in &per_job {
        let n: i64 = row.get("n");
        assert_eq!(
            n,
            1,
            "job {} finished {n} times",
            row.get::<_, String>("id")
        );
    }
    let health = health(&server).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["queue"]["running"], 0, "{health}");
    let log = server.log();
    assert!(!log.contains("panicked"), "log:\n{log}");
    eprintln!(
        "store restart: outage {outage:.1?}, an outcome waited for the store: {outcome_waits}, attempts {attempts:?}"
    );
    // Nothing left behind: while it runs, only the warm pool (a container
    // per worker); none once it stopped.
    let pid = server.pid();
    wait_until(
        "only the warm pool left",
        Duration::from_secs(30),
        async || containers_of(pid).await <= 2,
    )
    .await;
    server.stop();
    assert_eq!(containers_of(pid).await, 0, "no container left");
}
