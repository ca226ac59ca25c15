//! One answer's container: started (cold, or ahead for the warm pool and
//! warmed until its readiness line), the job written on stdin, the result
//! line read from stdout, and the engine's view of a run that gave none.

use std::time::{Duration, Instant};

use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, StatsOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::cleanup::{remember_leftover, RemoveOnDrop};
use super::hardening::container_config;
use super::{engine_error, DockerSandbox};
use crate::sandbox::machine_load;
use crate::sandbox::warm_pool::Warm;
use crate::sandbox::{
    new_nonce, read_result, NoResult, SandboxError, SandboxOutcome, SandboxRequest,
};
use crate::task::Limits;
use crate::timings::Stopwatch;

/// The result document with screenshots is a few hundred KB; anything past
/// this is not a supervisor's output.
const MAX_STDOUT: usize = 32 * 1024 * 1024;

const MAX_STDERR: usize = 64 * 1024;

/// A warm container's harness is normally ready within a second; one not
/// ready after this is given up (the supervisor itself waits 60 s).
const WARM_START_LIMIT: Duration = Duration::from_secs(60);

/// How long a container may still run after its output ended before the
/// stream is taken for cut (a supervisor that died takes its container
/// down within milliseconds).
const OUTPUT_CUT_GRACE: Duration = Duration::from_secs(1);

/// The job as the line the supervisor reads, with the run's nonce put in
/// front of the job's own fields: the job (an app's files, base64) is
/// serialised once, never copied as a JSON value.
fn job_line(job: &serde_json::Value, nonce: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"{\"nonce\":");
    serde_json::to_writer(&mut line, nonce).expect("a string serialises");
    let joint = line.len();
    serde_json::to_writer(&mut line, job).expect("a JSON value serialises");
    match (job.as_object(), line.get(joint)) {
        // `{…}`: its brace goes, a comma joins it to the nonce.
        (Some(fields), Some(b'{')) if !fields.is_empty() => line[joint] = b',',
        (Some(_), Some(b'{')) => {
            line.truncate(joint);
            line.push(b'}');
        }
        // Not an object (never built so): the supervisor refuses it as before.
        _ => {
            line.truncate(0);
            serde_json::to_writer(&mut line, job).expect("a JSON value serialises");
        }
    }
    line.push(b'\n');
    line
}

/// A started container waiting on stdin for its one job.
pub struct Started {
    id: String,
    label: String,
    limits: Limits,
    born: Instant,
    io: bollard::container::AttachContainerResults,
    guard: RemoveOnDrop,
    /// Output read while waiting for the readiness line, after it.
    early: Output,
}

/// A run's output as it arrives.
#[derive(Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    /// Whether stdout reached its cap: what comes after is not kept.
    fn stdout_full(&self) -> bool {
        self.stdout.len() >= MAX_STDOUT
    }

    /// Keeps a frame's bytes, each stream capped.
    fn take(&mut self, frame: bollard::container::LogOutput) {
        use bollard::container::LogOutput;
        match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message }
                if self.stdout.len() < MAX_STDOUT =>
            {
                self.stdout.extend_from_slice(&message);
            }
            LogOutput::StdErr { message } if self.stderr.len() < MAX_STDERR => {
                self.stderr.extend_from_slice(&message);
            }
            _ => {}
        }
    }
}

impl Started {
    /// Waits for the supervisor's readiness line (printed once its harness
    /// is warm, before it reads a job): a container is pooled only then.
    async fn until_ready(
        &mut self,
        within: Duration,
    ) -> Result<crate::sandbox::Readiness, SandboxError> {
        let not_ready = |message: String| SandboxError::EngineFailed {
            doing: "warming a container for the pool",
            message,
        };
        let mut early = Output::default();
        let read = async {
            while let Some(frame) = self.io.output.next().await {
                match frame {
                    Ok(frame) => early.take(frame),
                    Err(e) => return Err(format!("its output stream failed: {e}")),
                }
                if let Some(end) = early.stdout.iter().position(|b| *b == b'\n') {
                    return Ok(end);
                }
            }
            Err("it ended before its harness was ready".to_string())
        };
        let end = match tokio::time::timeout(within, read).await {
            Ok(Ok(end)) => end,
            Ok(Err(why)) => return Err(not_ready(why)),
            Err(_) => {
                return Err(not_ready(format!(
                    "its harness was not ready within {} s",
                    within.as_secs()
                )))
            }
        };
        let readiness = crate::sandbox::parse_ready(&early.stdout[..end]).map_err(not_ready)?;
        if !readiness.harness_ready {
            return Err(not_ready(format!(
                "its harness did not start: {}",
                String::from_utf8_lossy(&early.stderr).trim()
            )));
        }
        early.stdout.drain(..=end);
        self.early = early;
        Ok(readiness)
    }
}

