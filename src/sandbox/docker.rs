//! The Docker sandbox: one fresh, locked-down container per answer, driven
//! through the Engine API (bollard). The only file that talks to Docker,
//! apart from `image`, which builds the image, and `lib_volume`, which
//! keeps a shared read-only copy of its `/usr/lib`.
//!
//! The answer goes in on stdin (attach), the result comes out on stdout: no
//! file is copied in or out, so the root file system stays read-only and the
//! host never follows a path inside the sandbox.
//!
//! `DockerBackend` is its lifecycle (`sandbox::Backend`): the engine's
//! health, the sandbox prepared (image, volume, runtime, warm pool), and the
//! reaper of containers whose qtjudge is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StatsOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::backend::{Backend, Progress};
use super::warm_pool::{PoolConfig, StartsAhead, Warm, WarmPool};
use super::{
    new_nonce, read_result, BoxFuture, NoResult, Sandbox, SandboxError, SandboxOutcome,
    SandboxRequest,
};
use crate::task::Limits;
use crate::timings::Stopwatch;

/// Every container qtjudge makes carries this label (the reaper's key).
pub const LABEL: &str = "qtjudge";
/// The run id of the verification a container serves.
pub const LABEL_RUN: &str = "qtjudge.run";
/// `<host>:<pid>` of the qtjudge process that owns the container.
pub const LABEL_OWNER: &str = "qtjudge.owner";
/// The `DockerSandbox` (and its clones) that made the container: what its
/// shutdown sweeps, leaving other sandboxes of the same process alone.
const LABEL_SANDBOX: &str = "qtjudge.sandbox";
/// How long shutdown keeps sweeping for containers whose creation was
/// still under way in the engine.
const SWEEP_LIMIT: Duration = Duration::from_secs(10);
/// A creation the caller gave up on (a verification aborted at shutdown)
/// may still complete in the engine this long after.
const ABANDONED_CREATION_GRACE: Duration = Duration::from_secs(2);

/// The result document with screenshots is a few hundred KB; anything past
/// this is not a supervisor's output.
const MAX_STDOUT: usize = 32 * 1024 * 1024;
const MAX_STDERR: usize = 64 * 1024;
/// Linux capabilities the supervisor keeps to drop to the candidate's uid
/// and to kill it; the candidate itself has none.
const SUPERVISOR_CAPABILITIES: [&str; 3] = ["SETUID", "SETGID", "KILL"];
/// A warm container's harness is normally ready within a second; one not
/// ready after this is given up (the supervisor itself waits 60 s).
const WARM_START_LIMIT: Duration = Duration::from_secs(60);
/// How long a container may still run after its output ended before the
/// stream is taken for cut (a supervisor that died takes its container
/// down within milliseconds).
const OUTPUT_CUT_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct DockerSandbox {
    docker: Docker,
    image: String,
    /// Mounted read-only over `/usr/lib` (fuse-overlayfs engines; see `lib_volume`).
    lib_volume: Option<String>,
    owner: String,
    /// Tells this sandbox's containers from other sandboxes' of the same
    /// process (tests run several at once).
    id: String,
    pool: Option<Arc<WarmPool<DockerSandbox>>>,
    /// Engine calls under way that can leave a container behind.
    in_flight: Arc<InFlight>,
    /// The OCI runtime the containers run under (`None`: the engine's default).
    runtime: Option<String>,
}

/// Engine calls under way that can leave a container behind, so that
/// shutdown and tests can wait for them: removals (of finished runs, done
/// after the result is returned since one costs 25–90 ms that no
/// verification should wait for, or of runs dropped mid-way) and creations.
#[derive(Default)]
struct InFlight {
    removals: AtomicUsize,
    removed: tokio::sync::Notify,
    creations: AtomicUsize,
    /// When a creation was last given up on before the engine answered: the
    /// engine may still make that container.
    abandoned_creation: std::sync::Mutex<Option<Instant>>,
}

