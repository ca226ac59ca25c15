//! A warm pool of sandbox containers: created and started ahead of demand,
//! the harness already past its imports, its QApplication and its fake
//! server, blocked on stdin. A verification then pays neither create, start
//! nor import. Each container still serves exactly one answer.
//!
//! Never handed out: a container older than `max_age` (stale) or started
//! with other limits. The pool refills one container at a time, so that on
//! two cores refilling does not starve the running verifications, and it
//! empties itself after `idle_after` without demand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::docker::{DockerSandbox, Started};
use crate::task::Limits;

#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Containers kept ready.
    pub size: usize,
    /// A ready container older than this is removed, not handed out.
    pub max_age: Duration,
    /// With no demand for this long, the pool shrinks to zero.
    pub idle_after: Duration,
}

impl PoolConfig {
    pub fn with_size(size: usize) -> PoolConfig {
        PoolConfig {
            size,
            max_age: Duration::from_secs(45),
            idle_after: Duration::from_secs(30),
        }
    }
}

pub struct WarmPool {
    config: PoolConfig,
    /// Each with the `generation` it was started in.
    ready: Mutex<Vec<(u64, Started)>>,
    /// Bumped by `flush`: a container started before is never handed out,
    /// even one whose refill was still under way.
    generation: AtomicU64,
    last_demand: Mutex<Instant>,
    /// Serialises refills: one container is being created at a time.
    refilling: tokio::sync::Mutex<()>,
    /// Set by `drain`: no container is started or kept after it.
    closed: AtomicBool,
}

impl WarmPool {
    pub fn new(config: PoolConfig) -> Arc<WarmPool> {
        let pool = Arc::new(WarmPool {
            config,
            ready: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            last_demand: Mutex::new(Instant::now()),
            refilling: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(janitor(Arc::downgrade(&pool)));
        pool
    }

    /// A ready container with these limits, if one is warm. Refills behind.
    pub async fn take(
        self: &Arc<Self>,
        limits: &Limits,
        sandbox: &DockerSandbox,
    ) -> Option<Started> {
        *self.last_demand.lock().expect("not poisoned") = Instant::now();
        let (found, unusable) = {
            let mut ready = self.ready.lock().expect("not poisoned");
            let all = std::mem::take(&mut *ready);
            let generation = self.generation.load(Ordering::SeqCst);
            let mut found = None;
            let mut unusable = Vec::new();
            for (born_in, container) in all {
                let usable = born_in == generation
                    && container.limits == *limits
                    && container.born.elapsed() < self.config.max_age;
                if !usable {
                    unusable.push(container);
                } else if found.is_none() {
                    found = Some(container);
                } else {
                    ready.push((born_in, container));
                }
            }
            (found, unusable)
        };
        for container in unusable {
            tracing::debug!("removing a stale or differently-configured warm container");
            container.discard().await;
        }
        let pool = self.clone();
        let sandbox = sandbox.clone();
        let limits = *limits;
        tokio::spawn(async move { pool.refill(&sandbox, &limits).await });
        found
    }

    async fn refill(&self, sandbox: &DockerSandbox, limits: &Limits) {
        let _one_at_a_time = self.refilling.lock().await;
        while !self.closed.load(Ordering::SeqCst)
            && self.ready.lock().expect("not poisoned").len() < self.config.size
            && !self.idle()
        {
            let generation = self.generation.load(Ordering::SeqCst);
            match sandbox.start_warm(limits).await {
                Ok(container) if self.closed.load(Ordering::SeqCst) => {
                    container.discard().await;
                    return;
                }
                Ok(container) => self
                    .ready
                    .lock()
                    .expect("not poisoned")
                    .push((generation, container)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start a warm container; verifications start cold");
                    return;
                }
            }
        }
    }

    fn idle(&self) -> bool {
        self.last_demand.lock().expect("not poisoned").elapsed() > self.config.idle_after
    }

    /// The labels of the containers ready now.
    pub fn ready_labels(&self) -> Vec<String> {
        self.ready
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(_, c)| c.label().to_string())
            .collect()
    }

    /// Removes every ready container and starts no more.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // A refill under way finishes (and sees `closed`) first.
        let _no_refill = self.refilling.lock().await;
        let all = std::mem::take(&mut *self.ready.lock().expect("not poisoned"));
        for (_, container) in all {
            container.discard().await;
        }
    }

    /// Removes every ready container (after an engine outage their attach
    /// streams are dead) and never hands out one started before; the
    /// pool refills on the next demand.
    pub async fn flush(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let all = std::mem::take(&mut *self.ready.lock().expect("not poisoned"));
        for (_, container) in all {
            container.discard().await;
        }
    }
}

/// Shrinks the pool when idle and drops stale containers.
async fn janitor(pool: Weak<WarmPool>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some(pool) = pool.upgrade() else { return };
        let expired = {
            let mut ready = pool.ready.lock().expect("not poisoned");
            let idle = pool.idle();
            let max_age = pool.config.max_age;
            let (keep, expired): (Vec<_>, Vec<_>) = std::mem::take(&mut *ready)
                .into_iter()
                .partition(|(_, c)| !idle && c.born.elapsed() < max_age);
            *ready = keep;
            expired
        };
        for (_, container) in expired {
            container.discard().await;
        }
    }
}
