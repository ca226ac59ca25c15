//! The verifier service (`qtjudge serve`) in its own room, one concern a
//! file: the routes and pages turn requests into jobs and jobs into JSON or
//! HTML; the store keeps them; the workers run them; callbacks announce
//! them. This file is start-up and shutdown: the settings, the wiring of
//! the parts, and the order they stop in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::sandbox::{SandboxConfig, SandboxError};
use crate::service::engine_watch::Engine;
use crate::service::jobs::{Jobs, JobsConfig};
use crate::service::state::{ApiConfig, AppState};
use crate::service::store::{StoreError, StoreSpec};
use crate::service::views::{batch_view, verification_view};

pub mod api_error;
pub mod auth;
pub mod callbacks;
pub mod data_dir_lock;
pub mod engine_watch;
pub mod http_server;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod replica_watch;
pub mod routes;
pub mod state;
pub mod store;
pub mod views;
pub mod workers;

/// `qtjudge serve`'s validated settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The job store; `None`: the embedded one in `data_dir`.
    pub store: Option<StoreSpec>,
    /// How long a shared store's claims last unless renewed.
    pub lease_ttl: Duration,
    pub workers: usize,
    pub token: Option<String>,
    pub max_queue: usize,
    pub max_body: usize,
    pub max_batch: usize,
    /// The most bytes a batch's apps may declare they unpack to.
    pub max_batch_unpacked: u64,
    pub retention: Option<Duration>,
    pub grace: Duration,
    pub tasks_dir: PathBuf,
    /// Signs callbacks (`X-Qtjudge-Signature`) when set.
    pub callback_secret: Option<String>,
    /// Attempts per callback delivery.
    pub callback_attempts: u32,
    /// The sandbox backend and its settings (`--sandbox`, `--runtime`,
    /// the warm pool: one container per worker).
    pub sandbox: SandboxConfig,
    /// Open client connections at most (kept below the file limit).
    pub max_connections: usize,
    /// Time a client has to send a request head (also the keep-alive
    /// idle timeout).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its head came.
    pub body_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without a token: set --token or QTJUDGE_TOKEN, or listen on 127.0.0.1")]
    NoToken(SocketAddr),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot listen on {addr}: {source} (is the port taken? pick another with --listen)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    DataDirLocked(#[from] data_dir_lock::LockError),
    #[error("the HTTP server stopped: {0}")]
    Server(std::io::Error),
    #[error("cannot set up the HTTP client for callbacks: {0}")]
    CallbackClient(reqwest::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl ServeConfig {
    /// Refuses settings that would be unsafe or useless.
    pub fn validate(self) -> Result<ServeConfig, ServeError> {
        if !self.listen.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ServeError::NoToken(self.listen));
        }
        for (name, value) in [
            ("--workers", self.workers),
            ("--max-queue", self.max_queue),
            ("--max-body-kb", self.max_body),
            ("--max-batch", self.max_batch),
            ("--callback-attempts", self.callback_attempts as usize),
            ("--max-connections", self.max_connections),
            (
                "--header-timeout-secs",
                self.header_timeout.as_secs() as usize,
            ),
            ("--body-timeout-secs", self.body_timeout.as_secs() as usize),
        ] {
            if value == 0 {
                return Err(ServeError::Zero(name));
            }
        }
        Ok(self)
    }
}