impl InFlight {
    fn remove(self: &Arc<Self>, docker: Docker, id: String) {
        self.removals.fetch_add(1, Ordering::SeqCst);
        let in_flight = self.clone();
        let removal = async move {
            remove(&docker, &id).await;
            in_flight.removals.fetch_sub(1, Ordering::SeqCst);
            in_flight.removed.notify_waiters();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(removal)),
            // No runtime left (the process is ending): the next start's reaper removes it.
            Err(_) => {
                self.removals.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    async fn removals_settled(&self) {
        loop {
            let removed = self.removed.notified();
            tokio::pin!(removed);
            // Registered before the check, so a removal ending in between still wakes us.
            removed.as_mut().enable();
            if self.removals.load(Ordering::SeqCst) == 0 {
                return;
            }
            removed.await;
        }
    }

    fn creation(&self) -> Creation<'_> {
        self.creations.fetch_add(1, Ordering::SeqCst);
        Creation {
            in_flight: self,
            answered: false,
        }
    }

    /// Whether a container may still appear: a creation is under way, or
    /// one was given up on only just now.
    fn creation_pending(&self) -> bool {
        let abandoned = *self
            .abandoned_creation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.creations.load(Ordering::SeqCst) > 0
            || abandoned.is_some_and(|at| at.elapsed() < ABANDONED_CREATION_GRACE)
    }
}

/// One container creation under way; dropped unanswered, it is noted as
/// abandoned (the engine may finish it anyway).
struct Creation<'a> {
    in_flight: &'a InFlight,
    answered: bool,
}

