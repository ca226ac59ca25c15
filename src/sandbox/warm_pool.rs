//! A warm pool of sandbox containers: created and started ahead of demand,
//! the harness already past its imports, its QApplication and its fake
//! server, blocked on stdin. A verification then pays neither create, start
//! nor import. Each container still serves exactly one answer.
//!
//! Never handed out: a container whose supervisor has not yet printed its
//! readiness line (its harness still importing: the job would wait for
//! it), one older than `max_age` (stale) or started with other limits. A
//! verification that finds none ready but one warming waits for that one,
//! which is always nearer than a cold start, and has the next one started
//! meanwhile. The pool creates one container at a time, so that on two
//! cores refilling does not starve the running verifications, and it
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

/// How long a verification waits for a warming container before it starts
/// one of its own: a warming container is normally ready within a second,
/// so one this late is stuck (an engine under strain).
const WARMING_WAIT: Duration = Duration::from_secs(10);

pub struct WarmPool {
    config: PoolConfig,
    state: Mutex<State>,
    /// Bumped when a container joins `ready` or a refill ends: wakes the
    /// verifications waiting for a warming container.
    changed: tokio::sync::watch::Sender<u64>,
    /// Bumped by `flush`: a container started before is never handed out,
    /// even one whose refill was still under way.
    generation: AtomicU64,
    last_demand: Mutex<Instant>,
    /// Serialises the engine calls of refills: one container is being
    /// created and started at a time (warm-ups may overlap).
    refilling: tokio::sync::Mutex<()>,
    /// Set by `drain`: no container is started or kept after it.
    closed: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Containers whose harness is ready, each with the `generation` it
    /// was started in.
    ready: Vec<(u64, Started)>,
    /// Containers started and not yet ready.
    warming: usize,
    /// Verifications waiting for a warming container, one container each.
    waiting: usize,
}

impl WarmPool {
    pub fn new(config: PoolConfig) -> Arc<WarmPool> {
        let pool = Arc::new(WarmPool {
            config,
            state: Mutex::new(State::default()),
            changed: tokio::sync::watch::Sender::new(0),
            generation: AtomicU64::new(0),
            last_demand: Mutex::new(Instant::now()),
            refilling: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(janitor(Arc::downgrade(&pool)));
        pool
    }

    /// A ready container with these limits: one that is warm, else the one
    /// warming now once it is ready (unless another verification waits for
    /// it already); `None` means start cold. Refills behind.
    pub async fn take(
        self: &Arc<Self>,
        limits: &Limits,
        sandbox: &DockerSandbox,
    ) -> Option<Started> {
        *self.last_demand.lock().expect("not poisoned") = Instant::now();
        // Subscribed before looking, so that a container landing in between
        // still wakes the wait below.
        let mut changes = self.changed.subscribe();
        let mut found = self.pick(limits).await;
        if found.is_none() && self.claim_warming() {
            // The next container starts beside the one waited for.
            self.spawn_refill(sandbox, limits);
            let give_up = tokio::time::Instant::now() + WARMING_WAIT;
            found = loop {
                if let Some(container) = self.pick(limits).await {
                    break Some(container);
                }
                if self.state.lock().expect("not poisoned").warming == 0 {
                    break None; // the refill ended without one
                }
                match tokio::time::timeout_at(give_up, changes.changed()).await {
                    Ok(Ok(())) => {}
                    _ => break None,
                }
            };
            self.state.lock().expect("not poisoned").waiting -= 1;
            if found.is_none() {
                tracing::debug!("no warm container became ready in time; starting cold");
            }
        }
        self.spawn_refill(sandbox, limits);
        found
    }

    fn spawn_refill(self: &Arc<Self>, sandbox: &DockerSandbox, limits: &Limits) {
        let pool = self.clone();
        let sandbox = sandbox.clone();
        let limits = *limits;
        tokio::spawn(async move { pool.refill(&sandbox, &limits).await });
    }

    /// Whether a warming container is left for this verification to wait
    /// for (then counted as waited for).
    fn claim_warming(&self) -> bool {
        let mut state = self.state.lock().expect("not poisoned");
        if state.warming > state.waiting {
            state.waiting += 1;
            true
        } else {
            false
        }
    }

    /// Takes a usable ready container; removes the unusable ones it meets.
    async fn pick(&self, limits: &Limits) -> Option<Started> {
        let (found, unusable) = {
            let mut state = self.state.lock().expect("not poisoned");
            let all = std::mem::take(&mut state.ready);
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
                    state.ready.push((born_in, container));
                }
            }
            (found, unusable)
        };
        for container in unusable {
            tracing::debug!("removing a stale or differently-configured warm container");
            container.discard().await;
        }
        found
    }

