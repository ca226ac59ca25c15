//! The service's job store behind one seam, [`JobStore`]: verifications,
//! their screenshots, batches and callback deliveries. The store is the
//! queue: a job is a row, accepted only once committed; a worker claims the
//! oldest queued one under a lease and writes its outcome with it. So a
//! crash loses nothing accepted: jobs whose holder died go back to the
//! queue at recovery. The service holds an `Arc<dyn JobStore>` and never
//! names a database: `sqlite` is the embedded store (the default, one
//! process), `postgres` the one many replicas share; [`open_spec`] picks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

use crate::task::TaskChoice;
use crate::verify::Verification;

mod columns;
mod error;
mod migration;
mod postgres;
mod records;
mod sqlite;

pub use error::{BackendError, StoreError};
pub use postgres::DEFAULT_LEASE_TTL;
pub use records::{
    BatchDetail, BatchListing, BatchRecord, CallbackAttempt, CallbackStatus, Claimed,
    DeliveryState, Depth, JobInput, JobRecord, Lease, NewBatch, NewJob, PendingDelivery, Recovered,
    Status, BATCH_FINISHED, VERIFICATION_FINISHED,
};
pub use sqlite::DB_FILE;

/// A job that was running when the service died, or whose run the engine
/// failed, this many times is given up on (`error`, saying why): the same
/// answer keeps taking the service down, or the engine is not fit to run it.
pub const MAX_ATTEMPTS: i64 = 3;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored artifact: its media type and its bytes.
pub type ArtifactData = (String, Vec<u8>);

/// Opens the service's store: the embedded one in `data_dir` (created if
/// missing, its schema brought up to date).
pub fn open(data_dir: &Path) -> Result<Arc<dyn JobStore>> {
    Ok(Arc::new(sqlite::SqliteStore::open(data_dir)?))
}

/// Which store a service uses (`--store`, `QTJUDGE_STORE`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded store in this folder (`sqlite:DIR`, or `--data-dir`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host:port/db`),
    /// which any number of replicas may share.
    Postgres(String),
}

impl StoreSpec {
    pub fn parse(text: &str) -> std::result::Result<StoreSpec, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(StoreSpec::Postgres(text.to_string()))
        } else if let Some(dir) = text.strip_prefix("sqlite:") {
            if dir.is_empty() {
                return Err("`sqlite:` needs a folder: sqlite:/var/lib/qtjudge".into());
            }
            Ok(StoreSpec::Sqlite(PathBuf::from(dir)))
        } else {
            Err(format!(
                "unknown store `{}`: use postgres://user:password@host:port/db or sqlite:FOLDER",
                text.split("://").next().unwrap_or(text)
            ))
        }
    }

    /// Whether other processes may use the store at the same time.
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreSpec::Postgres(_))
    }
}

/// Without a PostgreSQL URL's password: specs end up in logs.
impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite(dir) => write!(f, "sqlite:{}", dir.display()),
            StoreSpec::Postgres(url) => f.write_str(&postgres::redacted(url)),
        }
    }
}

/// Opens the store `spec` names; a shared store's claims last `lease_ttl`
/// unless this process renews them.
pub async fn open_spec(spec: &StoreSpec, lease_ttl: Duration) -> Result<Arc<dyn JobStore>> {
    Ok(match spec {
        StoreSpec::Sqlite(dir) => Arc::new(sqlite::SqliteStore::open(dir)?),
        StoreSpec::Postgres(url) => Arc::new(
            postgres::PostgresStore::open(
                url,
                postgres::Options {
                    lease_ttl,
                    heartbeat: true,
                },
            )
            .await?,
        ),
    })
}