impl Drop for Creation<'_> {
    fn drop(&mut self) {
        self.in_flight.creations.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            *self
                .in_flight
                .abandoned_creation
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }
}

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
    async fn until_ready(&mut self, within: Duration) -> Result<super::Readiness, SandboxError> {
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
        let readiness = super::parse_ready(&early.stdout[..end]).map_err(not_ready)?;
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
    /// Connects to the engine and makes sure the sandbox image exists
    /// (building it when missing; `progress` shows the build).
    pub async fn connect(progress: &(dyn Fn(&str) + Sync)) -> Result<DockerSandbox, SandboxError> {
        let docker = connect_engine().await?;
        let image = crate::image::ensure(&docker, progress)
            .await
            .map_err(|e| SandboxError::ImageMissing(e.to_string()))?;
        let owner = owner_id();
        let lib_volume = super::lib_volume::prepare(&docker, &image, &owner).await;
        let sandbox = DockerSandbox {
            docker,
            image,
            lib_volume,
            owner,
            id: new_nonce()[..12].to_string(),
            pool: None,
            in_flight: Arc::default(),
            runtime: None,
        };
        sandbox.log_versions().await;
        Ok(sandbox)
    }

    /// Runs the containers under the engine's runtime `name` (e.g. gVisor's
    /// `runsc`, for isolation stronger than a container's); refused when the
    /// engine does not have it, so no answer runs under less than asked.
    pub async fn with_runtime(mut self, name: &str) -> Result<DockerSandbox, SandboxError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| engine_error("reading the engine's runtimes", e))?;
        let mut available: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        available.sort();
        if !available.iter().any(|r| r == name) {
            return Err(SandboxError::UnknownRuntime {
                wanted: name.to_string(),
                available: available.join(", "),
                remedy: "install it and register it with the Docker engine in \
                         /etc/docker/daemon.json (gVisor: `runsc install`), or drop --runtime",
            });
        }
        tracing::info!(runtime = name, "sandbox containers use this OCI runtime");
        self.runtime = Some(name.to_string());
        Ok(self)
    }

    /// Keeps up to `config.size` containers started ahead, each with the
    /// harness imported and waiting for an answer (see `warm_pool`).
    pub fn with_warm_pool(mut self, config: PoolConfig) -> DockerSandbox {
        if config.size > 0 {
            self.pool = Some(WarmPool::new(config));
        }
        self
    }

    /// The labels (`qtjudge.run`) of the warm containers ready now.
    pub fn warm_labels(&self) -> Vec<String> {
        self.pool
            .as_ref()
            .map(|p| p.ready_labels())
            .unwrap_or_default()
    }

    /// Removes the warm containers and every other container this sandbox
    /// made; call before exiting.
    pub async fn shutdown(&self) {
        if let Some(pool) = &self.pool {
            pool.drain().await;
        }
        self.settled().await;
        self.sweep().await;
    }

    /// The ids of the containers this sandbox (or a clone of it) made that
    /// the engine still has, running or not.
    pub async fn containers(&self) -> Result<Vec<String>, SandboxError> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{LABEL_SANDBOX}={}", self.id)],
        );
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine_error("listing the sandbox's containers", e))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    /// Waits until every finished verification's container is removed.
    pub async fn settled(&self) {
        self.in_flight.removals_settled().await;
    }

    /// The last word of a shutdown: removes whatever container of this
    /// sandbox is still there, by its label. A verification abandoned at
    /// shutdown can leave one its guards never heard of: the engine may
    /// complete a creation whose caller is gone, so this keeps looking
    /// until no creation can still be under way.
    async fn sweep(&self) {
        let give_up = Instant::now() + SWEEP_LIMIT;
        loop {
            let pending = self.in_flight.creation_pending();
            let left = match self.containers().await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list this sandbox's containers at shutdown; the next start's reaper removes any left");
                    return;
                }
            };
            for id in &left {
                tracing::info!(container = %id, "removing a sandbox container left at shutdown");
                remove(&self.docker, id).await;
            }
            if left.is_empty() && !pending {
                return;
            }
            if Instant::now() >= give_up {
                tracing::warn!("a sandbox container may still be in the making at shutdown; the next start's reaper removes it");
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// After an engine outage: the warm containers' attach streams died
    /// with the connections (a container handed out now would give no
    /// result), and removals failed while the engine was away.
    pub async fn after_outage(&self) {
        if let Some(pool) = &self.pool {
            pool.flush().await;
        }
        let ids = std::mem::take(&mut *LEFTOVERS.lock().unwrap_or_else(|p| p.into_inner()));
        if !ids.is_empty() {
            tracing::info!(
                containers = ids.len(),
                "removing the sandbox containers left while the engine was away"
            );
        }
        for id in ids {
            // A failure puts it back on the list for the next time.
            remove(&self.docker, &id).await;
        }
    }

    /// Waits until a container started for the pool said its harness is
    /// ready; an error (it is then removed) if it never does.
    async fn warm_up(mut container: Started) -> Result<Started, SandboxError> {
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

    pub fn image(&self) -> &str {
        &self.image
    }

    /// The shared read-only volume mounted over `/usr/lib`, if any (see
    /// `lib_volume`).
    pub fn lib_volume(&self) -> Option<&str> {
        self.lib_volume.as_deref()
    }

    /// `<host>:<pid>:<start time>` of this process: the owner label of the
    /// containers it makes.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn engine(&self) -> &Docker {
        &self.docker
    }

    async fn log_versions(&self) {
        if let Ok(version) = self.docker.version().await {
            let runc = version
                .components
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.name == "runc")
                .map(|c| c.version)
                .unwrap_or_default();
            tracing::info!(engine = version.version.unwrap_or_default(), runc, image = %self.image, "docker sandbox ready");
        }
    }

    /// Creates, attaches to and starts one hardened container. It waits on
    /// stdin for its job, with the harness already warm inside.
    async fn start_container(&self, label: &str, limits: &Limits) -> Result<Started, SandboxError> {
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

    async fn run_one(&self, request: SandboxRequest) -> Result<SandboxOutcome, SandboxError> {
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
        let deadline = tokio::time::Instant::now() + wall;

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
                let ready_end = if stdout.starts_with(super::READY_PREFIX.as_bytes()) {
                    stdout.iter().position(|b| *b == b'\n').map(|end| end + 1)
                } else if super::READY_PREFIX.as_bytes().starts_with(stdout) {
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
        let host_timeout = tokio::time::timeout_at(deadline, read).await.is_err();
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
                outcome.pids_limit_hit = super::pids_runaway(current, limit);
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

impl Sandbox for DockerSandbox {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn run(&self, request: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
        Box::pin(self.run_one(request))
    }

    fn image_tag(&self) -> Option<&str> {
        Some(&self.image)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(DockerSandbox::shutdown(self))
    }

    fn after_outage(&self) -> BoxFuture<'_, ()> {
        Box::pin(DockerSandbox::after_outage(self))
    }
}

impl StartsAhead for DockerSandbox {
    type Started = Started;

    /// Creates and starts a container for the pool: its label names no
    /// verification.
    async fn start_ahead(&self, limits: &Limits) -> Result<Started, SandboxError> {
        let label = format!("warm-{}", &new_nonce()[..12]);
        self.start_container(&label, limits).await
    }

    async fn warm_up(&self, started: Started) -> Result<Started, SandboxError> {
        DockerSandbox::warm_up(started).await
    }
}

/// The Docker backend: the engine DOCKER_HOST (or the local socket) names,
/// the containers' runtime and warm pool, as `--sandbox docker` asks.
pub struct DockerBackend {
    runtime: Option<String>,
    pool: PoolConfig,
    /// The client of the last `prepare` or reap, kept for the next reap.
    client: std::sync::Mutex<Option<Docker>>,
}

impl DockerBackend {
    pub fn new(runtime: Option<String>, pool: PoolConfig) -> DockerBackend {
        DockerBackend {
            runtime,
            pool,
            client: std::sync::Mutex::new(None),
        }
    }

    fn keep_client(&self, docker: &Docker) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(docker.clone());
    }

    async fn prepare_docker(&self, progress: Progress<'_>) -> Result<DockerSandbox, SandboxError> {
        let mut sandbox = DockerSandbox::connect(progress).await?;
        if let Some(runtime) = &self.runtime {
            sandbox = sandbox.with_runtime(runtime).await?;
        }
        self.keep_client(sandbox.engine());
        Ok(sandbox.with_warm_pool(self.pool))
    }

    async fn reap(&self) -> Result<usize, SandboxError> {
        let kept = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let docker = match kept {
            Some(docker) => docker,
            None => {
                let docker = connect_engine().await?;
                self.keep_client(&docker);
                docker
            }
        };
        reap_orphans(&docker).await
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    /// A connection of its own each time (version agreed, pinged): a
    /// client whose connections an outage cut is no witness.
    fn health(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async { connect_engine().await.map(drop) })
    }

    fn prepare<'a>(
        &'a self,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Arc<dyn Sandbox>, SandboxError>> {
        Box::pin(async move {
            let sandbox = self.prepare_docker(progress).await?;
            Ok(Arc::new(sandbox) as Arc<dyn Sandbox>)
        })
    }

    fn reap_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
        Box::pin(self.reap())
    }

    fn image<'a>(
        &'a self,
        rebuild: bool,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SandboxError>> {
        Box::pin(async move {
            let docker = connect_engine().await?;
            self.keep_client(&docker);
            let built = if rebuild {
                crate::image::build(&docker, progress).await
            } else {
                crate::image::ensure(&docker, progress).await
            };
            built
                .map(Some)
                .map_err(|e| SandboxError::ImageBuildFailed(e.to_string()))
        })
    }
}

