//! A warm pool of sandbox containers: created and started ahead of demand,
//! the harness already past its imports, its QApplication and its fake
//! server, blocked on stdin. A verification then pays neither create, start
//! nor import. Each container still serves exactly one answer. The pool
//! works with any backend that can start containers ahead (`StartsAhead`).
//!
//! Never handed out: a container whose supervisor has not yet printed its
//! readiness line (its harness still importing: the job would wait for
//! it), one older than `max_age` (stale) or started with other limits. A
//! verification that finds none ready but one warming waits for that one,
//! which is always nearer than a cold start, and has the next one started
//! meanwhile. The pool creates one container at a time, so that on two
//! cores refilling does not starve the running verifications, and it
//! empties itself after `idle_after` without demand.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::SandboxError;
use crate::task::Limits;

/// What the pool needs of a backend: a container started ahead, then
/// waited for until its harness is warm. A clone is taken into each refill.
pub trait StartsAhead: Clone + Send + Sync + 'static {
    type Started: Warm;
    /// Starts a container for the pool (its label names no verification).
    fn start_ahead(
        &self,
        limits: &Limits,
    ) -> impl Future<Output = Result<Self::Started, SandboxError>> + Send;
    /// Waits until the container said its harness is ready; an error (the
    /// container then removed) if it never does.
    fn warm_up(
        &self,
        started: Self::Started,
    ) -> impl Future<Output = Result<Self::Started, SandboxError>> + Send;
}

/// A container started ahead, as the pool sees it.
pub trait Warm: Send + 'static {
    /// The limits it was started with: it serves only runs with the same.
    fn limits(&self) -> &Limits;
    /// When it was started: past `max_age` it is stale.
    fn born(&self) -> Instant;
    /// The run label it carries (the pool's, not a verification's).
    fn label(&self) -> &str;
    /// Removes it now (one the pool does not hand out).
    fn discard(self) -> impl Future<Output = ()> + Send;
}

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