/// Runs the service until SIGTERM or Ctrl-C: recovers interrupted jobs,
/// prepares the sandbox in the background, serves HTTP, then shuts down
/// gracefully (running verifications get `grace` to finish; the rest stay
/// queued on disk).
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let config = config.validate()?;
    // Before anything is opened: a setting the backend lacks is refused.
    let backend = crate::sandbox::backend(&config.sandbox)?;
    let spec = config
        .store
        .clone()
        .unwrap_or_else(|| StoreSpec::Sqlite(config.data_dir.clone()));
    // Before an embedded store: its recovery would requeue another
    // service's jobs. A shared store's recovery ends only this process's
    // and expired claims, and each replica keeps its own data folder.
    let _lock = match &spec {
        StoreSpec::Sqlite(dir) => Some(data_dir_lock::DataDirLock::acquire(dir)?),
        StoreSpec::Postgres(_) => None,
    };
    let store = store::open_spec(&spec, config.lease_ttl).await?;
    let recovered = store.recover().await?;
    if recovered.requeued + recovered.given_up > 0 {
        tracing::warn!(
            requeued = recovered.requeued,
            given_up = recovered.given_up,
            "jobs interrupted by an earlier stop were found"
        );
    }
    let engine = Arc::new(Engine::pending(Some(engine_watch::health_probe(
        backend.clone(),
    ))));
    let watcher_stop = tokio_util::sync::CancellationToken::new();
    replica_watch::start(
        store.clone(),
        backend.clone(),
        config.lease_ttl / 3,
        watcher_stop.clone(),
    );
    tokio::spawn(engine_watch::watch(
        engine.clone(),
        watcher_stop.clone(),
        backend,
    ));
    let jobs = Jobs::new(
        store,
        JobsConfig {
            workers: config.workers,
            max_queue: config.max_queue,
            tasks_dir: config.tasks_dir.clone(),
            cache_dir: Some(config.data_dir.join("cache")),
            retention: config.retention,
        },
        engine,
    );
    let pool = jobs.start();
    let callbacks = callbacks::Callbacks::start(
        jobs.clone(),
        callbacks::CallbackConfig {
            secret: config.callback_secret.clone(),
            max_attempts: config.callback_attempts,
        },
        callbacks::Views {
            verification: verification_view,
            batch: batch_view,
        },
    )
    .map_err(ServeError::CallbackClient)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(ServeError::Server)?;
    tracing::info!(%address, data = %config.data_dir.display(), store = ?spec, workers = config.workers, token = config.token.is_some(), "qtjudge serve is listening");
    // One line on stdout, so that scripts (and tests with port 0) learn the address.
    println!("listening on http://{address}");
    let connections = Arc::new(http_server::ConnectionStats::default());
    let state = AppState {
        jobs: jobs.clone(),
        config: Arc::new(ApiConfig {
            token: config.token.clone(),
            max_body: config.max_body,
            max_batch: config.max_batch,
            max_batch_unpacked: config.max_batch_unpacked,
            tasks_dir: config.tasks_dir.clone(),
        }),
        connections: connections.clone(),
    };
    let stopping = jobs.stopping().clone();
    let limits = http_server::ConnectionLimits {
        max_connections: http_server::connection_cap(
            config.max_connections,
            http_server::raise_file_limit(),
        ),
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        drain: config.grace,
    };
    if limits.max_connections < config.max_connections {
        tracing::warn!(
            asked = config.max_connections,
            cap = limits.max_connections,
            "--max-connections lowered to stay below the open-file limit (raise it with ulimit -n)"
        );
    }
    http_server::serve(
        listener,
        routes::router(state),
        limits,
        connections,
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new work; running verifications may finish");
            // Ends long polls and stops the workers claiming more.
            stopping.cancel();
        },
    )
    .await;
    pool.shutdown(config.grace).await;
    // After the pool: callbacks of verifications finishing in the grace
    // period still go out while it lasts.
    callbacks.shutdown().await;
    watcher_stop.cancel();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_token() {
        let config = ServeConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            data_dir: PathBuf::from("d"),
            store: None,
            lease_ttl: Duration::from_secs(30),
            workers: 1,
            token: None,
            max_queue: 1,
            max_body: 1,
            max_batch: 1,
            max_batch_unpacked: 1,
            retention: None,
            grace: Duration::from_secs(1),
            tasks_dir: PathBuf::from("t"),
            callback_secret: None,
            callback_attempts: 8,
            sandbox: SandboxConfig::default(),
            max_connections: 16,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
        };
        assert!(matches!(
            config.clone().validate(),
            Err(ServeError::NoToken(_))
        ));
        assert!(ServeConfig {
            token: Some("t".into()),
            ..config.clone()
        }
        .validate()
        .is_ok());
        assert!(ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        }
        .validate()
        .is_ok());
    }
}