/// Removes the containers that a crashed qtjudge left behind: those whose
/// owner process is gone. Returns how many were removed.
async fn reap_orphans(docker: &Docker) -> Result<usize, SandboxError> {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![LABEL.to_string()]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| engine_error("listing qtjudge's containers", e))?;
    let mut removed = 0;
    for container in containers {
        let owner = container
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_OWNER))
            .cloned()
            .unwrap_or_default();
        if owner_alive(&owner) {
            continue;
        }
        if let Some(id) = container.id {
            tracing::warn!(container = %id, owner, "removing a container left behind by a qtjudge that is gone");
            if remove(docker, &id).await {
                removed += 1;
            }
        }
    }
    Ok(removed)
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

/// The hardened container: no network, read-only root, a capped tmpfs
/// (noexec: no program written by the app runs from it),
/// no capabilities for the candidate, and the task's limits.
fn container_config(
    image: &str,
    label: &str,
    limits: &Limits,
    owner: &str,
    sandbox_id: &str,
    runtime: Option<&str>,
    lib_volume: Option<&str>,
) -> ContainerCreateBody {
    let mib = 1024 * 1024;
    let mut labels = HashMap::new();
    labels.insert(LABEL.to_string(), "1".to_string());
    labels.insert(LABEL_RUN.to_string(), label.to_string());
    labels.insert(LABEL_OWNER.to_string(), owner.to_string());
    labels.insert(LABEL_SANDBOX.to_string(), sandbox_id.to_string());
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/tmp".to_string(),
        format!("rw,noexec,nosuid,nodev,size={}m,mode=1777", limits.tmpfs_mb),
    );
    let file_size = (limits.file_size_mb * mib) as i64;
    let host_config = HostConfig {
        network_mode: Some("none".into()),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(
            SUPERVISOR_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        security_opt: Some(vec!["no-new-privileges".into()]),
        memory: Some((limits.memory_mb * mib) as i64),
        memory_swap: Some((limits.memory_mb * mib) as i64),
        pids_limit: Some(limits.pids),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        ulimits: Some(vec![
            ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(limits.open_files as i64),
                hard: Some(limits.open_files as i64),
            },
            ResourcesUlimits {
                name: Some("fsize".into()),
                soft: Some(file_size),
                hard: Some(file_size),
            },
            ResourcesUlimits {
                name: Some("core".into()),
                soft: Some(0),
                hard: Some(0),
            },
        ]),
        init: Some(true),
        runtime: runtime.map(String::from),
        mounts: lib_volume.map(|name| vec![super::lib_volume::mount(name)]),
        // Output goes to the attached client only; nothing is logged to disk.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![
            "python3".into(),
            "-I".into(),
            "/opt/qtjudge/supervisor.py".into(),
        ]),
        user: Some("0".into()),
        env: Some(vec![
            "LANG=C.UTF-8".into(),
            format!("QTJUDGE_OUTPUT_CAP_BYTES={}", limits.output_cap_kb * 1024),
        ]),
        working_dir: Some("/tmp".into()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Connects with the usual defaults (DOCKER_HOST or the local socket) and
/// agrees on an API version the engine speaks.
pub async fn connect_engine() -> Result<Docker, SandboxError> {
    let docker = Docker::connect_with_defaults().map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// The engine does not answer: what bollard said, and how to mend it.
fn unreachable(error: bollard::errors::Error) -> SandboxError {
    SandboxError::EngineUnreachable(format!(
        "the Docker engine does not answer ({error}); start it (e.g. `systemctl start docker`) \
         or point DOCKER_HOST at it"
    ))
}

/// Counts the containers with our label (all of them, or one run's).
pub async fn count_labelled(docker: &Docker, run_id: Option<&str>) -> Result<usize, SandboxError> {
    let label = match run_id {
        Some(id) => format!("{LABEL_RUN}={id}"),
        None => LABEL.to_string(),
    };
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![label]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .map(|c| c.len())
        .map_err(|e| engine_error("listing containers", e))
}

fn engine_error(doing: &'static str, error: bollard::errors::Error) -> SandboxError {
    SandboxError::EngineFailed {
        doing,
        message: error.to_string(),
    }
}

/// Containers (ids, or names) of this process whose removal failed, or
/// whose creation went unanswered, while the engine was away:
/// `after_outage` removes them once it answers again, so that an outage
/// leaves no container behind a live service (the start-up reaper only
/// removes those of dead processes).
static LEFTOVERS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(super) async fn remove(docker: &Docker, id: &str) -> bool {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => true,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => true,
        Err(e) => {
            tracing::warn!(container = id, error = %e, "could not remove a sandbox container; retried when the engine answers again");
            remember_leftover(id);
            false
        }
    }
}

fn remember_leftover(id_or_name: &str) {
    let mut leftovers = LEFTOVERS.lock().unwrap_or_else(|p| p.into_inner());
    if !leftovers.iter().any(|left| left == id_or_name) {
        leftovers.push(id_or_name.to_string());
    }
}

/// Removes the container when dropped: on success, error, timeout,
/// cancellation or panic alike. The removal is counted in flight, so that
/// shutdown waits for it.
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
    in_flight: Arc<InFlight>,
}

