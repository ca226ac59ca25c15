//! The service's jobs as the routes and the workers share them: the store,
//! the engine, the metrics, the tasks loaded so far, the queue's wake-ups
//! and news of finished jobs. The API only enqueues and waits here; the
//! workers (`workers`) run what is queued.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::service::engine_watch::Engine;
use crate::service::metrics::Metrics;
use crate::service::store::{
    BatchDetail, BatchRecord, JobRecord, JobStore, NewBatch, NewJob, StoreError, StoreEvent,
};
use crate::task::{Task, TaskError};
use crate::verify::PreparedTask;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A job reached `done` or `error`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: String,
    pub batch_id: Option<String>,
}

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub workers: usize,
    pub max_queue: usize,
    pub tasks_dir: PathBuf,
    /// Where the original app's widget tree is cached per task.
    pub cache_dir: Option<PathBuf>,
    /// Finished jobs older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
}

/// The store, the queue and the workers, shared by the API's handlers.
pub struct Jobs {
    pub store: Arc<dyn JobStore>,
    pub config: JobsConfig,
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    tasks: Mutex<HashMap<String, Arc<PreparedTask>>>,
    pub(super) wake: Notify,
    pub(super) finished: broadcast::Sender<Finished>,
    /// Cancelled at shutdown: no new work is accepted or claimed.
    pub(super) stopping: CancellationToken,
    pub(super) running: AtomicUsize,
}

impl Jobs {
    pub fn new(store: Arc<dyn JobStore>, config: JobsConfig, engine: Arc<Engine>) -> Arc<Jobs> {
        let (finished, _) = broadcast::channel(1024);
        Arc::new(Jobs {
            store,
            config,
            engine,
            metrics: Metrics::default(),
            tasks: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            finished,
            stopping: CancellationToken::new(),
            running: AtomicUsize::new(0),
        })
    }

    /// Cancelled when the service begins to shut down.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Verifications running in this process now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// The task, loaded once and kept (it checks the id as well).
    pub async fn prepared_task(&self, id: &str) -> Result<Arc<PreparedTask>, TaskError> {
        if let Some(prepared) = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(prepared.clone());
        }
        let dir = self.config.tasks_dir.clone();
        let owned_id = id.to_string();
        let task = tokio::task::spawn_blocking(move || Task::load(&dir, &owned_id))
            .await
            .map_err(|e| TaskError::Invalid {
                path: self.config.tasks_dir.join(id),
                message: format!("loading the task panicked: {e}"),
            })??;
        let prepared = PreparedTask::new(task, self.config.cache_dir.clone());
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        Ok(tasks.entry(id.to_string()).or_insert(prepared).clone())
    }

    /// Accepts jobs: on disk when this returns. Wakes the workers.
    pub async fn submit(&self, jobs: Vec<NewJob>, batch: Option<NewBatch>) -> Result<Vec<String>> {
        let ids = self
            .store
            .enqueue(jobs, batch, self.config.max_queue)
            .await?;
        self.wake.notify_waiters();
        Ok(ids)
    }

    /// Relays what other processes sharing the store do: jobs they queue
    /// wake this one's idle workers, jobs they finish its waiters.
    pub(super) async fn relay(&self, mut events: broadcast::Receiver<StoreEvent>) {
        loop {
            tokio::select! {
                _ = self.stopping.cancelled() => return,
                event = events.recv() => match event {
                    Ok(StoreEvent::Queued) => self.wake.notify_waiters(),
                    Ok(StoreEvent::Finished { id, batch_id }) => {
                        let _ = self.finished.send(Finished { id, batch_id });
                    }
                    // News lost: look again.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.wake.notify_waiters(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// News of every job that reaches `done` or `error` (after its commit).
    pub(crate) fn finished_news(&self) -> broadcast::Receiver<Finished> {
        self.finished.subscribe()
    }

    /// Waits until `id` is finished, the timeout passes or the service
    /// stops; returns the job as it then stands.
    pub async fn wait_for_job(&self, id: &str, timeout: Duration) -> Result<Option<JobRecord>> {
        // Subscribe before reading, so a finish in between is not missed.
        let mut finished = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.store.job(id).await?;
            match &job {
                Some(j) if !j.status.is_finished() => {}
                _ => return Ok(job),
            }
            if !self
                .wait_for_news(&mut finished, deadline, |f| f.id == id)
                .await
            {
                return self.store.job(id).await;
            }
        }
    }

    /// Waits until every job of the batch is finished (or as for `wait_for_job`).
    pub async fn wait_for_batch(
        &self,
        id: &str,
        timeout: Duration,
        detail: BatchDetail,
    ) -> Result<Option<BatchRecord>> {
        let mut finished = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.store.batch_unfinished(id).await? {
                Some(n) if n > 0 => {}
                _ => return self.store.batch_with(id, detail).await,
            }
            if !self
                .wait_for_news(&mut finished, deadline, |f| {
                    f.batch_id.as_deref() == Some(id)
                })
                .await
            {
                return self.store.batch_with(id, detail).await;
            }
        }
    }

    /// True when a relevant job finished (or news were lost: look again);
    /// false at the deadline or at shutdown.
    async fn wait_for_news(
        &self,
        finished: &mut broadcast::Receiver<Finished>,
        deadline: tokio::time::Instant,
        relevant: impl Fn(&Finished) -> bool,
    ) -> bool {
        loop {
            tokio::select! {
                _ = self.stopping.cancelled() => return false,
                _ = tokio::time::sleep_until(deadline) => return false,
                news = finished.recv() => match news {
                    Ok(f) if relevant(&f) => return true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => return false,
                },
            }
        }
    }
}
