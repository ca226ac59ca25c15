//! The Docker sandbox: one fresh, locked-down container per answer, driven
//! through the Engine API (bollard). This room is the only code that talks
//! to Docker, apart from `image`, which builds the image, and `lib_volume`,
//! which keeps a shared read-only copy of its `/usr/lib`.
//!
//! The answer goes in on stdin (attach), the result comes out on stdout: no
//! file is copied in or out, so the root file system stays read-only and the
//! host never follows a path inside the sandbox.
//!
//! A file a concern: this one is the sandbox's handle (connecting, the
//! runtime, the traits); `run` is one answer's container from start to
//! result; `hardening` the container's configuration; `cleanup` that no
//! container outlives its use; `reap` the orphans of processes that are
//! gone; `backend` the lifecycle (`sandbox::Backend`).

mod backend;
mod cleanup;
mod hardening;
mod reap;
mod run;

use std::sync::Arc;

use bollard::Docker;

use super::warm_pool::{PoolConfig, StartsAhead, WarmPool};
use super::{new_nonce, BoxFuture, Sandbox, SandboxError, SandboxOutcome, SandboxRequest};
use crate::task::Limits;
use cleanup::InFlight;
use reap::owner_id;

pub use backend::DockerBackend;
pub(super) use cleanup::remove;
pub(super) use reap::owner_alive;
pub use reap::{count_labelled, REPLICA_NAME_VAR};
pub use run::Started;

/// Every container qtjudge makes carries this label (the reaper's key).
pub const LABEL: &str = "qtjudge";

/// The run id of the verification a container serves.
pub const LABEL_RUN: &str = "qtjudge.run";

/// `<host>:<pid>` of the qtjudge process that owns the container.
pub const LABEL_OWNER: &str = "qtjudge.owner";

/// The `DockerSandbox` (and its clones) that made the container: what its
/// shutdown sweeps, leaving other sandboxes of the same process alone.
const LABEL_SANDBOX: &str = "qtjudge.sandbox";

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

fn engine_error(doing: &'static str, error: bollard::errors::Error) -> SandboxError {
    SandboxError::EngineFailed {
        doing,
        message: error.to_string(),
    }
}