impl Warm for Started {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn born(&self) -> Instant {
        self.born
    }

    fn label(&self) -> &str {
        &self.label
    }

    async fn discard(self) {
        self.guard.remove_now().await;
    }
}

impl DockerSandbox {
    /// Waits until a container started for the pool said its harness is
    /// ready; an error (it is then removed) if it never does.
    pub(super) async fn warm_up(mut container: Started) -> Result<Started, SandboxError> {
        let asked = Instant::now();
        // Dropped on failure: the guard removes it.
        let readiness = container.until_ready(WARM_START_LIMIT).await?;
        tracing::debug!(
            run = %container.label,
            started_ms = (asked - container.born).as_millis() as u64,
            ready_ms = asked.elapsed().as_millis() as u64,
            supervisor_ready_ms = readiness.ready_ms,
            "warm container ready for the pool"
        );
        Ok(container)
    }

    /// Creates, attaches to and starts one hardened container. It waits on
    /// stdin for its job, with the harness already warm inside.
    pub(super) async fn start_container(
        &self,
        label: &str,
        limits: &Limits,
    ) -> Result<Started, SandboxError> {
        let name = format!("qtjudge-{label}");
        let config = container_config(
            &self.image,
            label,
            limits,
            &self.owner,
            &self.id,
            self.runtime.as_deref(),
            self.lib_volume.as_deref(),
        );
        let mut creation = self.in_flight.creation();
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                config,
            )
            .await;
        creation.answered = true;
        drop(creation);
        let created = created.map_err(|e| {
            // The connection broke: the engine may have made the
            // container without our hearing of it. Its name is unique,
            // so it is removed by name once the engine is back.
            if !matches!(e, bollard::errors::Error::DockerResponseServerError { .. }) {
                remember_leftover(&name);
            }
            engine_error("creating the container", e)
        })?;
        // From here on the container must go, whatever happens.
        let guard = RemoveOnDrop::new(self.docker.clone(), created.id.clone(), &self.in_flight);
        let attach = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        // Attached before the start, so that no output can be missed.
        let io = self
            .docker
            .attach_container(&created.id, Some(attach))
            .await
            .map_err(|e| engine_error("attaching to the container", e))?;
        self.docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| engine_error("starting the container", e))?;
        Ok(Started {
            id: created.id,
            label: label.to_string(),
            limits: *limits,
            born: Instant::now(),
            io,
            guard,
            early: Output::default(),
        })
    }

    pub(super) async fn run_one(
        &self,
        request: SandboxRequest,
    ) -> Result<SandboxOutcome, SandboxError> {
        let started = Instant::now();
        let mut watch = Stopwatch::since(started);
        let warm = match &self.pool {
            Some(pool) => pool.take(&request.limits, self).await,
            None => None,
        };
        let container = match warm {
            Some(container) => container,
            None => {
                self.start_container(&request.run_id, &request.limits)
                    .await?
            }
        };
        watch.lap("sandbox.obtain", started);
        let mut outcome = self.serve(container, &request, &mut watch).await?;
        outcome.wall_ms = started.elapsed().as_millis() as u64;
        outcome.phases = watch.into_phases();
        Ok(outcome)
    }

    /// Sends one job to a started container, reads its one result, and
    /// removes it: a container never serves a second answer. Its phases go
    /// to `watch`.
    async fn serve(
        &self,
        container: Started,
        request: &SandboxRequest,
        watch: &mut Stopwatch,
    ) -> Result<SandboxOutcome, SandboxError> {
        let Started {
            id,
            label,
            mut io,
            guard,
            early,
            ..
        } = container;
        let started = Instant::now();
        let nonce = new_nonce();
        let line = job_line(&request.job, &nonce);
        let wall = Duration::from_secs(request.limits.wall_seconds);
        let run_start = tokio::time::Instant::now();
        let deadline = run_start + wall;
        // The supervisor moves its deadline on by a busy machine's stall;
        // the host's kill waits for as much (machine_load.rs).
        let stall = machine_load::Stall::start();
        let cap = machine_load::busy_cap(wall);

        // The candidate may never read stdin: writing is bounded by the wall clock too.
        let write = async {
            io.input.write_all(&line).await?;
            io.input.flush().await?;
            io.input.shutdown().await
        };
        let _ = tokio::time::timeout_at(deadline, write).await;
        let written = Instant::now();
        watch.record("sandbox.write", started, written);

        let mut output = early;
        let mut result_line = ResultLine::new(&nonce);
        // A cold container prints its readiness line first: when it came,
        // and when the first byte after it (the result's) did.
        let mut ready_at: Option<Instant> = None;
        let mut result_began: Option<Instant> = None;
        let read = async {
            while let Some(frame) = io.output.next().await {
                let Ok(frame) = frame else { break };
                output.take(frame);
                let stdout = &output.stdout;
                let ready_end = if stdout.starts_with(crate::sandbox::READY_PREFIX.as_bytes()) {
                    stdout.iter().position(|b| *b == b'\n').map(|end| end + 1)
                } else if crate::sandbox::READY_PREFIX.as_bytes().starts_with(stdout) {
                    None // too short to tell yet
                } else {
                    Some(0)
                };
                if ready_at.is_none() && ready_end.is_some_and(|end| end > 0) {
                    ready_at = Some(Instant::now());
                }
                if result_began.is_none() && ready_end.is_some_and(|end| stdout.len() > end) {
                    result_began = Some(Instant::now());
                }
                // The supervisor's last word: no need to wait for the
                // container to exit (tens of milliseconds).
                if result_line.complete_in(stdout) {
                    break;
                }
                // Past the cap the result can never be whole: the answer
                // made it too large, and waiting would only keep the run.
                if output.stdout_full() {
                    break;
                }
            }
        };
        let host_timeout = {
            tokio::pin!(read);
            let mut until = deadline;
            loop {
                if tokio::time::timeout_at(until, &mut read).await.is_ok() {
                    break false;
                }
                let moved = run_start + wall + stall.granted(cap);
                if moved <= tokio::time::Instant::now() {
                    break true;
                }
                until = moved;
            }
        };
        let read_end = Instant::now();
        if let Some(ready) = ready_at {
            watch.record("sandbox.until_ready", written, ready);
        }
        let job_arrived = ready_at.unwrap_or(written);
        if let Some(began) = result_began {
            watch.record("sandbox.await_result", job_arrived, began);
            watch.record("sandbox.read", began, read_end);
        }
        tracing::debug!(
            run = %label,
            write_ms = (written - started).as_millis() as u64,
            read_ms = (read_end - written).as_millis() as u64,
            bytes = output.stdout.len(),
            "sandbox run: job written, result read"
        );

        let mut outcome = SandboxOutcome {
            host_timeout,
            busy_allowance_ms: if host_timeout {
                stall.granted(cap).as_millis() as u64
            } else {
                0
            },
            container_label: label,
            supervisor_stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            ..Default::default()
        };
        match read_output(&output.stdout, &nonce, MAX_STDOUT) {
            Ok(result) => {
                // The supervisor's times count from the job's arrival: the
                // write, or a cold container's readiness (it reads the job
                // only then).
                let inside = crate::timings::supervisor_phases(&result);
                let arrived_ms = watch.at(job_arrived);
                watch.extend(&inside, arrived_ms);
                outcome.result = Some(result);
            }
            Err(NoResult::TooLarge(why)) => {
                // Nothing the engine did: its view would only mistake the
                // still running container for a cut stream.
                tracing::info!(run = %outcome.container_label, why, "the answer's result is too large for the host");
                outcome.missing_result = Some(why.clone());
                outcome.output_too_large = Some(why);
            }
            Err(NoResult::Missing(why)) => {
                outcome.missing_result = Some(why);
                // Only a run without a result needs the engine's view,
                // read before the container goes.
                let asked = Instant::now();
                let engine_view = self.without_result(&id, &mut outcome).await;
                watch.lap("sandbox.engine_view", asked);
                if let Err(lost) = engine_view {
                    guard.remove_in_background();
                    return Err(lost);
                }
            }
        }
        guard.remove_in_background();
        Ok(outcome)
    }

    /// The engine's view of a run that printed no result: which limit the
    /// container hit or was racing to (a fork bomb can starve the
    /// supervisor until the host kills the run, and then only these
    /// counters tell a bomb from a hang), and whether the output was lost
    /// on the way rather than never printed (an engine or transport fault:
    /// the answer is not to blame).
    async fn without_result(
        &self,
        id: &str,
        outcome: &mut SandboxOutcome,
    ) -> Result<(), SandboxError> {
        // Counters first: once the container has exited they are gone.
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let stats = self.docker.stats(id, Some(options)).next().await;
        if let Some(Ok(stats)) = stats {
            let pids = stats.pids_stats.unwrap_or_default();
            if let (Some(current), Some(limit)) = (pids.current, pids.limit) {
                outcome.pids_limit_hit = crate::sandbox::pids_runaway(current, limit);
            }
            let memory = stats.memory_stats.unwrap_or_default();
            // cgroup v1 only: how often usage ran into the limit.
            outcome.memory_limit_hit = memory.failcnt.unwrap_or(0) > 0;
        }
        let mut waited = Duration::ZERO;
        loop {
            let state = match self.docker.inspect_container(id, None).await {
                Ok(c) => c.state.unwrap_or_default(),
                Err(bollard::errors::Error::DockerResponseServerError { .. }) => return Ok(()),
                Err(e) => return Err(engine_error("reading a container that gave no result", e)),
            };
            outcome.oom_killed = state.oom_killed.unwrap_or(false);
            outcome.exit_code = state.exit_code;
            let running = state.running.unwrap_or(false);
            if outcome.host_timeout || !running {
                // The supervisor exits 0 only after printing its result.
                if !running && state.exit_code == Some(0) {
                    return Err(SandboxError::EngineFailed {
                        doing: "reading the container's output",
                        message: "the supervisor printed its result and exited, but the result \
                                  never arrived (the connection to the engine was cut)"
                            .into(),
                    });
                }
                return Ok(());
            }
            // The output ended but the container runs on: the attach
            // stream was cut (an engine restart, a proxy), unless it is
            // just now exiting.
            if waited >= OUTPUT_CUT_GRACE {
                return Err(SandboxError::EngineFailed {
                    doing: "reading the container's output",
                    message: "the output stream ended while the container still ran (the \
                              connection to the engine was cut)"
                        .into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
    }
}

/// The result in a run's stdout, of which at most `cap` bytes (give or
/// take a frame) were kept: stdout that reached the cap without a whole
/// result line was made too large by the answer (its requests, widgets or
/// screenshots fill the result), not cut by the engine.
fn read_output(stdout: &[u8], nonce: &str, cap: usize) -> Result<serde_json::Value, NoResult> {
    if stdout.len() >= cap && !ResultLine::new(nonce).complete_in(stdout) {
        return Err(NoResult::TooLarge(format!(
            "the sandbox's output reached the host's cap of {} MiB before its result line \
             ended; an app's requests, widgets or window made the result that large",
            cap >> 20
        )));
    }
    read_result(stdout, nonce)
}

/// Watches stdout for the supervisor's result line (`<nonce> <json>\n`)
/// to be complete, scanning each byte once.
struct ResultLine {
    prefix: Vec<u8>,
    /// Where the line being received starts.
    line_start: usize,
}

impl ResultLine {
    fn new(nonce: &str) -> ResultLine {
        ResultLine {
            prefix: format!("{nonce} ").into_bytes(),
            line_start: 0,
        }
    }

    /// Whether `stdout` (which only grows between calls) now holds a
    /// whole line carrying the nonce.
    fn complete_in(&mut self, stdout: &[u8]) -> bool {
        while let Some(end) = stdout[self.line_start..].iter().position(|b| *b == b'\n') {
            let line = &stdout[self.line_start..self.line_start + end];
            self.line_start += end + 1;
            if line.starts_with(&self.prefix) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_complete_only_with_its_newline() {
        let mut watch = ResultLine::new("abc");
        let mut out = b"noise\nabc {\"schema\"".to_vec();
        assert!(!watch.complete_in(&out), "no newline yet");
        out.extend_from_slice(b":1}");
        assert!(!watch.complete_in(&out));
        out.extend_from_slice(b"\nafter");
        assert!(watch.complete_in(&out));
        let mut other = ResultLine::new("abc");
        assert!(
            !other.complete_in(b"xabc {}\nabcd {}\n"),
            "the nonce must start the line"
        );
    }

    #[test]
    fn the_job_line_is_the_job_with_the_nonce_and_one_line() {
        let job = serde_json::json!({"files": [{"path": "a.py", "data": "eA=="}], "entry": "a.py"});
        let line = job_line(&job, "n0nce");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let mut expected = job.clone();
        expected["nonce"] = "n0nce".into();
        let read: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(read, expected);
        let empty: serde_json::Value =
            serde_json::from_slice(&job_line(&serde_json::json!({}), "n")).unwrap();
        assert_eq!(empty, serde_json::json!({"nonce": "n"}));
    }

    #[test]
    fn output_that_reached_its_cap_without_a_whole_result_is_too_large() {
        let cap = 1 << 20;
        let mut out = b"abc {\"blob\":\"".to_vec();
        out.resize(cap, b'x');
        match read_output(&out, "abc", cap) {
            Err(NoResult::TooLarge(why)) => assert!(why.contains("cap of 1 MiB"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Within the cap, a cut line is a missing result, not the answer's doing.
        out.truncate(cap / 2);
        assert!(matches!(
            read_output(&out, "abc", cap),
            Err(NoResult::Missing(_))
        ));
        // A whole result line is read even when the last frame went past the cap.
        let mut whole = b"abc {\"schema\":1}\n".to_vec();
        whole.resize(cap + 10, b' ');
        assert_eq!(read_output(&whole, "abc", cap).unwrap()["schema"], 1);
    }
}