/// Everything the service does with its jobs. Each call is one transaction:
/// what it writes is all there when it returns, or none of it.
///
/// Claims are leases ([`Lease`]): `set_task`, `finish` and
/// `requeue_after_engine_fault` write only while the lease is the job's
/// current one, else fail with [`StoreError::LeaseLost`]. A store whose
/// leases can expire keeps this process's alive itself until they are
/// given back (by those three calls or `release_claims`).
///
/// Finishing a job (`done` or `error`, by whichever call) queues its
/// callback delivery, and its batch's once the batch's last job finishes,
/// in the same transaction: each once per job or batch, with one delivery
/// id for all its attempts.
pub trait JobStore: Send + Sync {
    /// Commits new jobs (and their batch, if any), or none of them when
    /// the queue has no room for all ([`StoreError::QueueFull`]). Returns
    /// their ids, in order.
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        batch: Option<NewBatch>,
        max_queue: usize,
    ) -> BoxFuture<'_, Result<Vec<String>>>;

    /// Marks the oldest queued job `running` (one more attempt) and hands
    /// it over with a new lease.
    fn claim_next(&self) -> BoxFuture<'_, Result<Option<Claimed>>>;

    /// Records the task chosen for a running job (an uploaded app without
    /// a task: its code is known only once unpacked).
    fn set_task<'a>(
        &'a self,
        lease: &'a Lease,
        choice: &'a TaskChoice,
    ) -> BoxFuture<'a, Result<()>>;

    /// Stores a running job's outcome (`done` or `error`), its result and
    /// screenshots, and queues its callbacks.
    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        status: Status,
        result: Option<&'a Verification>,
        error: Option<String>,
    ) -> BoxFuture<'a, Result<()>>;

    /// A running job the engine failed (an outage, a cut connection): back
    /// in the queue, its attempt counted, or, after `MAX_ATTEMPTS` runs,
    /// finished as `error` saying why. True when it was requeued.
    fn requeue_after_engine_fault<'a>(
        &'a self,
        lease: &'a Lease,
        why: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;

    /// At start-up: jobs whose holder died go back to the queue, unless
    /// they already took the service down `MAX_ATTEMPTS` times (then
    /// `error`). Their leases end.
    fn recover(&self) -> BoxFuture<'_, Result<Recovered>>;

    /// At shutdown: the jobs this process holds go back to the queue
    /// without counting the attempt. Their leases end.
    fn release_claims(&self) -> BoxFuture<'_, Result<usize>>;

    fn job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobRecord>>>;

    /// What a job was given to verify (`None`: no such job).
    fn job_input<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobInput>>>;

    /// One artifact of a job, by name.
    fn artifact<'a>(
        &'a self,
        job_id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ArtifactData>>>;

    /// How many of a batch's jobs are not finished yet (`None`: no such
    /// batch). Cheap: a waiter asks after every finished job, and loading
    /// a whole batch each time made waiting on a big one quadratic.
    fn batch_unfinished<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<usize>>>;

    /// A batch with its jobs (in submission order) read to the `detail`
    /// asked for.
    fn batch_with<'a>(
        &'a self,
        id: &'a str,
        detail: BatchDetail,
    ) -> BoxFuture<'a, Result<Option<BatchRecord>>>;

    /// A batch with everything of its jobs.
    fn batch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<BatchRecord>>> {
        self.batch_with(id, BatchDetail::Full)
    }

    /// The newest jobs, newest first, as summaries (for listings).
    fn recent_jobs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<JobRecord>>>;

    /// The newest batches, newest first.
    fn recent_batches(&self, limit: usize) -> BoxFuture<'_, Result<Vec<BatchListing>>>;

    /// Jobs queued and running in the whole store: with a shared store,
    /// every replica's.
    fn depth(&self) -> BoxFuture<'_, Result<Depth>>;

    /// Deletes finished jobs (and their artifacts) finished before
    /// `before_ms`, batches left empty, and settled deliveries whose job or
    /// batch is gone; gives the space back. Returns the jobs deleted.
    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<usize>>;

    /// Deliveries still to make, the soonest due first.
    fn pending_callbacks(&self) -> BoxFuture<'_, Result<Vec<PendingDelivery>>>;

    /// A delivery's body, once rendered (`None` before, or no such delivery).
    fn callback_body<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Keeps a delivery's body, so every attempt sends the same bytes.
    fn set_callback_body<'a>(&'a self, id: &'a str, body: String) -> BoxFuture<'a, Result<()>>;

    /// News of what other processes sharing this store do (`None`: no
    /// other process writes it). A hint that saves polling: news may be
    /// lost (a cut connection), so whoever waits on it also looks now and
    /// then.
    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        None
    }

    /// Whether other processes may share this store (its queue and its
    /// counts are then the cluster's, not this process's).
    fn is_shared(&self) -> bool {
        false
    }

    /// Says that the replica whose sandbox containers carry `owner` is
    /// alive (a shared store; a no-op for one process's own store).
    fn replica_alive<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<()>> {
        let _ = owner;
        Box::pin(async { Ok(()) })
    }

    /// The replicas that stopped saying they are alive and that no one
    /// else is reaping: this process now has a while to remove their
    /// containers, then says so with `dead_replicas_reaped`.
    fn claim_dead_replicas(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// A round of reaping dead replicas' containers is over: those silent
    /// long enough are forgotten, the others reaped again later (a
    /// container a dead replica had asked for may appear late).
    fn dead_replicas_reaped<'a>(&'a self, owners: &'a [String]) -> BoxFuture<'a, Result<()>> {
        let _ = owners;
        Box::pin(async { Ok(()) })
    }

    /// Records an attempt's outcome.
    fn callback_attempted<'a>(
        &'a self,
        id: &'a str,
        attempt: CallbackAttempt,
    ) -> BoxFuture<'a, Result<()>>;
}

/// What another process sharing the store did, as far as this one's
/// waiters care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Jobs were queued (or queued again): idle workers look.
    Queued,
    /// A job reached `done` or `error`.
    Finished {
        id: String,
        batch_id: Option<String>,
    },
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// Last: the tidy test reads a file's product code up to its first test module.
#[cfg(test)]
pub(crate) mod conformance;
