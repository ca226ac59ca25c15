//! Shared set-up: the task, the Docker sandbox (or a loud skip), fixtures.

use std::path::PathBuf;
use std::sync::Arc;

use qtjudge::sandbox::docker::DockerSandbox;
use qtjudge::task::Task;
use qtjudge::verify::{PreparedTask, Verification};

/// Tests that load both cores on purpose (the attack suites, the
/// determinism run) take turns: each is meant to measure the load it makes,
/// and two of them at once starve candidates past their wall clock.
pub static BOTH_CORES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn task() -> Task {
    Task::load(&repo().join("fixtures/tasks"), "reset-conversation")
        .expect("the fixture task loads")
}

pub fn fixture(name: &str) -> String {
    let path = repo()
        .join("fixtures/outputs/reset-conversation")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The Docker sandbox, or `None` (with a loud message) outside CI when
/// the engine is unreachable. In CI a missing engine is a failure. Made per
/// test: each test has its own runtime, and a client must not outlive it.
pub async fn docker() -> Option<Arc<DockerSandbox>> {
    match DockerSandbox::connect(&|line| eprintln!("image: {line}")).await {
        Ok(s) => Some(Arc::new(s)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the Docker sandbox is not usable: {e}")
        }
        Err(e) => {
            eprintln!("\n!!!!!!!! SKIPPING DOCKER TEST: {e} !!!!!!!!\n");
            None
        }
    }
}

pub fn prepared() -> Arc<PreparedTask> {
    static PREPARED: std::sync::OnceLock<Arc<PreparedTask>> = std::sync::OnceLock::new();
    PREPARED
        .get_or_init(|| {
            let cache =
                std::env::temp_dir().join(format!("qtjudge-test-cache-{}", std::process::id()));
            PreparedTask::new(task(), Some(cache))
        })
        .clone()
}

/// Verifies `answer` in Docker and checks that its container is gone.
pub async fn verify_in_docker(answer: &str, model: &str) -> Option<Verification> {
    let sandbox = docker().await?;
    let v = qtjudge::verify::verify(answer, model, &prepared(), sandbox.as_ref()).await;
    assert_container_gone(&sandbox, &v.run_id, model).await;
    Some(v)
}

/// Waits for the run's container to be removed (just after its result is
/// returned, in the background: a test whose runtime ended first would
/// leave it behind) and checks that it is gone.
pub async fn assert_container_gone(sandbox: &DockerSandbox, run_id: &str, what: &str) {
    sandbox.settled().await;
    let left = qtjudge::sandbox::docker::count_labelled(sandbox.engine(), Some(run_id))
        .await
        .expect("the engine lists containers");
    assert_eq!(
        left, 0,
        "{what}: a container of run {run_id} was left behind"
    );
}

/// One answer of `fixtures/outputs/reset-conversation/manifest.toml` and the
/// verdict it must get.
#[derive(serde::Deserialize)]
pub struct Expected {
    pub file: String,
    pub model: String,
    pub tier: u8,
    #[serde(default)]
    pub failure: String,
    /// Unrequested change kinds the verdict must report (`reset_not_a_button`).
    #[serde(default)]
    pub changes: Vec<String>,
}

/// The fixture answers' manifest.
pub fn manifest() -> Vec<Expected> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        answer: Vec<Expected>,
    }
    let path = repo().join("fixtures/outputs/reset-conversation/manifest.toml");
    let manifest: Manifest = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest.answer
}

/// The real `qtjudge` binary run with `args` on the fixture tasks, quiet
/// logs; `python`, when given, is the local sandbox's interpreter.
pub fn qtjudge_cli(args: &[&str], python: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_qtjudge"));
    command
        .args(args)
        .env("QTJUDGE_TASKS_DIR", repo().join("fixtures/tasks"))
        .env("QTJUDGE_LOG", "warn");
    if let Some(python) = python {
        command.env("QTJUDGE_PYTHON", python);
    }
    command.output().expect("qtjudge runs")
}

/// Drops every connection a test proxy relays, and keeps it listening:
/// `tasks` are its accept loop (first) and one task a connection.
pub fn drop_connections(tasks: &std::sync::Mutex<Vec<tokio::task::AbortHandle>>) {
    let mut tasks = tasks.lock().unwrap();
    let accept = tasks.remove(0);
    for task in tasks.drain(..) {
        task.abort();
    }
    tasks.push(accept);
}

/// A command's stdout as JSON (a failure shows stdout and stderr).
pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
