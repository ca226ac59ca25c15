//! The worker pool: the service's only caller of `verify`, at most
//! `workers` verifications at once. A worker claims the oldest queued job,
//! unpacks an uploaded app (a request never does), runs the verification
//! in the sandbox, and stores its result; a run the engine failed goes
//! back to the queue. Also the retention pruner and the idle heap trim.
//! The pool's methods are on [`Jobs`], the handle the API shares.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::grading::verdict::Label;
use crate::grading::FailureCode;
use crate::sandbox::Sandbox;
use crate::service::jobs::{Finished, Jobs};
use crate::service::store::{now_ms, Claimed, Status, StoreError, MAX_ATTEMPTS};
use crate::verify::{self, Verification};

/// Workers look at the store this often even when nobody wakes them, so a
/// missed wake-up costs a delay, never a stuck job.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often idle workers look for the sandbox while it is not ready.
const ENGINE_WAIT_POLL: Duration = Duration::from_millis(250);
/// The longest pause between two tries of a write the store could not take.
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

impl Jobs {
    /// Starts the workers and the retention pruner.
    pub fn start(self: &Arc<Jobs>) -> Pool {
        let mut handles = Vec::new();
        for n in 0..self.config.workers {
            let jobs = self.clone();
            handles.push(tokio::spawn(async move { jobs.work(n).await }));
        }
        if let Some(retention) = self.config.retention {
            let jobs = self.clone();
            tokio::spawn(async move { jobs.prune_regularly(retention).await });
        }
        if let Some(events) = self.store.events() {
            let jobs = self.clone();
            tokio::spawn(async move { jobs.relay(events).await });
        }
        let jobs = self.clone();
        tokio::spawn(async move { jobs.release_memory_when_idle().await });
        Pool {
            jobs: self.clone(),
            handles,
        }
    }

