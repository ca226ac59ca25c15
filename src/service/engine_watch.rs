//! The engine as the service sees it: the sandbox the workers use once it
//! is ready, whether the engine answers (the backend's health, polled all
//! along, so that the API answers 503 while it is down), and the watcher
//! that prepares the backend (its image built or checked) and reaps the
//! containers of processes that are gone. Which backend is
//! `sandbox::backend`'s choice: nothing here names one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::sandbox::{Backend, BoxFuture, Sandbox};

/// How often the engine is pinged, and retried while it is down.
const ENGINE_POLL: Duration = Duration::from_secs(5);
/// How often containers of qtjudge processes that are gone are removed.
const REAP_EVERY: Duration = Duration::from_secs(15);
/// After start-up (and after a reap that found one), containers of
/// processes that are gone are looked for this often, for this long: the
/// engine may still be creating what a killed process asked for, and an
/// orphan should not outlive the restart by a full `REAP_EVERY`.
const REAP_AFTER_START_EVERY: Duration = Duration::from_secs(1);
const REAP_AFTER_START_FOR: Duration = Duration::from_secs(30);

/// Whether the engine answers and the sandbox (image included) is ready.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EngineHealth {
    pub reachable: bool,
    pub sandbox_ready: bool,
    pub image: Option<String>,
    /// Why the engine is not usable, when it is not.
    pub problem: Option<String>,
}

/// Checks that the engine still answers (a cheap ping).
pub type Probe = Box<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// The sandbox the workers use, and whether its engine is up. The API
/// refuses new work with 503 while the engine is unreachable; workers wait
/// for the sandbox before they claim anything.
pub struct Engine {
    state: RwLock<EngineState>,
    probe: Option<Probe>,
    /// Outages noticed so far: a run that saw one is not the answer's fault.
    outages: AtomicUsize,
}

struct EngineState {
    sandbox: Option<Arc<dyn Sandbox>>,
    reachable: bool,
    image: Option<String>,
    problem: Option<String>,
}

impl Engine {
    /// A sandbox that is ready (tests, `--sandbox local`).
    pub fn ready(sandbox: Arc<dyn Sandbox>, image: Option<String>, probe: Option<Probe>) -> Engine {
        Engine {
            state: RwLock::new(EngineState {
                sandbox: Some(sandbox),
                reachable: true,
                image,
                problem: None,
            }),
            probe,
            outages: AtomicUsize::new(0),
        }
    }