    /// Starts containers until `size` are ready or warming, plus one for
    /// each verification waiting: a verification that waits for the warming
    /// container (back to back, each does) has the next one started beside
    /// it, so that creating one overlaps another's warm-up. The engine calls
    /// (create, attach, start) go one at a time.
    async fn refill(&self, sandbox: &DockerSandbox, limits: &Limits) {
        loop {
            let (generation, started) = {
                let _one_start_at_a_time = self.refilling.lock().await;
                {
                    let mut state = self.state.lock().expect("not poisoned");
                    let wanted = self.config.size + state.waiting;
                    if self.closed.load(Ordering::SeqCst)
                        || self.idle()
                        || state.ready.len() + state.warming >= wanted
                    {
                        return;
                    }
                    state.warming += 1;
                }
                let generation = self.generation.load(Ordering::SeqCst);
                (generation, sandbox.start_warm(limits).await)
            };
            // The next start may begin while this one warms up.
            let warmed = match started {
                Ok(container) => DockerSandbox::warm_up(container).await,
                Err(e) => Err(e),
            };
            let unwanted = {
                let mut state = self.state.lock().expect("not poisoned");
                state.warming -= 1;
                match warmed {
                    Ok(container) if !self.closed.load(Ordering::SeqCst) => {
                        state.ready.push((generation, container));
                        None
                    }
                    Ok(container) => Some(Ok(container)),
                    Err(e) => Some(Err(e)),
                }
            };
            self.changed.send_modify(|n| *n += 1);
            match unwanted {
                None => {}
                Some(Ok(container)) => {
                    container.discard().await;
                    return;
                }
                Some(Err(e)) => {
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
        self.state
            .lock()
            .expect("not poisoned")
            .ready
            .iter()
            .map(|(_, c)| c.label().to_string())
            .collect()
    }

    /// Removes every ready container and starts no more.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // A start under way finishes first, then every warm-up (each sees
        // `closed` and removes its container).
        let _no_refill = self.refilling.lock().await;
        let mut changes = self.changed.subscribe();
        let give_up = tokio::time::Instant::now() + WARMING_WAIT;
        while self.state.lock().expect("not poisoned").warming > 0 {
            if !matches!(
                tokio::time::timeout_at(give_up, changes.changed()).await,
                Ok(Ok(()))
            ) {
                break;
            }
        }
        let all = std::mem::take(&mut self.state.lock().expect("not poisoned").ready);
        for (_, container) in all {
            container.discard().await;
        }
    }

    /// Removes every ready container (after an engine outage their attach
    /// streams are dead) and never hands out one started before; the
    /// pool refills on the next demand.
    pub async fn flush(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let all = std::mem::take(&mut self.state.lock().expect("not poisoned").ready);
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
            let mut state = pool.state.lock().expect("not poisoned");
            let idle = pool.idle();
            let max_age = pool.config.max_age;
            let (keep, expired): (Vec<_>, Vec<_>) = std::mem::take(&mut state.ready)
                .into_iter()
                .partition(|(_, c)| !idle && c.born.elapsed() < max_age);
            state.ready = keep;
            expired
        };
        for (_, container) in expired {
            container.discard().await;
        }
    }
}