pub struct WarmPool<B: StartsAhead> {
    config: PoolConfig,
    state: Mutex<State<B::Started>>,
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

struct State<C> {
    /// Containers whose harness is ready, each with the `generation` it
    /// was started in.
    ready: Vec<(u64, C)>,
    /// Containers started and not yet ready.
    warming: usize,
    /// Verifications waiting for a warming container, one container each.
    waiting: usize,
}

impl<C> Default for State<C> {
    fn default() -> Self {
        State {
            ready: Vec::new(),
            warming: 0,
            waiting: 0,
        }
    }
}

impl<B: StartsAhead> WarmPool<B> {
    pub fn new(config: PoolConfig) -> Arc<WarmPool<B>> {
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
    pub async fn take(self: &Arc<Self>, limits: &Limits, backend: &B) -> Option<B::Started> {
        *self.last_demand.lock().expect("not poisoned") = Instant::now();
        // Subscribed before looking, so that a container landing in between
        // still wakes the wait below.
        let mut changes = self.changed.subscribe();
        let mut found = self.pick(limits).await;
        if found.is_none() && self.claim_warming() {
            // The next container starts beside the one waited for.
            self.spawn_refill(backend, limits);
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
        self.spawn_refill(backend, limits);
        found
    }

    fn spawn_refill(self: &Arc<Self>, backend: &B, limits: &Limits) {
        let pool = self.clone();
        let backend = backend.clone();
        let limits = *limits;
        tokio::spawn(async move { pool.refill(&backend, &limits).await });
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
    async fn pick(&self, limits: &Limits) -> Option<B::Started> {
        let (found, unusable) = {
            let mut state = self.state.lock().expect("not poisoned");
            let all = std::mem::take(&mut state.ready);
            let generation = self.generation.load(Ordering::SeqCst);
            let mut found = None;
            let mut unusable = Vec::new();
            for (born_in, container) in all {
                let usable = born_in == generation
                    && container.limits() == limits
                    && container.born().elapsed() < self.config.max_age;
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
    async fn refill(&self, backend: &B, limits: &Limits) {
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
                (generation, backend.start_ahead(limits).await)
            };
            // The next start may begin while this one warms up.
            let warmed = match started {
                Ok(container) => backend.warm_up(container).await,
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
async fn janitor<B: StartsAhead>(pool: Weak<WarmPool<B>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some(pool) = pool.upgrade() else { return };
        let expired = {
            let mut state = pool.state.lock().expect("not poisoned");
            let idle = pool.idle();
            let max_age = pool.config.max_age;
            let (keep, expired): (Vec<_>, Vec<_>) = std::mem::take(&mut state.ready)
                .into_iter()
                .partition(|(_, c)| !idle && c.born().elapsed() < max_age);
            state.ready = keep;
            expired
        };
        for (_, container) in expired {
            container.discard().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fake backend did: containers started, and those removed.
    #[derive(Default)]
    struct Log {
        started: AtomicU64,
        discarded: Mutex<Vec<String>>,
    }

    impl Log {
        fn discarded(&self) -> Vec<String> {
            self.discarded.lock().unwrap().clone()
        }
    }

    /// Starts containers at once; each warms for `warm_ms`, or never.
    #[derive(Clone, Default)]
    struct Fake {
        log: Arc<Log>,
        warm_ms: u64,
        never_warm: bool,
    }

    struct FakeStarted {
        label: String,
        limits: Limits,
        born: Instant,
        log: Arc<Log>,
    }

    impl Warm for FakeStarted {
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
            self.log.discarded.lock().unwrap().push(self.label);
        }
    }

    impl StartsAhead for Fake {
        type Started = FakeStarted;

        async fn start_ahead(&self, limits: &Limits) -> Result<FakeStarted, SandboxError> {
            let n = self.log.started.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(FakeStarted {
                label: format!("ahead-{n}"),
                limits: *limits,
                born: Instant::now(),
                log: self.log.clone(),
            })
        }

        async fn warm_up(&self, started: FakeStarted) -> Result<FakeStarted, SandboxError> {
            tokio::time::sleep(Duration::from_millis(self.warm_ms)).await;
            if self.never_warm {
                started.discard().await;
                return Err(SandboxError::EngineFailed {
                    doing: "warming a container for the pool",
                    message: "its harness was not ready".into(),
                });
            }
            Ok(started)
        }
    }

    fn config(size: usize, max_age_ms: u64) -> PoolConfig {
        PoolConfig {
            size,
            max_age: Duration::from_millis(max_age_ms),
            idle_after: Duration::from_secs(60),
        }
    }

    async fn wait_for_ready(pool: &WarmPool<Fake>, count: usize) -> Vec<String> {
        for _ in 0..500 {
            let labels = pool.ready_labels();
            if labels.len() >= count {
                return labels;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the pool never held {count} ready");
    }

    #[tokio::test]
    async fn each_ready_container_is_handed_out_once_and_the_pool_refills_behind() {
        let fake = Fake::default();
        let pool = WarmPool::new(config(1, 60_000));
        let limits = Limits::default();
        assert!(
            pool.take(&limits, &fake).await.is_none(),
            "empty at first: start cold"
        );
        let mut served = Vec::new();
        for _ in 0..3 {
            let ready = wait_for_ready(&pool, 1).await;
            let taken = pool.take(&limits, &fake).await.expect("a ready one");
            assert_eq!(vec![taken.label.clone()], ready);
            assert!(!served.contains(&taken.label), "handed out twice");
            served.push(taken.label);
        }
        assert!(fake.log.discarded().is_empty());
    }

    #[tokio::test]
    async fn a_stale_container_or_one_of_other_limits_is_removed_not_handed_out() {
        let fake = Fake::default();
        let pool = WarmPool::new(config(1, 150));
        let limits = Limits::default();
        pool.take(&limits, &fake).await;
        let stale = wait_for_ready(&pool, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let taken = pool.take(&limits, &fake).await.map(|c| c.label);
        assert_ne!(
            taken.as_ref(),
            Some(&stale[0]),
            "a stale one was handed out"
        );
        assert_eq!(fake.log.discarded(), stale);

        let fresh = wait_for_ready(&pool, 1).await;
        let other = Limits {
            wall_seconds: 5,
            ..limits
        };
        let taken = pool.take(&other, &fake).await.map(|c| c.label);
        assert_ne!(taken.as_ref(), Some(&fresh[0]), "other limits served");
        assert!(fake.log.discarded().contains(&fresh[0]));
    }

    #[tokio::test]
    async fn a_verification_arriving_while_a_container_warms_waits_for_it() {
        let fake = Fake {
            warm_ms: 500,
            ..Fake::default()
        };
        let pool = WarmPool::new(config(1, 60_000));
        let limits = Limits::default();
        assert!(pool.take(&limits, &fake).await.is_none());
        // Once the refill's container is warming, not yet ready.
        for _ in 0..500 {
            if pool.state.lock().unwrap().warming > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(pool.ready_labels().is_empty());
        let taken = pool.take(&limits, &fake).await;
        assert_eq!(taken.map(|c| c.label).as_deref(), Some("ahead-1"));
    }

    #[tokio::test]
    async fn a_container_that_never_warms_is_never_pooled() {
        let fake = Fake {
            never_warm: true,
            ..Fake::default()
        };
        let pool = WarmPool::new(config(1, 60_000));
        let limits = Limits::default();
        assert!(pool.take(&limits, &fake).await.is_none());
        // The next one waits for the warming container, then starts cold.
        assert!(pool.take(&limits, &fake).await.is_none());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.ready_labels().is_empty());
        assert!(fake.log.discarded().contains(&"ahead-1".to_string()));
    }

    #[tokio::test]
    async fn after_a_flush_no_earlier_container_is_handed_out_and_a_drain_starts_no_more() {
        let fake = Fake::default();
        let pool = WarmPool::new(config(1, 60_000));
        let limits = Limits::default();
        pool.take(&limits, &fake).await;
        let before = wait_for_ready(&pool, 1).await;
        pool.flush().await;
        assert_eq!(fake.log.discarded(), before);
        let taken = pool.take(&limits, &fake).await.map(|c| c.label);
        assert_ne!(taken.as_ref(), Some(&before[0]));

        let ready = wait_for_ready(&pool, 1).await;
        pool.drain().await;
        assert!(fake.log.discarded().contains(&ready[0]));
        assert!(pool.ready_labels().is_empty());
        let started = fake.log.started.load(Ordering::SeqCst);
        assert!(pool.take(&limits, &fake).await.is_none());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            fake.log.started.load(Ordering::SeqCst),
            started,
            "a drained pool starts nothing"
        );
    }
}