    /// No sandbox yet: `watch` fills it in.
    pub fn pending(probe: Option<Probe>) -> Engine {
        Engine {
            state: RwLock::new(EngineState {
                sandbox: None,
                reachable: false,
                image: None,
                problem: Some("connecting to the sandbox engine".into()),
            }),
            probe,
            outages: AtomicUsize::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, EngineState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, EngineState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The sandbox, while the engine is reachable.
    pub fn sandbox(&self) -> Option<Arc<dyn Sandbox>> {
        let state = self.read();
        state.sandbox.clone().filter(|_| state.reachable)
    }

    pub fn health(&self) -> EngineHealth {
        let state = self.read();
        EngineHealth {
            reachable: state.reachable,
            sandbox_ready: state.reachable && state.sandbox.is_some(),
            image: state.image.clone(),
            problem: state.problem.clone(),
        }
    }

    pub fn set_reachable(&self, reachable: bool, problem: Option<String>) {
        let mut state = self.write();
        if state.reachable != reachable {
            if reachable {
                tracing::info!("the sandbox engine answers");
            } else {
                self.outages.fetch_add(1, Ordering::SeqCst);
                tracing::error!(
                    problem = problem.as_deref().unwrap_or(""),
                    "the sandbox engine is unreachable: new work is refused with 503"
                );
            }
        }
        state.reachable = reachable;
        state.problem = problem;
    }

    fn set_sandbox(&self, sandbox: Arc<dyn Sandbox>) {
        let mut state = self.write();
        state.image = sandbox.image_tag().map(String::from);
        state.sandbox = Some(sandbox);
        state.reachable = true;
        state.problem = None;
    }

    /// Outages noticed since start-up.
    pub(super) fn outages(&self) -> usize {
        self.outages.load(Ordering::SeqCst)
    }

    /// Asks the engine now (when a probe is set), updating the state.
    pub(super) async fn check_now(&self) -> bool {
        match &self.probe {
            Some(probe) => {
                let up = probe().await;
                let (was_up, sandbox) = {
                    let state = self.read();
                    (state.reachable, state.sandbox.clone())
                };
                if let (true, false, Some(sandbox)) = (up, was_up, sandbox) {
                    // Back from an outage: what it broke goes before any
                    // worker may claim again (they wait while unreachable).
                    sandbox.after_outage().await;
                }
                self.set_reachable(
                    up,
                    (!up).then(|| "the sandbox engine does not answer".to_string()),
                );
                up
            }
            None => self.read().reachable,
        }
    }
}

/// The backend's health as the engine's ping: used by the watcher and
/// after a run that could not be judged.
pub fn health_probe(backend: Arc<dyn Backend>) -> Probe {
    Box::new(move || {
        let backend = backend.clone();
        Box::pin(async move { backend.health().await.is_ok() })
    })
}

/// Prepares the backend once its engine answers (building the image if
/// needed), reaps the containers a crashed service left, hands the sandbox
/// to the workers, then keeps pinging the engine so that the API can
/// answer 503 while it is down, and reaping.
pub async fn watch(engine: Arc<Engine>, stop: CancellationToken, backend: Arc<dyn Backend>) {
    loop {
        // Reachable first: work is accepted while the image is checked or built.
        match backend.health().await {
            Ok(()) => engine.set_reachable(
                true,
                Some("preparing the sandbox (its image built if missing)".into()),
            ),
            Err(e) => {
                engine.set_reachable(false, Some(e.to_string()));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ENGINE_POLL) => {}
                }
                continue;
            }
        }
        let prepare = backend.prepare(&|line| tracing::info!("sandbox: {line}"));
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = prepare => result,
        };
        match result {
            Ok(sandbox) => {
                crate::sandbox::backend::reap_and_tell(backend.as_ref()).await;
                engine.set_sandbox(sandbox);
                break;
            }
            Err(e) => {
                engine.set_reachable(false, Some(e.to_string()));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ENGINE_POLL) => {}
                }
            }
        }
    }
    let started = tokio::time::Instant::now();
    let mut next_ping = started + ENGINE_POLL;
    let mut next_reap = started + REAP_AFTER_START_EVERY;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next_ping.min(next_reap)) => {}
        }
        let now = tokio::time::Instant::now();
        if now >= next_ping {
            engine.check_now().await;
            next_ping = now + ENGINE_POLL;
        }
        if now >= next_reap {
            // Again and again, not only at start-up: a container whose
            // creation a killed process had asked for can appear after
            // the start-up reap, and soon after it most likely.
            let reaped = if engine.health().reachable {
                crate::sandbox::backend::reap_and_tell(backend.as_ref()).await
            } else {
                0
            };
            let soon = now.duration_since(started) < REAP_AFTER_START_FOR || reaped > 0;
            next_reap = now
                + if soon {
                    REAP_AFTER_START_EVERY
                } else {
                    REAP_EVERY
                };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{SandboxError, SandboxOutcome, SandboxRequest};

    /// Counts the clean-ups after outages.
    #[derive(Default)]
    struct CleanedSandbox(AtomicUsize);

    impl Sandbox for CleanedSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async { Err(SandboxError::EngineUnreachable("fake".into())) })
        }
        fn after_outage(&self) -> BoxFuture<'_, ()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    /// A backend whose engine answers or not as told; counts its
    /// preparations and reaps.
    #[derive(Default)]
    struct FakeBackend {
        up: std::sync::atomic::AtomicBool,
        prepared: AtomicUsize,
        reaped: AtomicUsize,
    }

    /// What a fake backend prepares: runs nothing, has an image.
    struct Imaged;

    impl Sandbox for Imaged {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async { Err(SandboxError::RunFailed("fake".into())) })
        }
        fn image_tag(&self) -> Option<&str> {
            Some("fake:image")
        }
    }

    impl Backend for FakeBackend {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn health(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
            let up = self.up.load(Ordering::SeqCst);
            Box::pin(async move {
                match up {
                    true => Ok(()),
                    false => Err(SandboxError::EngineUnreachable("fake socket gone".into())),
                }
            })
        }
        fn prepare<'a>(
            &'a self,
            progress: crate::sandbox::backend::Progress<'a>,
        ) -> BoxFuture<'a, Result<Arc<dyn Sandbox>, SandboxError>> {
            self.prepared.fetch_add(1, Ordering::SeqCst);
            progress("fake image checked");
            Box::pin(async { Ok(Arc::new(Imaged) as Arc<dyn Sandbox>) })
        }
        fn reap_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
            self.reaped.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(0) })
        }
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    #[tokio::test]
    async fn the_watcher_says_why_the_engine_is_down_and_prepares_nothing_meanwhile() {
        let backend = Arc::new(FakeBackend::default());
        let engine = Arc::new(Engine::pending(Some(health_probe(backend.clone()))));
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(watch(engine.clone(), stop.clone(), backend.clone()));
        until("the backend's problem is the engine's", || {
            engine.health().problem.as_deref()
                == Some("cannot reach the sandbox engine: fake socket gone")
        })
        .await;
        assert!(!engine.health().reachable);
        assert!(engine.sandbox().is_none());
        assert_eq!(backend.prepared.load(Ordering::SeqCst), 0);
        stop.cancel();
        watcher.await.unwrap();
    }

    #[tokio::test]
    async fn the_watcher_prepares_the_backend_reaps_then_hands_the_sandbox_over() {
        let backend = Arc::new(FakeBackend::default());
        backend.up.store(true, Ordering::SeqCst);
        let engine = Arc::new(Engine::pending(Some(health_probe(backend.clone()))));
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(watch(engine.clone(), stop.clone(), backend.clone()));
        until("the sandbox is handed over", || engine.sandbox().is_some()).await;
        let health = engine.health();
        assert_eq!(
            (
                health.reachable,
                health.sandbox_ready,
                health.image.as_deref()
            ),
            (true, true, Some("fake:image"))
        );
        assert_eq!(health.problem, None);
        assert_eq!(backend.prepared.load(Ordering::SeqCst), 1);
        assert!(
            backend.reaped.load(Ordering::SeqCst) >= 1,
            "reaped before the workers start"
        );
        // The engine's ping is the backend's health.
        backend.up.store(false, Ordering::SeqCst);
        assert!(!engine.check_now().await);
        assert!(engine.sandbox().is_none(), "no work while it is down");
        stop.cancel();
        watcher.await.unwrap();
    }

    #[tokio::test]
    async fn an_engine_back_from_an_outage_has_its_sandbox_cleaned_once_before_work_resumes() {
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let probe_up = up.clone();
        let probe: Probe = Box::new(move || {
            let now = probe_up.load(Ordering::SeqCst);
            Box::pin(async move { now })
        });
        let sandbox = Arc::new(CleanedSandbox::default());
        let engine = Engine::ready(sandbox.clone(), None, Some(probe));
        let cleaned = || sandbox.0.load(Ordering::SeqCst);
        assert!(engine.check_now().await);
        assert_eq!((cleaned(), engine.outages()), (0, 0), "no outage yet");
        up.store(false, Ordering::SeqCst);
        assert!(!engine.check_now().await);
        assert!(!engine.check_now().await);
        assert!(engine.sandbox().is_none(), "no work while it is down");
        assert_eq!((cleaned(), engine.outages()), (0, 1));
        up.store(true, Ordering::SeqCst);
        assert!(engine.check_now().await);
        assert_eq!(cleaned(), 1, "cleaned as it comes back");
        assert!(engine.sandbox().is_some());
        assert!(engine.check_now().await);
        assert_eq!((cleaned(), engine.outages()), (1, 1), "once per outage");
    }
}