    async fn work(&self, worker: usize) {
        loop {
            // Registered before looking, so a submit in between wakes us.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.stopping.is_cancelled() {
                return;
            }
            let sandbox = self.engine.sandbox();
            // Without a sandbox nobody wakes us when it comes: look often.
            let idle = if sandbox.is_some() {
                IDLE_POLL
            } else {
                ENGINE_WAIT_POLL
            };
            let claimed = match sandbox {
                None => None,
                Some(sandbox) => match self.store.claim_next().await {
                    Ok(Some(job)) => Some((job, sandbox)),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(worker, error = %e, "cannot claim a job");
                        None
                    }
                },
            };
            match claimed {
                Some((job, sandbox)) => self.run_guarded(job, sandbox).await,
                None => {
                    tokio::select! {
                        _ = self.stopping.cancelled() => return,
                        _ = woken => {}
                        _ = tokio::time::sleep(idle) => {}
                    }
                }
            }
        }
    }

    /// `run`, with a panic outside the verification itself (storing,
    /// metrics) caught too: the job is recorded as `error` if the store
    /// still can, and the worker lives on.
    async fn run_guarded(&self, job: Claimed, sandbox: Arc<dyn Sandbox>) {
        let (id, batch_id, lease) = (job.id.clone(), job.batch_id.clone(), job.lease.clone());
        let run = std::panic::AssertUnwindSafe(self.run(job, sandbox));
        if let Err(payload) = run.catch_unwind().await {
            let why = format!(
                "qtjudge bug: panicked while handling the job: {}; please report it",
                verify::panic_message(payload.as_ref())
            );
            tracing::error!(job = %id, error = %why, "a job's handling panicked; the worker goes on");
            match self
                .store
                .finish(&lease, Status::Error, None, Some(why))
                .await
            {
                Ok(()) => {
                    let _ = self.finished.send(Finished { id, batch_id });
                }
                // Left `running`: the next start-up runs it again.
                Err(e) => tracing::error!(job = %id, error = %e, "cannot store a result"),
            }
        }
    }

    async fn run(&self, mut job: Claimed, sandbox: Arc<dyn Sandbox>) {
        self.running.fetch_add(1, Ordering::Relaxed);
        let _running = DecrementOnDrop(&self.running);
        if let Err(v) = self.unpack_upload(&mut job).await {
            tracing::info!(job = %job.id, model = %job.model, failure = v.failure.map(|f| f.as_str()).unwrap_or(""), "the uploaded app cannot be unpacked");
            self.metrics.record(&v);
            self.record(&job, Status::Done, Some(&v), None).await;
            return;
        }
        tracing::info!(job = %job.id, model = %job.model, task = %job.task, "verification started");
        let prepared = match self.prepared_task(&job.task).await {
            Ok(p) => p,
            Err(e) => {
                // The task folder changed since the job was accepted.
                self.record(&job, Status::Error, None, Some(e.to_string()))
                    .await;
                return;
            }
        };
        let outages_before = self.engine.outages();
        let input = match &job.bundle {
            Some(bundle) => verify::Input::Bundle(bundle),
            None => verify::Input::Answer(&job.output),
        };
        let mut v = match verify::verify_guarded(input, &job.model, &prepared, sandbox.as_ref())
            .await
        {
            Ok(v) => v,
            Err(verify::Panicked(mut v)) => {
                // A bug, not the engine: running it again would not help.
                tracing::error!(job = %job.id, "the job's verification panicked; recorded as error, the worker goes on");
                v.task_choice = job.task_choice.clone();
                self.metrics.record(&v);
                let why = v.error.clone();
                self.record(&job, Status::Error, Some(&v), why).await;
                return;
            }
        };
        v.task_choice = job.task_choice.clone();
        if v.label == Label::Error {
            let up = self.engine.check_now().await;
            let outage = !up || self.engine.outages() != outages_before;
            if v.engine_fault || outage {
                if up && !outage {
                    // A blip too short for any ping to see: what it broke
                    // (warm containers' streams, removals) goes now.
                    sandbox.after_outage().await;
                }
                self.retry_later(&job, v.error.as_deref().unwrap_or("the engine went away"))
                    .await;
                return;
            }
        }
        let status = if v.label == Label::Error {
            Status::Error
        } else {
            Status::Done
        };
        self.metrics.record(&v);
        tracing::info!(job = %job.id, model = %job.model, label = v.label.as_str(), failure = v.failure.map(|f| f.as_str()).unwrap_or(""), ms = v.duration_ms, "verification finished");
        self.record(&job, status, Some(&v), None).await;
    }

    /// Unpacks an uploaded app (off the request path, with every limit of
    /// `bundle`) and, when no task was given, chooses the one its code
    /// resembles. An app that cannot be unpacked is the answer's fault:
    /// tier 3 with the archive's failure code.
    async fn unpack_upload(&self, job: &mut Claimed) -> std::result::Result<(), Verification> {
        let Some(upload) = job.upload.take() else {
            return Ok(());
        };
        let tasks_dir = self.config.tasks_dir.clone();
        let choose = job.task.is_empty();
        let unpacked = tokio::task::spawn_blocking(move || {
            let bundle = upload.unpack()?;
            let choice = choose.then(|| {
                let tasks = crate::task::load_with_originals(&tasks_dir);
                crate::task::choose(&tasks, &bundle.python_sources().join("\n"))
            });
            Ok::<_, crate::bundle::BundleError>((bundle, choice))
        })
        .await;
        let failed = |job: &Claimed, code: FailureCode, reason: String| {
            let task = if job.task.is_empty() {
                crate::task::FALLBACK_TASK
            } else {
                &job.task
            };
            let mut v = Verification::unjudged(&job.model, task, "none");
            v.tier = Some(3);
            v.label = Label::Fail;
            v.failure = Some(code);
            v.reason = reason;
            v.task_choice = job.task_choice.clone();
            v
        };
        match unpacked {
            Ok(Ok((bundle, choice))) => {
                if let Some(choice) = choice {
                    if let Err(e) = self.store.set_task(&job.lease, &choice).await {
                        tracing::warn!(job = %job.id, error = %e, "cannot record the task chosen for an upload");
                    }
                    job.task = choice.task.clone();
                    job.task_choice = Some(choice);
                }
                job.bundle = Some(bundle);
                Ok(())
            }
            Ok(Err(e)) => Err(failed(
                job,
                e.code(),
                format!("the uploaded app cannot be run: {e}"),
            )),
            Err(e) => Err(failed(
                job,
                FailureCode::UnreadableInput,
                format!("unpacking the upload failed: {e}"),
            )),
        }
    }

    /// Not judged because of the engine (it may be back already): the job
    /// goes back to the queue, a bounded number of times.
    async fn retry_later(&self, job: &Claimed, why: &str) {
        let requeued = self
            .until_store_answers(job, || {
                self.store.requeue_after_engine_fault(&job.lease, why)
            })
            .await;
        match requeued {
            Ok(true) => {
                tracing::warn!(job = %job.id, error = why, "the engine failed a verification: the job goes back to the queue")
            }
            Ok(false) => {
                tracing::error!(job = %job.id, error = why, attempts = MAX_ATTEMPTS, "the engine failed a verification again: given up");
                let _ = self.finished.send(Finished {
                    id: job.id.clone(),
                    batch_id: job.batch_id.clone(),
                });
            }
            // Left `running`: the next start-up runs it again.
            Err(e) => tracing::error!(job = %job.id, error = %e, "cannot requeue a job"),
        }
    }

    async fn record(
        &self,
        job: &Claimed,
        status: Status,
        v: Option<&Verification>,
        error: Option<String>,
    ) {
        let stored = self
            .until_store_answers(job, || {
                self.store.finish(&job.lease, status, v, error.clone())
            })
            .await;
        match stored {
            Ok(()) => {}
            // A write cut off mid-commit may have landed before the lease
            // was found gone: a finished job is news all the same.
            Err(StoreError::LeaseLost { .. }) if self.finished_in_store(&job.id).await => {
                tracing::warn!(job = %job.id, "the job was finished already (a result written before a cut, or by another replica); this result is not stored");
            }
            Err(e) => {
                // Left `running`: the next start-up (or, on a shared
                // store, another replica once the lease expires) runs it
                // again.
                tracing::error!(job = %job.id, error = %e, "cannot store a result");
                return;
            }
        }
        let _ = self.finished.send(Finished {
            id: job.id.clone(),
            batch_id: job.batch_id.clone(),
        });
    }

    async fn finished_in_store(&self, id: &str) -> bool {
        matches!(
            self.store.job(id).await,
            Ok(Some(record)) if matches!(record.status, Status::Done | Status::Error)
        )
    }

    /// A write of a job's outcome, tried again while the store does not
    /// answer (restarting, the network to it cut): the verification is
    /// done, and a result given up here would be a second run later. The
    /// lease stays this process's meanwhile unless the store stays away
    /// past its lifetime (the write is then refused: `LeaseLost`). Any
    /// other answer ends the tries; so does the shutdown's grace running
    /// out (the pool is abandoned).
    async fn until_store_answers<'a, T, F>(
        &self,
        job: &Claimed,
        mut write: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> futures_util::future::BoxFuture<'a, Result<T, StoreError>>,
    {
        let mut pause = Duration::from_millis(250);
        let mut tries = 0u32;
        loop {
            match write().await {
                Err(StoreError::Unavailable { doing, source }) => {
                    tries += 1;
                    if tries == 1 {
                        tracing::warn!(job = %job.id, doing, error = %source, "the job store does not answer: the job's outcome waits for it");
                    }
                }
                other => {
                    if tries > 0 {
                        tracing::info!(job = %job.id, tries, "the job store answers again: the job's outcome written");
                    }
                    return other;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(STORE_RETRY_MAX);
        }
    }

    async fn prune_regularly(&self, retention: Duration) {
        // Often enough for short retentions, rarely for long ones.
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            let before = now_ms() - retention.as_millis() as i64;
            match self.store.prune(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned finished jobs past the retention"),
                Err(e) => tracing::error!(error = %e, "cannot prune old jobs"),
            }
            tokio::select! {
                _ = self.stopping.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

impl Jobs {
    /// Hands the heap's free pages back to the system while no
    /// verification runs: glibc keeps what a batch freed (its results,
    /// screenshots and requests) as the process's RSS until asked to trim.
    async fn release_memory_when_idle(&self) {
        loop {
            tokio::select! {
                _ = self.stopping.cancelled() => return,
                _ = tokio::time::sleep(MEMORY_TRIM_EVERY) => {}
            }
            if self.running() == 0 {
                release_free_memory();
            }
        }
    }
}

/// How often an idle service trims its heap (a trim of a quiet heap costs
/// well under a millisecond).
const MEMORY_TRIM_EVERY: Duration = Duration::from_secs(5);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    extern "C" {
        /// glibc: returns free memory of every arena to the system.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's
    // own free lists, under its own locks.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The running workers.
pub struct Pool {
    jobs: Arc<Jobs>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Pool {
    /// Stops claiming, lets running verifications finish for up to
    /// `grace`, then abandons the rest: their jobs go back to the queue on
    /// disk (the containers are removed as their runs are dropped).
    pub async fn shutdown(self, grace: Duration) {
        self.jobs.stopping.cancel();
        let aborts: Vec<_> = self.handles.iter().map(|h| h.abort_handle()).collect();
        let all = futures_util::future::join_all(self.handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(grace_seconds = grace.as_secs(), "verifications still running after the grace period: abandoning them; they stay queued");
            for abort in &aborts {
                abort.abort();
            }
            // An aborted run drops its container guard when the runtime
            // next polls it, which counts the removal in flight; the
            // sandbox's shutdown then waits for it.
            let dropped = async {
                while !aborts.iter().all(|a| a.is_finished()) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), dropped).await;
        }
        if let Some(sandbox) = self.jobs.engine.sandbox() {
            sandbox.shutdown().await;
        }
        match self.jobs.store.release_claims().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                requeued = n,
                "interrupted jobs left queued for the next start"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot requeue interrupted jobs; the next start will")
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sandbox::{BoxFuture, SandboxError, SandboxOutcome, SandboxRequest};
    use crate::service::engine_watch::{Engine, Probe};
    use crate::service::jobs::JobsConfig;
    use crate::service::store::{self, BatchDetail, JobRecord, NewBatch, NewJob};
    use crate::task::TaskChoice;
    use std::path::{Path, PathBuf};

    fn tasks_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks")
    }

    fn job(output: &str) -> NewJob {
        NewJob {
            sample: None,
            task: "reset-conversation".into(),
            model: "m".into(),
            output: output.into(),
            metadata: Some(serde_json::json!({"run": 7})),
            callback_url: None,
            upload: None,
            task_choice: Some(TaskChoice::given("reset-conversation")),
        }
    }

    /// A sandbox whose engine is always down.
    struct DownSandbox;

    impl Sandbox for DownSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async {
                Err(SandboxError::EngineUnreachable(
                    "fake engine is down".into(),
                ))
            })
        }
    }

    /// A service over `sandbox` with its store in `dir`; `engine_up` is
    /// what its engine probe answers (`None`: no probe).
    fn jobs_over(
        dir: &Path,
        sandbox: Arc<dyn Sandbox>,
        engine_up: Option<bool>,
        workers: usize,
        max_queue: usize,
    ) -> Arc<Jobs> {
        let probe = engine_up.map(|up| -> Probe { Box::new(move || Box::pin(async move { up })) });
        let engine = Arc::new(Engine::ready(sandbox, None, probe));
        Jobs::new(
            store::open(dir).unwrap(),
            JobsConfig {
                workers,
                max_queue,
                tasks_dir: tasks_dir(),
                cache_dir: None,
                retention: None,
            },
            engine,
        )
    }

    fn jobs_with(dir: &Path, workers: usize, max_queue: usize) -> Arc<Jobs> {
        jobs_over(dir, Arc::new(DownSandbox), None, workers, max_queue)
    }

    /// The experiment's tier-1 fixture answer.
    fn correct_answer() -> String {
        std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/outputs/reset-conversation/correct.py"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn finished_jobs_past_the_retention_are_pruned_with_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_with(dir.path(), 1, 10);
        let ids = jobs
            .submit(
                vec![job("no code at all, sorry")],
                Some(NewBatch {
                    id: "b1".into(),
                    task: "reset-conversation".into(),
                    callback_url: None,
                }),
            )
            .await
            .unwrap();
        let pool = jobs.start();
        let done = jobs
            .wait_for_job(&ids[0], Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, Status::Done);
        assert_eq!(
            jobs.store.prune(now_ms() - 60_000).await.unwrap(),
            0,
            "young jobs stay"
        );
        assert_eq!(jobs.store.prune(now_ms() + 1).await.unwrap(), 1);
        assert!(jobs.store.job(&ids[0]).await.unwrap().is_none());
        assert!(jobs.store.batch("b1").await.unwrap().is_none());
        pool.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn a_batch_summary_reads_neither_metadata_nor_bulky_results_and_pruning_shrinks_the_file()
    {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_with(dir.path(), 2, 100);
        let bulky = "x".repeat(200_000);
        let answers: Vec<NewJob> = (0..20)
            .map(|i| NewJob {
                sample: None,
                metadata: Some(serde_json::json!({"notes": bulky, "i": i})),
                ..job(&format!("no code here either, {i}: {bulky}"))
            })
            .collect();
        let batch = NewBatch {
            id: "b1".into(),
            task: "reset-conversation".into(),
            callback_url: None,
        };
        jobs.submit(answers, Some(batch)).await.unwrap();
        let pool = jobs.start();
        let full = jobs
            .wait_for_batch("b1", Duration::from_secs(60), BatchDetail::Full)
            .await
            .unwrap()
            .unwrap();
        assert!(full.jobs.iter().all(|j| j.status == Status::Done));
        assert!(full.jobs[0].metadata.is_some());
        let summary = jobs
            .store
            .batch_with("b1", BatchDetail::Summary)
            .await
            .unwrap()
            .unwrap();
        for (whole, light) in full.jobs.iter().zip(&summary.jobs) {
            assert!(light.metadata.is_none());
            let (whole, light) = (
                whole.result.as_ref().unwrap(),
                light.result.as_ref().unwrap(),
            );
            assert_eq!(
                (light.tier, light.label, &light.failure, &light.reason),
                (whole.tier, whole.label, &whole.failure, &whole.reason)
            );
            assert!(light.script.is_none() && light.static_report.is_none());
        }
        pool.shutdown(Duration::from_secs(5)).await;
        let size = || {
            std::fs::metadata(dir.path().join(store::DB_FILE))
                .unwrap()
                .len()
        };
        let before = size();
        assert!(
            before > 4_000_000,
            "the answers are in the store: {before} bytes"
        );
        assert_eq!(jobs.store.prune(now_ms() + 1).await.unwrap(), 20);
        let after = size();
        assert!(
            after < before / 4,
            "pruning gave the pages back: {before} -> {after} bytes"
        );
    }

    #[tokio::test]
    async fn a_worker_grades_an_answer_without_code_and_wakes_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_with(dir.path(), 2, 10);
        let pool = jobs.start();
        let ids = jobs
            .submit(vec![job("I cannot help with that.")], None)
            .await
            .unwrap();
        let done = jobs
            .wait_for_job(&ids[0], Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, Status::Done);
        let result = done.result.expect("a result");
        assert_eq!(
            (result.tier, result.failure.map(|f| f.as_str())),
            (Some(3), Some("no_code"))
        );
        assert_eq!(
            result.task_choice.map(|c| c.how),
            Some("given".into()),
            "the job's task choice is in its result"
        );
        assert!(jobs
            .metrics
            .render(&Default::default(), &jobs.engine.health())
            .contains(
                "qtjudge_verifications_total{tier=\"3\",label=\"fail\",failure=\"no_code\"} 1"
            ));
        pool.shutdown(Duration::from_secs(5)).await;
    }

    /// Runs, but the supervisor prints no result (a harness fault).
    struct SilentSandbox;

    impl Sandbox for SilentSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async {
                Ok(SandboxOutcome {
                    missing_result: Some("the supervisor printed no result".into()),
                    ..Default::default()
                })
            })
        }
    }

    #[tokio::test]
    async fn a_run_the_engine_could_not_judge_is_an_error_not_a_tier() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_over(dir.path(), Arc::new(SilentSandbox), None, 1, 10);
        let pool = jobs.start();
        let correct = correct_answer();
        let ids = jobs.submit(vec![job(&correct)], None).await.unwrap();
        let done = jobs
            .wait_for_job(&ids[0], Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, Status::Error);
        assert_eq!(done.attempts, 1, "not the engine's fault: not run again");
        assert_eq!(done.result.unwrap().tier, None);
        pool.shutdown(Duration::from_secs(5)).await;
    }

    /// Panics on the answer carrying `PANIC_IN_SANDBOX`; every other run
    /// ends at the wall clock (tier 3 `timeout`, no Docker needed). Also
    /// `grade`'s test sandbox (see `cli`).
    pub(crate) struct PanickySandbox;

    impl Sandbox for PanickySandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(
            &self,
            request: SandboxRequest,
        ) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async move {
                // The job carries the app's files in base64.
                let files: Vec<crate::bundle::BundleFile> =
                    serde_json::from_value(request.job["files"].clone()).unwrap_or_default();
                if files
                    .iter()
                    .any(|f| String::from_utf8_lossy(&f.data).contains("PANIC_IN_SANDBOX"))
                {
                    panic!("decoding went wrong on crafted bytes");
                }
                Ok(SandboxOutcome {
                    missing_result: Some("killed at the wall clock".into()),
                    host_timeout: true,
                    ..Default::default()
                })
            })
        }
    }

    #[tokio::test]
    async fn a_panicking_verification_is_its_answers_error_and_the_worker_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_over(dir.path(), Arc::new(PanickySandbox), Some(true), 1, 10);
        let correct = correct_answer();
        let panicking = format!("{correct}\n# PANIC_IN_SANDBOX\n");
        let pool = jobs.start();
        // One worker: the answers after the panicking one need it alive.
        let ids = jobs
            .submit(vec![job(&panicking), job(&correct), job(&correct)], None)
            .await
            .unwrap();
        let mut finished = Vec::new();
        for id in &ids {
            finished.push(
                jobs.wait_for_job(id, Duration::from_secs(30))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        pool.shutdown(Duration::from_secs(5)).await;
        let panicked = &finished[0];
        assert_eq!(panicked.status, Status::Error, "{panicked:?}");
        assert_eq!(panicked.attempts, 1, "a bug is not run again");
        let result = panicked.result.clone().expect("a result saying why");
        assert_eq!((result.tier, result.label), (None, Label::Error));
        assert!(
            result
                .reason
                .starts_with("qtjudge bug: panicked while judging: ")
                && result
                    .reason
                    .contains("decoding went wrong on crafted bytes")
                && result.reason.ends_with("please report it"),
            "{}",
            result.reason
        );
        assert_eq!(result.error.as_deref(), Some(result.reason.as_str()));
        assert_eq!(
            result.task_choice.map(|c| c.how),
            Some("given".into()),
            "the job's task choice is kept"
        );
        for other in &finished[1..] {
            assert_eq!(other.status, Status::Done, "{other:?}");
            let result = other.result.clone().unwrap();
            assert_eq!(
                (result.tier, result.failure.map(|f| f.as_str())),
                (Some(3), Some("timeout"))
            );
        }
    }

    /// Its one run's result was more than the host reads.
    #[derive(Default)]
    struct OversizedSandbox(AtomicUsize);

    impl Sandbox for OversizedSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let why = "the result is nested more than 64 levels deep".to_string();
            Box::pin(async move {
                Ok(SandboxOutcome {
                    missing_result: Some(why.clone()),
                    output_too_large: Some(why),
                    ..Default::default()
                })
            })
        }
    }

    /// `correct.py` through a one-worker service over `sandbox`, to its end.
    async fn run_correct_once(sandbox: Arc<dyn Sandbox>) -> JobRecord {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_over(dir.path(), sandbox, Some(true), 1, 10);
        let correct = correct_answer();
        let pool = jobs.start();
        let ids = jobs.submit(vec![job(&correct)], None).await.unwrap();
        let finished = jobs
            .wait_for_job(&ids[0], Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        pool.shutdown(Duration::from_secs(5)).await;
        finished
    }

    #[tokio::test]
    async fn an_output_too_large_is_tier_3_and_never_run_again() {
        let sandbox = Arc::new(OversizedSandbox::default());
        let done = run_correct_once(sandbox.clone()).await;
        assert_eq!(done.status, Status::Done, "{done:?}");
        assert_eq!(done.attempts, 1);
        let result = done.result.unwrap();
        assert_eq!(
            (result.tier, result.failure.map(|f| f.as_str())),
            (Some(3), Some("output_too_large"))
        );
        assert!(result.reason.contains("64 levels"), "{}", result.reason);
    }

    #[tokio::test]
    async fn a_run_lost_to_an_engine_outage_goes_back_to_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_over(dir.path(), Arc::new(DownSandbox), Some(false), 1, 10);
        let correct = correct_answer();
        let pool = jobs.start();
        let ids = jobs.submit(vec![job(&correct)], None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while jobs.engine.health().reachable {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the outage was never noticed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pool.shutdown(Duration::from_secs(5)).await;
        let job = jobs.store.job(&ids[0]).await.unwrap().unwrap();
        assert_eq!(
            job.status,
            Status::Queued,
            "kept for when the engine is back"
        );
        assert!(job.result.is_none());
        assert!(
            jobs.engine.sandbox().is_none(),
            "workers claim nothing while it is down"
        );
    }

    /// Fails every run as if the connection to the engine were cut.
    #[derive(Default)]
    struct CutSandbox(AtomicUsize);

    impl Sandbox for CutSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                Err(SandboxError::EngineFailed {
                    doing: "reading the container's output",
                    message: "cut".into(),
                })
            })
        }
    }

    #[tokio::test]
    async fn a_run_the_engine_fails_while_it_answers_is_retried_then_given_up() {
        let sandbox = Arc::new(CutSandbox::default());
        let job = run_correct_once(sandbox.clone()).await;
        assert_eq!(job.status, Status::Error, "{job:?}");
        assert_eq!(job.attempts, MAX_ATTEMPTS);
        assert_eq!(sandbox.0.load(Ordering::SeqCst) as i64, MAX_ATTEMPTS);
        let error = job.error.unwrap_or_default();
        assert!(
            error.contains("failed this verification 3 times") && error.contains("cut"),
            "says why: {error}"
        );
        assert!(job.result.is_none());
    }

    #[tokio::test]
    async fn a_stopping_pool_leaves_queued_jobs_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs_with(dir.path(), 0, 10);
        let pool = jobs.start();
        let ids = jobs.submit(vec![job("a"), job("b")], None).await.unwrap();
        pool.shutdown(Duration::from_secs(1)).await;
        let store = store::open(dir.path()).unwrap();
        for id in ids {
            assert_eq!(
                store.job(&id).await.unwrap().unwrap().status,
                Status::Queued
            );
        }
    }
}
