//! The local "sandbox": the same supervisor and harness as a subprocess of
//! the host, in a temporary folder, for developing on a machine with PyQt5.
//!
//! NOT A SANDBOX. The answer runs with your user's rights, your network and
//! your files. Use it only for answers you trust; untrusted input goes to
//! the Docker sandbox.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::timings::Stopwatch;

use super::backend::{Backend, Progress};
use super::{
    new_nonce, read_result, BoxFuture, NoResult, Sandbox, SandboxError, SandboxOutcome,
    SandboxRequest,
};

/// The local backend: no engine (always healthy), nothing to prepare or
/// reap; each answer a subprocess of its own.
pub struct LocalBackend;

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async { Ok(()) })
    }

    fn prepare<'a>(
        &'a self,
        _progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Arc<dyn Sandbox>, SandboxError>> {
        Box::pin(async { Ok(Arc::new(LocalSandbox::new()) as Arc<dyn Sandbox>) })
    }

    fn reap_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
        // Every run's folder goes with it; a killed run's is the temp dir's.
        Box::pin(async { Ok(0) })
    }
}

pub struct LocalSandbox {
    python: String,
}

impl LocalSandbox {
    /// Uses `QTJUDGE_PYTHON`, else Debian's `/usr/bin/python3`, else `python3`.
    pub fn new() -> LocalSandbox {
        let python = std::env::var("QTJUDGE_PYTHON").unwrap_or_else(|_| {
            if std::path::Path::new("/usr/bin/python3").exists() {
                "/usr/bin/python3".into()
            } else {
                "python3".into()
            }
        });
        tracing::warn!("the local sandbox is not a sandbox: the answer runs with your rights; use --sandbox docker for untrusted answers");
        LocalSandbox { python }
    }

    fn run_blocking(&self, request: SandboxRequest) -> Result<SandboxOutcome, SandboxError> {
        let started = Instant::now();
        let folder = tempfile::Builder::new()
            .prefix("qtjudge-local.")
            .tempdir()
            .map_err(|e| SandboxError::RunFailed(format!("cannot make a temporary folder: {e}")))?;
        let harness_dir = folder.path().join("harness");
        let work_root = folder.path().join("root");
        std::fs::create_dir_all(&harness_dir)
            .and_then(|_| std::fs::create_dir_all(&work_root))
            .map_err(|e| {
                SandboxError::RunFailed(format!("cannot prepare {}: {e}", folder.path().display()))
            })?;
        // Every file of the harness, as the image has them (a list here
        // once missed one added later: the harness then could not start).
        let harness = crate::image::DOCKER_CONTEXT
            .iter()
            .filter(|(path, _)| path.starts_with("harness/") && !path[8..].contains('/'));
        for (file, bytes) in harness {
            let target = folder.path().join(file);
            std::fs::write(&target, bytes).map_err(|e| {
                SandboxError::RunFailed(format!("cannot write {}: {e}", target.display()))
            })?;
        }
        let nonce = new_nonce();
        let mut job = request.job.clone();
        job["nonce"] = serde_json::Value::String(nonce.clone());
        let mut line = serde_json::to_vec(&job).expect("a JSON value serialises");
        line.push(b'\n');

        let mut child = Command::new(&self.python)
            .arg("-I")
            .arg(harness_dir.join("supervisor.py"))
            .env("QTJUDGE_WORK_ROOT", &work_root)
            .env(
                "QTJUDGE_OUTPUT_CAP_BYTES",
                (request.limits.output_cap_kb * 1024).to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                SandboxError::RunFailed(format!(
                    "cannot start {}: {e} (set QTJUDGE_PYTHON to a python3 with PyQt5)",
                    self.python
                ))
            })?;
        let spawned = Instant::now();
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&line);
        });
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        let err_reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut bytes);
            bytes
        });
        let wall = Duration::from_secs(request.limits.wall_seconds);
        // As the Docker backend: the kill waits for a busy machine's stall.
        let stall = super::machine_load::Stall::start();
        let cap = super::machine_load::busy_cap(wall);
        let run_start = Instant::now();
        let mut wait_for = wall;
        let status = loop {
            let status = child
                .wait_timeout(wait_for)
                .map_err(|e| SandboxError::RunFailed(format!("waiting for the harness: {e}")))?;
            let moved = wall + stall.granted(cap);
            match status {
                None if moved > run_start.elapsed() => wait_for = moved - run_start.elapsed(),
                status => break status,
            }
        };
        let host_timeout = status.is_none();
        if host_timeout {
            let _ = child.kill();
            let _ = child.wait();
        }
        let exited = Instant::now();
        let _ = writer.join();
        let stdout = reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        let mut outcome = SandboxOutcome {
            host_timeout,
            busy_allowance_ms: if host_timeout {
                stall.granted(cap).as_millis() as u64
            } else {
                0
            },
            exit_code: status.and_then(|s| s.code()).map(i64::from),
            supervisor_stderr: String::from_utf8_lossy(&stderr).into_owned(),
            ..Default::default()
        };
        let mut watch = Stopwatch::since(started);
        watch.record("sandbox.prepare", started, spawned);
        watch.record("sandbox.run", spawned, exited);
        match read_result(&stdout, &nonce) {
            Ok(result) => {
                // The supervisor's times count from the job's arrival,
                // which follows its own warm start (it reads the job only
                // once its harness is ready): placed from the spawn.
                let inside = crate::timings::supervisor_phases(&result);
                let warm_start = result["supervisor"]["moments_ms"]["started"]
                    .as_f64()
                    .unwrap_or(0.0);
                let arrived_ms = watch.at(spawned) - warm_start;
                watch.extend(&inside, arrived_ms);
                outcome.result = Some(result);
            }
            Err(NoResult::TooLarge(why)) => {
                outcome.missing_result = Some(why.clone());
                outcome.output_too_large = Some(why);
            }
            Err(NoResult::Missing(why)) => outcome.missing_result = Some(why),
        }
        outcome.phases = watch.into_phases();
        outcome.wall_ms = started.elapsed().as_millis() as u64;
        Ok(outcome)
    }
}

impl Default for LocalSandbox {
    fn default() -> Self {
        LocalSandbox::new()
    }
}

impl Sandbox for LocalSandbox {
    fn name(&self) -> &'static str {
        "local"
    }

    fn run(&self, request: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
        let python = self.python.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || LocalSandbox { python }.run_blocking(request))
                .await
                .map_err(|e| SandboxError::RunFailed(format!("the local run panicked: {e}")))?
        })
    }
}
