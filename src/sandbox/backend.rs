//! The sandbox backend, chosen in one place: `--sandbox docker|local` and
//! the backend's options become a `SandboxConfig`, `backend` turns that
//! into a `Backend`, and `open` into a ready `Sandbox`. The CLI and the
//! service both start here; nothing else names a backend.
//!
//! A `Backend` is the lifecycle beside the `Sandbox` trait: whether its
//! engine answers (`health`, polled by the service), making everything a
//! run needs ready (`prepare`: the image, its volume, the runtime, the warm
//! pool), and removing what processes that are gone left behind
//! (`reap_orphans`); `image` builds what the answers run in, alone. The warm pool stops, and the rest of a sandbox's own
//! goes, with `Sandbox::shutdown`.

use std::sync::Arc;

use super::warm_pool::PoolConfig;
use super::{BoxFuture, Sandbox, SandboxError};

/// What `prepare` reports while it works (an image build's steps).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Where the answers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendKind {
    /// A fresh hardened container per answer (the default).
    #[default]
    Docker,
    /// A host subprocess: NOT a sandbox, for development with trusted answers.
    Local,
}

/// The backend and its settings, validated by `backend`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    pub kind: BackendKind,
    /// The engine's OCI runtime for the answers' containers (e.g. gVisor's
    /// `runsc`); `None` is the engine's default. Docker only.
    pub runtime: Option<String>,
    /// Containers kept started ahead with the harness warm; 0 turns the
    /// pool off. A backend without containers ignores it.
    pub warm: usize,
}

/// A sandbox backend before it is ready: what the CLI and the service's
/// engine watch drive.
pub trait Backend: Send + Sync {
    /// The backend's name, as `Sandbox::name` gives it.
    fn name(&self) -> &'static str;
    /// Whether the engine answers now: cheap, polled while the service
    /// runs, and before `prepare` (which may build for minutes).
    fn health(&self) -> BoxFuture<'_, Result<(), SandboxError>>;
    /// Makes everything a run needs ready (the image, built when missing,
    /// with `progress` told its steps; a shared volume; the runtime asked
    /// for, checked; the warm pool started) and hands out the sandbox.
    fn prepare<'a>(
        &'a self,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Arc<dyn Sandbox>, SandboxError>>;
    /// Removes what qtjudge processes that are gone left behind (a crash,
    /// a kill -9); how many were removed.
    fn reap_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>>;
    /// The label this process puts on what it starts, by which replicas
    /// sharing an engine tell whose it is (`None`: it starts nothing that
    /// outlives it).
    fn owner(&self) -> Option<String> {
        None
    }
    /// Removes what the owners named left (processes elsewhere that a
    /// shared store says are dead); how many were removed.
    fn reap_owners<'a>(
        &'a self,
        owners: &'a [String],
    ) -> BoxFuture<'a, Result<usize, SandboxError>> {
        let _ = owners;
        Box::pin(async { Ok(0) })
    }
    /// Makes what the answers run in ready without starting anything
    /// (`qtjudge image build`): built when missing, or again when
    /// `rebuild`; its tag. `None` for a backend that runs without one.
    fn image<'a>(
        &'a self,
        rebuild: bool,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, SandboxError>> {
        let _ = (rebuild, progress);
        Box::pin(async { Ok(None) })
    }
}

/// The backend `config` asks for, refused when one of its settings does
/// not apply to it. Connects to nothing yet.
pub fn backend(config: &SandboxConfig) -> Result<Arc<dyn Backend>, SandboxError> {
    let runtime = config.runtime.clone().filter(|r| !r.is_empty());
    Ok(match config.kind {
        BackendKind::Docker => Arc::new(super::docker::DockerBackend::new(
            runtime,
            PoolConfig::with_size(config.warm),
        )),
        BackendKind::Local if runtime.is_some() => {
            return Err(SandboxError::Unsupported {
                setting: "--runtime",
                backend: "local",
            })
        }
        BackendKind::Local => Arc::new(super::local::LocalBackend),
    })
}

/// The sandbox `config` asks for, ready to run answers: prepared, and the
/// orphans of earlier crashes reaped. What the CLI's commands run in.
pub async fn open(
    config: &SandboxConfig,
    progress: Progress<'_>,
) -> Result<Arc<dyn Sandbox>, SandboxError> {
    let backend = backend(config)?;
    let sandbox = backend.prepare(progress).await?;
    reap_and_tell(backend.as_ref()).await;
    Ok(sandbox)
}

/// Reaps, logging what was removed (or why it could not be); how many.
pub async fn reap_and_tell(backend: &dyn Backend) -> usize {
    match backend.reap_orphans().await {
        Ok(0) => 0,
        Ok(reaped) => {
            tracing::warn!(
                reaped,
                "removed sandbox containers of qtjudge processes that are gone"
            );
            reaped
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for sandbox containers left by processes that are gone");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_of_another_backend_is_refused_by_name() {
        let local = SandboxConfig {
            kind: BackendKind::Local,
            runtime: Some("runsc".into()),
            warm: 2,
        };
        let refused = backend(&local).err().expect("--runtime is Docker's");
        assert!(matches!(refused, SandboxError::Unsupported { .. }));
        assert_eq!(
            refused.to_string(),
            "--runtime does not apply to the local sandbox"
        );
        // An empty runtime is no runtime (an unset environment variable).
        let empty = SandboxConfig {
            runtime: Some(String::new()),
            ..local
        };
        assert_eq!(backend(&empty).unwrap().name(), "local");
        assert_eq!(backend(&SandboxConfig::default()).unwrap().name(), "docker");
    }

    #[tokio::test]
    async fn the_local_backend_is_always_healthy_and_has_nothing_to_reap() {
        let local = backend(&SandboxConfig {
            kind: BackendKind::Local,
            ..Default::default()
        })
        .unwrap();
        assert!(local.health().await.is_ok());
        assert_eq!(local.reap_orphans().await.unwrap(), 0);
        let sandbox = local.prepare(&|_| {}).await.unwrap();
        assert_eq!(sandbox.name(), "local");
        assert_eq!(sandbox.image_tag(), None);
        sandbox.shutdown().await;
    }
}
