//! A real `qtjudge serve` child process on 127.0.0.1 for the HTTP tests,
//! with the reqwest calls they share.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use serde_json::{json, Value};

use crate::stores::{Kind, TestStore};
use crate::support::{docker, repo};

pub const TOKEN: &str = "service-test-token";

/// One `qtjudge serve` child process.
pub struct Server {
    pub child: Child,
    pub base: String,
    log: PathBuf,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts the server on a free port (it prints the address it got).
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(data_dir, Some(TOKEN), extra)
    }

    /// `token: None` starts an open server (loopback only), as a browser needs.
    /// As `start`, on `store`.
    pub fn start_on(store: &crate::stores::TestStore, data_dir: &Path, extra: &[&str]) -> Server {
        let args = store.args();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Server::start(data_dir, &all)
    }

    pub fn start_with(data_dir: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        Server::start_with_env(data_dir, token, extra, &[])
    }

    /// As `start_with`, with extra environment variables (`DOCKER_HOST`).
    pub fn start_with_env(
        data_dir: &Path,
        token: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = data_dir.with_file_name(format!("serve-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_qtjudge"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--grace-seconds", "60"])
            .args(token.map(|t| ["--token", t]).into_iter().flatten())
            .arg("--data-dir")
            .arg(data_dir)
            .args(
                // The fixture tasks unless the caller brings its own (clap
                // refuses the option twice).
                (!extra.contains(&"--tasks-dir"))
                    .then(|| ["--tasks-dir".into(), repo().join("fixtures/tasks")])
                    .into_iter()
                    .flatten(),
            )
            .args(extra)
            .env("QTJUDGE_LOG", "info")
            .env_remove("QTJUDGE_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the qtjudge binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keeps the pipe open for the server's life.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server printed no address; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        };
        let base = line
            .strip_prefix("listening on ")
            .expect("`listening on <url>`")
            .to_string();
        Server {
            child,
            base,
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(TOKEN)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(TOKEN)
    }

    /// Waits until the sandbox is ready (image checked, orphans reaped).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(response) = self.client.get(self.url("/healthz")).send().await {
                let health: Value = response.json().await.unwrap_or_default();
                if health["status"] == "ok" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server never became ready; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit; returns how long it took.
    pub fn stop(mut self) -> Duration {
        let started = Instant::now();
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "qtjudge serve exited with {exit}; its log:\n{}",
            self.log()
        );
        started.elapsed()
    }

    /// SIGKILL, and reaps the process (so its pid is really gone).
    pub fn kill_9(mut self) -> u32 {
        let pid = self.pid();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        pid
    }

    /// A GET of `path` without a token (`/healthz`, `/metrics` and
    /// `/openapi.json` need none).
    pub fn open_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    /// `/healthz`'s answer.
    pub async fn health(&self) -> reqwest::Response {
        self.open_get("/healthz").send().await.unwrap()
    }

    /// The JSON the service answers to a GET of `path` without a token.
    pub async fn open_json(&self, path: &str) -> Value {
        self.open_get(path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/metrics` text, one scrape (no token needed).
    pub async fn metrics(&self) -> String {
        self.open_get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The JSON the service answers to an authorised GET of `path`.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }

    /// A verification's JSON view, as it stands now.
    pub async fn view(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/verifications/{id}")).await
    }

    /// Polls a verification until it is finished.
    pub async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let view: Value = self.view(id).await;
            if view["status"] == "done" || view["status"] == "error" {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never finished: {view}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn submit(&self, model: &str, output: &str) -> String {
        self.accepted(
            "/v1/verifications",
            &json!({"output": output, "model": model}),
            None,
        )
        .await
    }

    /// POSTs `body` to `path` (with `?callback_url=` when given); the id
    /// of what was accepted (202).
    pub async fn accepted(&self, path: &str, body: &Value, callback_url: Option<&str>) -> String {
        let mut request = self.post(path).json(body);
        if let Some(url) = callback_url {
            request = request.query(&[("callback_url", url)]);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 202, "POST {path}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        body["id"].as_str().unwrap().to_string()
    }
}

/// One test's service: the server, its store, and the temporary folder
/// its data is in (`<dir>/data`, where a restart starts it again). Keep
/// the folder bound (`_dir`, never `_`) while the server runs: dropping it
/// deletes the data.
pub type Service = (Server, TestStore, tempfile::TempDir);

/// A service that verifies: the Docker sandbox and `kind`'s store (each
/// `None`, a skip, when missing), a server with `extra` on a fresh folder,
/// and its sandbox ready.
pub async fn service_ready(kind: Kind, extra: &[&str]) -> Option<Service> {
    docker().await?;
    let service = service_started(kind, extra).await?;
    service.0.wait_ready().await;
    Some(service)
}

/// As `service_ready`, for checks that come before the engine's: no
/// Docker asked for, the server not waited for.
pub async fn service_started(kind: Kind, extra: &[&str]) -> Option<Service> {
    let store = TestStore::make(kind).await?;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(&store, &dir.path().join("data"), extra);
    Some((server, store, dir))
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached after a failed assertion: do not leave it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many sandbox containers the qtjudge process `pid` owns on this host.
pub async fn containers_of(pid: u32) -> usize {
    container_ids_of(pid).await.len()
}

/// The ids of the sandbox containers owned by the qtjudge process `pid` on
/// this host (under its hostname or the replica name it was given).
pub async fn container_ids_of(pid: u32) -> Vec<String> {
    let engine = qtjudge::sandbox::docker::connect_engine()
        .await
        .expect("the engine answers");
    // Owner labels are `<host or replica name>:<pid>:<start time>`.
    let pid = pid.to_string();
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![qtjudge::sandbox::docker::LABEL.to_string()],
    );
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    engine
        .list_containers(Some(options))
        .await
        .expect("containers are listed")
        .into_iter()
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(qtjudge::sandbox::docker::LABEL_OWNER))
                .is_some_and(|o| o.split(':').nth(1) == Some(pid.as_str()))
        })
        .filter_map(|c| c.id)
        .collect()
}
