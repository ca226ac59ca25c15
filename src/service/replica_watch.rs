//! Replicas sharing a store and an engine: this one says, now and then,
//! that it is alive, and removes the sandbox containers of replicas the
//! store says are dead. On another host (or under another replica name)
//! the store is the only witness of their death: the engine watch reaps
//! only what processes of this host left.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox::Backend;
use crate::service::store::JobStore;

/// Starts the watch when other replicas may share the store and the
/// backend labels what it starts; otherwise there is nothing to do.
pub fn start(
    store: Arc<dyn JobStore>,
    backend: Arc<dyn Backend>,
    every: Duration,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let owner = backend.owner().filter(|_| store.is_shared())?;
    Some(tokio::spawn(watch(store, backend, owner, every, stop)))
}

async fn watch(
    store: Arc<dyn JobStore>,
    backend: Arc<dyn Backend>,
    owner: String,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = store.replica_alive(&owner).await {
            tracing::warn!(error = %e, "cannot tell the store this replica is alive");
        }
        reap_dead(store.as_ref(), backend.as_ref(), &owner).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One round: the dead replicas claimed, their containers removed, and
/// those reaped forgotten. A round that fails leaves its claim to expire,
/// for whichever replica comes next.
async fn reap_dead(store: &dyn JobStore, backend: &dyn Backend, owner: &str) -> usize {
    let dead: Vec<String> = match store.claim_dead_replicas().await {
        // Never itself: a replica cut from the store for a while is silent
        // there, yet its containers run here.
        Ok(dead) => dead.into_iter().filter(|d| d != owner).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot look for dead replicas");
            return 0;
        }
    };
    if dead.is_empty() {
        return 0;
    }
    match backend.reap_owners(&dead).await {
        Ok(removed) => {
            tracing::warn!(replicas = ?dead, removed, "removed the sandbox containers of replicas that stopped answering the store");
            if let Err(e) = store.dead_replicas_reaped(&dead).await {
                tracing::warn!(error = %e, "cannot record that dead replicas were reaped; another replica will look again");
            }
            removed
        }
        Err(e) => {
            tracing::warn!(error = %e, replicas = ?dead, "cannot remove dead replicas' containers; another round will try again");
            0
        }
    }
}
