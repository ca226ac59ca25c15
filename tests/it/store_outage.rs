//! Issue 20: the shared store goes away during a batch. The replica
//! reaches PostgreSQL through a TCP proxy on 127.0.0.1 that the test
//! switches off (live connections dropped, new ones closed at once: to
//! this replica, the store is gone; other tests' are untouched) and on
//! again. Meanwhile `/healthz` says the store is unreachable, the API
//! answers 503 `store_unavailable`, a verification that ends keeps its
//! result until the store is back, and nothing panics; after it, every
//! accepted job finishes once.
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
use crate::replicas_share::gauge;
use crate::server::{containers_of, Server};
use crate::support::{docker, fixture};

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
        let mut tasks = self.tasks.lock().unwrap();
        let accept = tasks.remove(0);
        for task in tasks.drain(..) {
            task.abort();
        }
        tasks.push(accept);
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
    let response = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
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
