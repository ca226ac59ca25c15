//! No container outlives its use: each is removed when its guard drops
//! (after the result, on error, timeout, cancellation or panic), removals
//! and creations are counted in flight so that shutdown waits for them,
//! shutdown sweeps whatever of this sandbox is left, and what an engine
//! outage kept from being removed is removed once it answers again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;

use super::{engine_error, DockerSandbox, LABEL_SANDBOX};
use crate::sandbox::SandboxError;

/// How long shutdown keeps sweeping for containers whose creation was
/// still under way in the engine.
const SWEEP_LIMIT: Duration = Duration::from_secs(10);

/// A creation the caller gave up on (a verification aborted at shutdown)
/// may still complete in the engine this long after.
const ABANDONED_CREATION_GRACE: Duration = Duration::from_secs(2);

/// Engine calls under way that can leave a container behind, so that
/// shutdown and tests can wait for them: removals (of finished runs, done
/// after the result is returned since one costs 25–90 ms that no
/// verification should wait for, or of runs dropped mid-way) and creations.
#[derive(Default)]
pub(super) struct InFlight {
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

    pub(super) fn creation(&self) -> Creation<'_> {
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
pub(super) struct Creation<'a> {
    in_flight: &'a InFlight,
    pub(super) answered: bool,
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

impl DockerSandbox {
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
}

/// Containers (ids, or names) of this process whose removal failed, or
/// whose creation went unanswered, while the engine was away:
/// `after_outage` removes them once it answers again, so that an outage
/// leaves no container behind a live service (the start-up reaper only
/// removes those of dead processes).
static LEFTOVERS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(in crate::sandbox) async fn remove(docker: &Docker, id: &str) -> bool {
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

pub(super) fn remember_leftover(id_or_name: &str) {
    let mut leftovers = LEFTOVERS.lock().unwrap_or_else(|p| p.into_inner());
    if !leftovers.iter().any(|left| left == id_or_name) {
        leftovers.push(id_or_name.to_string());
    }
}

/// Removes the container when dropped: on success, error, timeout,
/// cancellation or panic alike. The removal is counted in flight, so that
/// shutdown waits for it.
pub(super) struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
    in_flight: Arc<InFlight>,
}

impl RemoveOnDrop {
    pub(super) fn new(docker: Docker, id: String, in_flight: &Arc<InFlight>) -> RemoveOnDrop {
        RemoveOnDrop {
            docker,
            id: Some(id),
            in_flight: in_flight.clone(),
        }
    }

    pub(super) async fn remove_now(mut self) {
        if let Some(id) = self.id.take() {
            remove(&self.docker, &id).await;
        }
    }

    /// Removes it without waiting (the result is already in hand).
    pub(super) fn remove_in_background(self) {
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
