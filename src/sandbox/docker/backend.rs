//! `DockerBackend`, the Docker sandbox's lifecycle (`sandbox::Backend`):
//! the engine's health (a fresh ping), the sandbox prepared (image,
//! volume, runtime, warm pool), the orphan reaper, the image alone.

use std::sync::Arc;

use bollard::Docker;

use super::reap::{owner_id, reap_orphans, reap_owned_by};
use super::{connect_engine, DockerSandbox};
use crate::sandbox::backend::{Backend, Progress};
use crate::sandbox::warm_pool::PoolConfig;
use crate::sandbox::{BoxFuture, Sandbox, SandboxError};

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

    async fn engine(&self) -> Result<Docker, SandboxError> {
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
        Ok(docker)
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
        Box::pin(async { reap_orphans(&self.engine().await?).await })
    }

    fn owner(&self) -> Option<String> {
        Some(owner_id())
    }

    fn reap_owners<'a>(
        &'a self,
        owners: &'a [String],
    ) -> BoxFuture<'a, Result<usize, SandboxError>> {
        Box::pin(async move { reap_owned_by(&self.engine().await?, owners).await })
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