impl RemoveOnDrop {
    fn new(docker: Docker, id: String, in_flight: &Arc<InFlight>) -> RemoveOnDrop {
        RemoveOnDrop {
            docker,
            id: Some(id),
            in_flight: in_flight.clone(),
        }
    }

    async fn remove_now(mut self) {
        if let Some(id) = self.id.take() {
            remove(&self.docker, &id).await;
        }
    }

    /// Removes it without waiting (the result is already in hand).
    fn remove_in_background(self) {
        drop(self);
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.in_flight.remove(self.docker.clone(), id);
        }
    }
}

/// `<host>:<pid>:<start time>`: the start time tells a restarted process
/// that reuses a pid (pid 1 in a compose service) from the one that made
/// the container.
fn owner_id() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        hostname(),
        start_time(pid).unwrap_or_default()
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A process's start time in clock ticks since boot (/proc/PID/stat, field 22).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(String::from)
}

/// Whether the qtjudge process named by an owner label still runs here.
/// An owner on another host is left alone (give a compose service a fixed
/// hostname so that its restarts reap what it left).
pub(super) fn owner_alive(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid), started) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match (start_time(pid), started) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
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

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        assert!(owner_alive(&owner_id()));
        let pid = std::process::id();
        assert!(
            !owner_alive(&format!("{}:{pid}:1", hostname())),
            "same pid, other start time"
        );
        assert!(
            !owner_alive(&format!("{}:4194399:1", hostname())),
            "no such pid"
        );
        assert!(
            owner_alive("another-host:1:1"),
            "owners elsewhere are left alone"
        );
    }
}
