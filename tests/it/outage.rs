//! Issue 7: the Docker engine goes away while jobs are queued and one is
//! running. CI cannot stop the real engine, so the server talks to it
//! through a unix-socket proxy that the test switches off (listener
//! closed, live connections dropped: to the server, the engine is gone)
//! and on again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

use qtjudge::grading::verdict::Label;
use qtjudge::sandbox::docker::DockerSandbox;
use qtjudge::sandbox::{BoxFuture, Sandbox, SandboxError, SandboxOutcome, SandboxRequest};
use qtjudge::verify::PreparedTask;

use crate::load::{slow_answer, wait_for_status};
use crate::server::{container_ids_of, containers_of, Server, TOKEN};
use crate::support::{docker, drop_connections, fixture, task};

/// Forwards every connection on `path` to the real engine's socket, until
/// switched off.
struct EngineProxy {
    path: PathBuf,
    upstream: PathBuf,
    /// The accept loop (first) and every connection's copy task, while on.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl EngineProxy {
    fn new(path: &Path) -> EngineProxy {
        // The engine this test process uses (DOCKER_HOST, if a unix socket).
        let upstream = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
        EngineProxy {
            path: path.to_path_buf(),
            upstream,
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn on(&self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("the proxy binds its socket");
        let (tasks, upstream) = (self.tasks.clone(), self.upstream.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
                let mut tasks = tasks.lock().unwrap();
                tasks.retain(|t| !t.is_finished());
                tasks.push(copy.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// A blip too short for any ping to see: every live connection (an
    /// attached container's stream included) is dropped, new ones are
    /// still accepted.
    fn cut(&self) {
        drop_connections(&self.tasks);
    }

    /// Closes the listener and drops every live connection (an attached
    /// container's stream included), and removes the socket: to the
    /// server, the engine is gone.
    fn off(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.off();
    }
}

async fn health(server: &Server) -> (u16, Value) {
    let response = server.health().await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls /healthz until `done` holds for its body.
async fn wait_for_health(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = health(server).await;
        assert_eq!(status, 200, "/healthz always answers 200: {body}");
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never said {what}: {body}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn view(server: &Server, id: &str) -> Value {
    server.view(id).await
}

/// A one-worker service in `dir` whose engine is reached through a proxy
/// the test can cut, ready, and a first verdict given: the original's
/// widget tree is known before any outage (the layout comparison needs it).
async fn warmed_up_behind_a_proxy(dir: &Path) -> (EngineProxy, Server) {
    let proxy = EngineProxy::new(&dir.join("engine.sock"));
    proxy.on();
    let docker_host = proxy.docker_host();
    let server = Server::start_with_env(
        &dir.join("data"),
        Some(TOKEN),
        &["--workers", "1"],
        &[("DOCKER_HOST", docker_host.as_str())],
    );
    server.wait_ready().await;
    let warm_up = server.submit("devstral", &fixture("devstral.md")).await;
    assert_eq!(server.finished(&warm_up).await["result"]["tier"], 1);
    (proxy, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_wait_out_an_engine_outage_and_finish_when_it_is_back() {
    let Some(_) = docker().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (proxy, server) = warmed_up_behind_a_proxy(dir.path()).await;

    // A first, idle outage while a warm container waits: its attach stream
    // dies with the connection, so it must not serve the next answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(server.pid()).await == 0 {
        assert!(Instant::now() < deadline, "the warm pool never refilled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.off();
    wait_for_health(&server, "the engine is unreachable", |h| {
        h["engine"]["reachable"] == false
    })
    .await;
    proxy.on();
    wait_for_health(&server, "ok again", |h| h["status"] == "ok").await;
    let after = server.submit("devstral", &fixture("devstral.md")).await;
    let after = server.finished(&after).await;
    assert_eq!(
        (after["status"].as_str(), after["result"]["tier"].as_u64()),
        (Some("done"), Some(1)),
        "the first answer after an outage gets its verdict: {after}"
    );

    // One slow answer runs (6 s in its reset handler) and two wait.
    let running = server.submit("slow", &slow_answer()).await;
    let queued = [
        server.submit("devstral", &fixture("devstral.md")).await,
        server
            .submit("display-only", &fixture("trap-display-only.md"))
            .await,
    ];
    wait_for_status(&server, &running, "running").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(server.pid()).await == 0 {
        assert!(Instant::now() < deadline, "the slow run has no container");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.off();
    let down = wait_for_health(&server, "the engine is unreachable", |h| {
        h["engine"]["reachable"] == false
    })
    .await;
    assert_eq!(down["status"], "degraded", "{down}");
    assert_eq!(down["engine"]["sandbox_ready"], false, "{down}");
    assert!(
        down["engine"]["problem"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "it says why: {down}"
    );
    let refused = server
        .post("/v1/verifications")
        .json(&json!({"output": fixture("devstral.md"), "model": "during-outage"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "engine_unavailable", "{body}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("\nqtjudge_engine_up 0\n"), "{metrics}");

    // The interrupted run goes back to the queue; nothing is failed.
    wait_for_status(&server, &running, "queued").await;
    // Long enough for a worker that would wrongly claim to have done so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in queued.iter().chain([&running]) {
        let job = view(&server, id).await;
        assert_eq!(job["status"], "queued", "kept for later: {job}");
        assert!(job["result"].is_null() && job["error"].is_null(), "{job}");
    }
    let (_, during) = health(&server).await;
    assert_eq!(during["queue"]["queued"], 3, "{during}");

    proxy.on();
    let up = wait_for_health(&server, "ok again", |h| h["status"] == "ok").await;
    assert_eq!(up["engine"]["reachable"], true, "{up}");
    let expected = [(&running, 2), (&queued[0], 1), (&queued[1], 3)];
    for (id, tier) in expected {
        let job = server.finished(id).await;
        assert_eq!(job["status"], "done", "a real verdict: {job}");
        assert_eq!(job["result"]["tier"], tier, "{job}");
    }
    let slow = view(&server, &running).await;
    assert!(
        slow["result"]["unrequested_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "tampering"),
        "the slow answer's own verdict: {slow}"
    );
    let pid = server.pid();
    server.stop();
    let logs: String = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert_eq!(
        containers_of(pid).await,
        0,
        "the run cut off by the outage and the warm containers are removed; log:\n{logs}"
    );
}

/// The Docker sandbox, except that the original app's run (for the layout
/// comparison) fails as if the engine went away just then.
struct OriginalRunFails(Arc<DockerSandbox>);

impl Sandbox for OriginalRunFails {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn run(&self, request: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
        if request.run_id.starts_with("original-") {
            return Box::pin(async {
                Err(SandboxError::EngineUnreachable(
                    "the engine went away".into(),
                ))
            });
        }
        self.0.run(request)
    }
}

/// A behaviour that passes is only half the verdict: without the original's
/// widget tree a moved widget goes unseen, so no tier is given (and the
/// service runs the answer again once the engine is back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pass_is_given_when_the_layout_comparison_could_not_run() {
    let Some(docker) = docker().await else { return };
    // No cache: the original's tree must come from a run.
    let prepared = PreparedTask::new(task(), None);
    let v = qtjudge::verify::verify(
        &fixture("devstral.md"),
        "devstral",
        &prepared,
        &OriginalRunFails(docker.clone()),
    )
    .await;
    crate::support::assert_container_gone(&docker, &v.run_id, "devstral").await;
    assert_eq!((v.tier, v.label), (None, Label::Error), "{v:?}");
    assert!(
        v.error
            .as_deref()
            .is_some_and(|e| e.contains("layout comparison")),
        "{:?}",
        v.error
    );
    assert!(!v.steps.is_empty(), "the answer itself did run");
}

/// An outage shorter than one engine ping, during a running job: the
/// connections drop (the running container's output stream with them) and
/// the engine answers again at once, so no ping ever finds it down. The
/// interrupted job goes back to the queue (its attempts counted in the
/// view) and gets its real verdict; so does the job queued behind it,
/// although the warm container waiting for it lost its stream too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cut_off_by_an_engine_blip_is_run_again_not_failed() {
    let Some(_) = docker().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (proxy, server) = warmed_up_behind_a_proxy(dir.path()).await;

    // The handler's pause is a `sleep` process, so the test can see from
    // outside that the job is inside its reset handler: a fixed wait after
    // "running" missed it when the pool was slow to warm a container.
    let slow_answer = slow_answer().replacen(
        "__import__(\"time\").sleep(6)",
        "__import__(\"subprocess\").run([\"sleep\", \"6\"])",
        1,
    );
    assert!(slow_answer.contains("\"sleep\", \"6\""));
    // Judged as the user's own app (`generic-reset`, no original): in an
    // answer to the experiment's task a command nobody asked for is harm.
    let response = server
        .post("/v1/verifications")
        .json(&serde_json::json!({"output": slow_answer, "model": "slow", "task": "generic-reset"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let running = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let queued = server.submit("devstral", &fixture("devstral.md")).await;
    wait_for_status(&server, &running, "running").await;
    wait_for_process(server.pid(), "sleep 6").await;
    proxy.cut();

    let slow = server.finished(&running).await;
    assert_eq!(
        (slow["status"].as_str(), slow["result"]["tier"].as_u64()),
        (Some("done"), Some(1)),
        "the cut-off job gets its own verdict: {slow}\nlog:\n{}",
        server.log()
    );
    assert_eq!(slow["attempts"], 2, "run again once: {slow}");
    let next = server.finished(&queued).await;
    assert_eq!(
        (next["status"].as_str(), next["result"]["tier"].as_u64()),
        (Some("done"), Some(1)),
        "{next}\nlog:\n{}",
        server.log()
    );
    let (_, health) = health(&server).await;
    assert_eq!(health["status"], "ok", "{health}");
    let pid = server.pid();
    server.stop();
    assert_eq!(
        containers_of(pid).await,
        0,
        "the cut-off run's container is removed"
    );
}

/// Polls the sandbox containers of the qtjudge process `pid` until one of
/// them runs a process whose command line is `command`.
async fn wait_for_process(pid: u32, command: &str) {
    let engine = qtjudge::sandbox::docker::connect_engine()
        .await
        .expect("the engine answers");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for id in container_ids_of(pid).await {
            // A container may be gone or not yet started: not an error here.
            let Ok(top) = engine
                .top_processes(&id, None::<bollard::query_parameters::TopOptions>)
                .await
            else {
                continue;
            };
            let titles = top.titles.unwrap_or_default();
            let Some(cmd) = titles.iter().position(|t| t == "CMD" || t == "COMMAND") else {
                continue;
            };
            let runs_it = top
                .processes
                .unwrap_or_default()
                .iter()
                .any(|row| row.get(cmd).is_some_and(|c| c == command));
            if runs_it {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no container of qtjudge {pid} ran `{command}` within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
