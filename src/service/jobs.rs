//! The service's jobs: a SQLite store (one file, WAL) of verifications,
//! their screenshots and batches, and the worker pool that runs them.
//! `api` only enqueues and reads; the workers here are the only callers of
//! `verify` in the service, at most `workers` at once.
//!
//! The store is the queue: a job is a row, accepted only once committed;
//! workers claim the oldest `queued` row. So a crash loses nothing
//! accepted: rows left `running` go back to `queued` at start-up.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::sandbox::{BoxFuture, Sandbox};
use crate::service::callbacks::{CallbackStatus, Outcome};
use crate::task::{Task, TaskChoice, TaskError};
use crate::verdict::Label;
use crate::verify::{self, PreparedTask, Verification};

/// The store's file name inside the data folder.
pub const DB_FILE: &str = "qtjudge.db";
/// A job that was running when the service died, or whose run the engine
/// failed, this many times is given up on (`error`, saying why): the same
/// answer keeps taking the service down, or the engine is not fit to run it.
pub const MAX_ATTEMPTS: i64 = 3;
/// Workers look at the store this often even when nobody wakes them, so a
/// missed wake-up costs a delay, never a stuck job.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often idle workers look for the sandbox while it is not ready.
const ENGINE_WAIT_POLL: Duration = Duration::from_millis(250);
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
/// Upper bounds (seconds) of the duration histogram's buckets.
const DURATION_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("cannot create the data folder {path}: {source} (check --data-dir)")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the job store {path}: {source} (is another qtjudge serve using --data-dir, or is the file damaged?)")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("job store error while {doing}: {source}")]
    Sql {
        doing: &'static str,
        source: rusqlite::Error,
    },
    #[error("the queue is full ({queued} queued, at most {max}): retry later")]
    QueueFull { queued: usize, max: usize },
    #[error("the job store's thread stopped: {0}")]
    Thread(String),
}

type Result<T, E = JobsError> = std::result::Result<T, E>;

pub(crate) fn sql(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> JobsError {
    move |source| JobsError::Sql { doing, source }
}

/// Where a job stands. `error` means it could not be judged (engine down,
/// task gone, given up after crashes): never the answer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Done,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Error => "error",
        }
    }

    fn parse(text: &str) -> Status {
        match text {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "done" => Status::Done,
            _ => Status::Error,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Error)
    }
}

/// An answer to verify, as accepted by the API.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub task: String,
    pub model: String,
    pub output: String,
    /// An app as uploaded (still compressed); `output` is then empty.
    /// Stored with the job, so a job queued before a crash still runs
    /// after it, and unpacked by the worker that runs it.
    pub upload: Option<crate::bundle::Upload>,
    pub metadata: Option<Value>,
    /// Where the finished view is POSTed (checked by the API).
    pub callback_url: Option<String>,
    /// Why `task` was chosen (given, or resembled): kept with the job and
    /// put in its result, as a local `grade` puts it.
    pub task_choice: Option<TaskChoice>,
}

/// A batch to create with its jobs.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: String,
    pub task: String,
    /// Where the finished batch's view is POSTed.
    pub callback_url: Option<String>,
}

/// A job as stored (without the answer's text, which only workers need).
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    pub batch_id: Option<String>,
    pub task: String,
    pub model: String,
    pub metadata: Option<Value>,
    pub status: Status,
    pub result: Option<Verification>,
    /// Why a job ended in `error` without a result.
    pub error: Option<String>,
    pub attempts: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub callback: Option<CallbackStatus>,
    /// Why `task` was chosen (none for jobs stored by older versions).
    pub task_choice: Option<TaskChoice>,
}

#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: String,
    pub task: String,
    pub created_at: i64,
    /// In the order they were submitted.
    pub jobs: Vec<JobRecord>,
    pub callback: Option<CallbackStatus>,
}

/// A claimed job: what a worker needs to run it.
#[derive(Debug, Clone)]
struct Claimed {
    id: String,
    batch_id: Option<String>,
    task: String,
    model: String,
    output: String,
    upload: Option<crate::bundle::Upload>,
    /// An app unpacked at submission by a version before uploads were
    /// kept compressed (a job queued before an upgrade).
    bundle: Option<crate::bundle::Bundle>,
    task_choice: Option<TaskChoice>,
}

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Depth {
    pub queued: usize,
    pub running: usize,
}

/// What start-up recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub requeued: usize,
    pub given_up: usize,
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    output TEXT NOT NULL,
    metadata TEXT,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch_id, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at);
CREATE TABLE IF NOT EXISTS artifacts (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);
";

/// Columns of `jobs` added after its first version, each nullable JSON:
/// `bundle` (an uploaded app, unpacked: older versions), `task_choice` (why
/// its task was chosen) and `upload` (an uploaded app as it came).
const ADDED_JOB_COLUMNS: [&str; 3] = ["bundle", "task_choice", "upload"];

/// Adds the [`ADDED_JOB_COLUMNS`] a store made by an older version lacks.
fn add_job_columns(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    for column in ADDED_JOB_COLUMNS {
        let has_column: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
            params![column],
            |r| r.get(0),
        )?;
        if !has_column {
            conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {column} TEXT"))?;
        }
    }
    Ok(())
}

/// The columns of a job after its result, shared by both readings below.
macro_rules! job_tail_columns {
    () => {
        "error, attempts, created_at, started_at, finished_at,
     callback_url, (SELECT state FROM callbacks WHERE subject = jobs.id),
     (SELECT attempts FROM callbacks WHERE subject = jobs.id),
     (SELECT last_error FROM callbacks WHERE subject = jobs.id), task_choice"
    };
}

const JOB_COLUMNS: &str = concat!(
    "id, batch_id, task, model, metadata, status, result, ",
    job_tail_columns!()
);

/// As [`JOB_COLUMNS`] for a batch's progress: no metadata, and a result
/// without its bulky parts (script, steps, static and behaviour reports,
/// timings), so polling a batch costs what its answer holds, not what its
/// answers carried. SQLite trims the JSON; the service never holds it whole.
const JOB_SUMMARY_COLUMNS: &str = concat!(
    "id, batch_id, task, model, NULL, status,
     CASE WHEN result IS NULL THEN NULL ELSE json_set(result, '$.script', NULL, '$.steps', json('[]'),
        '$.static', NULL, '$.behaviour', NULL, '$.timings', json('[]'), '$.missing', json('[]'),
        '$.extraction', NULL, '$.bundle', NULL) END, ",
    job_tail_columns!()
);

/// How much of a batch's jobs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDetail {
    /// Everything: reports of every format.
    Full,
    /// Progress, tiers and reasons: the batch view, its page, its callback.
    Summary,
}

/// The job store. One connection behind a mutex: SQLite writes one
/// transaction at a time anyway, and the service's load is a few rows a
/// second. Every call runs on tokio's blocking pool.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) `data_dir/qtjudge.db`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| JobsError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let open_error = |source| JobsError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_error)?;
        // Pages freed by pruning go back to the file system (see `prune`).
        // Set before the first table exists; an older store converts once.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(open_error)?;
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(open_error)?;
        if auto_vacuum != 2 {
            tracing::info!(path = %path.display(), "converting the store to incremental vacuum (once)");
            conn.execute_batch("VACUUM").map_err(open_error)?;
        }
        // WAL: readers do not block the writer. synchronous=FULL: a commit
        // is on disk when it returns, which is what a 202 promises.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_error)?;
        conn.execute_batch(SCHEMA).map_err(open_error)?;
        add_job_columns(&conn).map_err(open_error)?;
        crate::service::callbacks::migrate(&conn).map_err(open_error)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, off the async threads.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable:
            // every write is one transaction, rolled back if unfinished.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| JobsError::Thread(e.to_string()))?
    }

    /// Commits new jobs (and their batch, if any) in one transaction, or
    /// none of them when the queue has no room for all. Returns their ids.
    pub async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        batch: Option<NewBatch>,
        max_queue: usize,
    ) -> Result<Vec<String>> {
        self.call(move |conn| {
            let tx = conn.transaction().map_err(sql("starting an enqueue"))?;
            let queued: i64 = tx
                .query_row("SELECT COUNT(*) FROM jobs WHERE status = 'queued'", [], |r| r.get(0))
                .map_err(sql("counting queued jobs"))?;
            let queued = queued as usize;
            if queued + jobs.len() > max_queue {
                return Err(JobsError::QueueFull { queued, max: max_queue });
            }
            let now = now_ms();
            let batch_id = batch.as_ref().map(|b| b.id.clone());
            if let Some(b) = &batch {
                tx.execute(
                    "INSERT INTO batches (id, task, created_at, callback_url) VALUES (?1, ?2, ?3, ?4)",
                    params![b.id, b.task, now, b.callback_url],
                )
                .map_err(sql("inserting a batch"))?;
            }
            let mut ids = Vec::with_capacity(jobs.len());
            {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO jobs (id, batch_id, task, model, output, metadata, status, created_at, callback_url, upload, task_choice)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10)",
                    )
                    .map_err(sql("preparing a job insert"))?;
                for job in jobs {
                    let id = new_id();
                    let metadata = job.metadata.map(|m| m.to_string());
                    let upload = job
                        .upload
                        .as_ref()
                        .and_then(|u| serde_json::to_string(u).ok());
                    let choice = job
                        .task_choice
                        .as_ref()
                        .and_then(|c| serde_json::to_string(c).ok());
                    insert
                        .execute(params![id, batch_id, job.task, job.model, job.output, metadata, now, job.callback_url, upload, choice])
                        .map_err(sql("inserting a job"))?;
                    ids.push(id);
                }
            }
            tx.commit().map_err(sql("committing new jobs"))?;
            Ok(ids)
        })
        .await
    }

    /// Marks the oldest queued job `running` and returns it.
    async fn claim_next(&self) -> Result<Option<Claimed>> {
        self.call(|conn| {
            conn.query_row(
                "UPDATE jobs SET status = 'running', started_at = ?1, attempts = attempts + 1
                 WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1)
                 RETURNING id, batch_id, task, model, output, bundle, task_choice, upload",
                params![now_ms()],
                |r| {
                    let bundle: Option<String> = r.get(5)?;
                    let choice: Option<String> = r.get(6)?;
                    let upload: Option<String> = r.get(7)?;
                    Ok(Claimed {
                        id: r.get(0)?,
                        batch_id: r.get(1)?,
                        task: r.get(2)?,
                        model: r.get(3)?,
                        output: r.get(4)?,
                        // Written by `enqueue` from a checked upload: unreadable only if corrupted.
                        upload: upload.and_then(|u| serde_json::from_str(&u).ok()),
                        bundle: bundle.and_then(|b| serde_json::from_str(&b).ok()),
                        task_choice: choice.and_then(|c| serde_json::from_str(&c).ok()),
                    })
                },
            )
            .optional()
            .map_err(sql("claiming a job"))
        })
        .await
    }

    /// Records the task chosen for a job when it runs (an uploaded app
    /// without a task: its code is known only once unpacked).
    async fn set_task(&self, id: &str, choice: &TaskChoice) -> Result<()> {
        let (id, task) = (id.to_string(), choice.task.clone());
        let choice = serde_json::to_string(choice).ok();
        self.call(move |conn| {
            conn.execute(
                "UPDATE jobs SET task = ?2, task_choice = ?3 WHERE id = ?1",
                params![id, task, choice],
            )
            .map(drop)
            .map_err(sql("recording a job's task"))
        })
        .await
    }

    /// Stores a finished job's result and screenshots.
    async fn finish(
        &self,
        id: &str,
        status: Status,
        result: Option<&Verification>,
        error: Option<String>,
    ) -> Result<()> {
        let id = id.to_string();
        let artifacts: Vec<(String, String, Vec<u8>)> = result
            .map(|v| {
                v.artifacts
                    .iter()
                    .map(|a| (a.name.clone(), a.media_type.clone(), a.data.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let result = match result {
            Some(v) => Some(
                serde_json::to_string(v)
                    .map_err(|e| JobsError::Thread(format!("serialising a result: {e}")))?,
            ),
            None => None,
        };
        self.call(move |conn| {
            let tx = conn.transaction().map_err(sql("starting to store a result"))?;
            tx.execute(
                "UPDATE jobs SET status = ?2, result = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
                params![id, status.as_str(), result, error, now_ms()],
            )
            .map_err(sql("storing a result"))?;
            for (name, media_type, data) in artifacts {
                tx.execute(
                    "INSERT OR REPLACE INTO artifacts (job_id, name, media_type, data) VALUES (?1, ?2, ?3, ?4)",
                    params![id, name, media_type, data],
                )
                .map_err(sql("storing an artifact"))?;
            }
            tx.commit().map_err(sql("committing a result"))
        })
        .await
    }

    /// A running job the engine failed (an outage, a cut connection): back
    /// in the queue, its attempt counted, or, after `MAX_ATTEMPTS` such
    /// runs, finished as `error` saying why. True when it was requeued.
    async fn requeue_after_engine_fault(&self, id: &str, why: &str) -> Result<bool> {
        let id = id.to_string();
        let why = why.to_string();
        self.call(move |conn| {
            let tx = conn.transaction().map_err(sql("starting a requeue"))?;
            let given_up = tx
                .execute(
                    "UPDATE jobs SET status = 'error', finished_at = ?2,
                     error = 'the Docker engine failed this verification ' || attempts || ' times (last: ' || ?3
                             || '); given up: check the engine (docker info, its log) and submit the answer again'
                     WHERE id = ?1 AND status = 'running' AND attempts >= ?4",
                    params![id, now_ms(), why, MAX_ATTEMPTS],
                )
                .map_err(sql("giving up on a job"))?;
            if given_up == 0 {
                tx.execute(
                    "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ?1 AND status = 'running'",
                    params![id],
                )
                .map_err(sql("requeueing a job"))?;
            }
            tx.commit().map_err(sql("committing a requeue"))?;
            Ok(given_up == 0)
        })
        .await
    }

    /// At start-up: jobs a dead process left `running` go back to the
    /// queue, unless they already took the service down `MAX_ATTEMPTS` times.
    pub async fn recover(&self) -> Result<Recovered> {
        self.call(|conn| {
            let tx = conn.transaction().map_err(sql("starting recovery"))?;
            let given_up = tx
                .execute(
                    "UPDATE jobs SET status = 'error', finished_at = ?1,
                     error = 'the service stopped while running this answer ' || attempts || ' times; given up'
                     WHERE status = 'running' AND attempts >= ?2",
                    params![now_ms(), MAX_ATTEMPTS],
                )
                .map_err(sql("giving up on jobs"))?;
            let requeued = tx
                .execute(
                    "UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'",
                    [],
                )
                .map_err(sql("requeueing interrupted jobs"))?;
            tx.commit().map_err(sql("committing recovery"))?;
            Ok(Recovered { requeued, given_up })
        })
        .await
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                job_record,
            )
            .optional()
            .map_err(sql("reading a job"))
        })
        .await
    }

    /// One artifact's media type and bytes.
    pub async fn artifact(&self, job_id: &str, name: &str) -> Result<Option<(String, Vec<u8>)>> {
        let (job_id, name) = (job_id.to_string(), name.to_string());
        self.call(move |conn| {
            conn.query_row(
                "SELECT media_type, data FROM artifacts WHERE job_id = ?1 AND name = ?2",
                params![job_id, name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("reading an artifact"))
        })
        .await
    }

    /// How many of a batch's jobs are not finished yet (`None`: no such
    /// batch). Cheap: a waiter asks after every finished job, and loading a
    /// whole batch each time made waiting on a big one quadratic.
    pub async fn batch_unfinished(&self, id: &str) -> Result<Option<usize>> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM jobs WHERE batch_id = ?1 AND status NOT IN ('done', 'error'))
                 FROM batches WHERE id = ?1",
                params![id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map(|n| n as usize))
            .map_err(sql("counting a batch's unfinished jobs"))
        })
        .await
    }

    pub async fn batch(&self, id: &str) -> Result<Option<BatchRecord>> {
        self.batch_with(id, BatchDetail::Full).await
    }

    /// A batch with its jobs read to the `detail` asked for.
    pub async fn batch_with(&self, id: &str, detail: BatchDetail) -> Result<Option<BatchRecord>> {
        let columns = match detail {
            BatchDetail::Full => JOB_COLUMNS,
            BatchDetail::Summary => JOB_SUMMARY_COLUMNS,
        };
        let id = id.to_string();
        self.call(move |conn| {
            let head = conn
                .query_row(
                    "SELECT id, task, created_at, callback_url,
                            (SELECT state FROM callbacks WHERE subject = batches.id),
                            (SELECT attempts FROM callbacks WHERE subject = batches.id),
                            (SELECT last_error FROM callbacks WHERE subject = batches.id)
                     FROM batches WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            CallbackStatus::from_row(r, 3)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql("reading a batch"))?;
            let Some((id, task, created_at, callback)) = head else {
                return Ok(None);
            };
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {columns} FROM jobs WHERE batch_id = ?1 ORDER BY seq"
                ))
                .map_err(sql("reading a batch's jobs"))?;
            let jobs = statement
                .query_map(params![id], job_record)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql("reading a batch's jobs"))?;
            Ok(Some(BatchRecord {
                id,
                task,
                created_at,
                jobs,
                callback,
            }))
        })
        .await
    }

    /// The newest jobs, newest first, as summaries (for listings).
    pub async fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        self.call(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {JOB_SUMMARY_COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?1"
                ))
                .map_err(sql("listing jobs"))?;
            let jobs = statement
                .query_map(params![limit as i64], job_record)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql("listing jobs"))?;
            Ok(jobs)
        })
        .await
    }

    /// The newest batches, newest first: (id, task, created_at, jobs, finished).
    pub async fn recent_batches(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, i64, usize, usize)>> {
        self.call(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT b.id, b.task, b.created_at, COUNT(j.id),
                            COALESCE(SUM(j.status IN ('done', 'error')), 0)
                     FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id
                     GROUP BY b.id ORDER BY b.created_at DESC LIMIT ?1",
                )
                .map_err(sql("listing batches"))?;
            let rows = statement
                .query_map(params![limit as i64], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, i64>(3)? as usize,
                        r.get::<_, i64>(4)? as usize,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql("listing batches"))?;
            Ok(rows)
        })
        .await
    }

    pub async fn depth(&self) -> Result<Depth> {
        self.call(|conn| {
            conn.query_row(
                "SELECT COALESCE(SUM(status = 'queued'), 0), COALESCE(SUM(status = 'running'), 0) FROM jobs",
                [],
                |r| {
                    Ok(Depth {
                        queued: r.get::<_, i64>(0)? as usize,
                        running: r.get::<_, i64>(1)? as usize,
                    })
                },
            )
            .map_err(sql("counting jobs"))
        })
        .await
    }

    /// Deletes finished jobs (and their artifacts) finished before
    /// `before_ms`, and batches left empty. Returns the jobs deleted.
    pub async fn prune(&self, before_ms: i64) -> Result<usize> {
        self.call(move |conn| {
            let tx = conn.transaction().map_err(sql("starting a prune"))?;
            let deleted = tx
                .execute(
                    "DELETE FROM jobs WHERE status IN ('done', 'error') AND finished_at < ?1",
                    params![before_ms],
                )
                .map_err(sql("pruning jobs"))?;
            tx.execute(
                "DELETE FROM batches WHERE created_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id)",
                params![before_ms],
            )
            .map_err(sql("pruning batches"))?;
            crate::service::callbacks::prune(&tx).map_err(sql("pruning callbacks"))?;
            tx.commit().map_err(sql("committing a prune"))?;
            if deleted > 0 {
                // Gives the freed pages back (one per step: run it to the
                // end), and empties the WAL they went through.
                let vacuum = |conn: &mut Connection| -> rusqlite::Result<()> {
                    let mut statement = conn.prepare("PRAGMA incremental_vacuum")?;
                    let mut rows = statement.query([])?;
                    while rows.next()?.is_some() {}
                    drop(rows);
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                };
                vacuum(conn).map_err(sql("vacuuming after a prune"))?;
            }
            Ok(deleted)
        })
        .await
    }
}

fn job_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let metadata: Option<String> = r.get(4)?;
    let status: String = r.get(5)?;
    let result: Option<String> = r.get(6)?;
    let choice: Option<String> = r.get(16)?;
    Ok(JobRecord {
        id: r.get(0)?,
        batch_id: r.get(1)?,
        task: r.get(2)?,
        model: r.get(3)?,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        status: Status::parse(&status),
        // A result written by an older, incompatible version reads as none.
        result: result.and_then(|text| serde_json::from_str(&text).ok()),
        error: r.get(7)?,
        attempts: r.get(8)?,
        created_at: r.get(9)?,
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        callback: CallbackStatus::from_row(r, 12)?,
        task_choice: choice.and_then(|c| serde_json::from_str(&c).ok()),
    })
}

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

    /// No sandbox yet: `watch_docker` fills it in.
    pub fn pending(probe: Option<Probe>) -> Engine {
        Engine {
            state: RwLock::new(EngineState {
                sandbox: None,
                reachable: false,
                image: None,
                problem: Some("connecting to the Docker engine".into()),
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
                tracing::info!("the Docker engine answers");
            } else {
                self.outages.fetch_add(1, Ordering::SeqCst);
                tracing::error!(
                    problem = problem.as_deref().unwrap_or(""),
                    "the Docker engine is unreachable: new work is refused with 503"
                );
            }
        }
        state.reachable = reachable;
        state.problem = problem;
    }

    fn set_sandbox(&self, sandbox: Arc<dyn Sandbox>, image: String) {
        let mut state = self.write();
        state.sandbox = Some(sandbox);
        state.image = Some(image);
        state.reachable = true;
        state.problem = None;
    }

    /// Outages noticed since start-up.
    fn outages(&self) -> usize {
        self.outages.load(Ordering::SeqCst)
    }

    /// Asks the engine now (when a probe is set), updating the state.
    async fn check_now(&self) -> bool {
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
                    (!up).then(|| "the Docker engine does not answer".to_string()),
                );
                up
            }
            None => self.read().reachable,
        }
    }
}

/// The ping used by the Docker watcher and after a run that could not be judged.
pub fn docker_probe() -> Probe {
    Box::new(|| Box::pin(async { crate::sandbox::docker::connect_engine().await.is_ok() }))
}

/// Connects to Docker (building the image if needed), reaps the containers
/// a crashed service left, hands the sandbox to the workers, then keeps
/// pinging the engine so that the API can answer 503 while it is down.
/// `warm` containers are kept started ahead for the workers (see
/// `sandbox::warm_pool`); 0 turns the pool off.
pub async fn watch_docker(
    engine: Arc<Engine>,
    stop: CancellationToken,
    warm: usize,
    runtime: Option<String>,
) {
    let sandbox = loop {
        // Reachable first: work is accepted while the image is checked or built.
        match crate::sandbox::docker::connect_engine().await {
            Ok(_) => engine.set_reachable(
                true,
                Some("checking the sandbox image (building it if missing)".into()),
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
        let connect =
            crate::sandbox::docker::DockerSandbox::connect(&|line| tracing::info!("image: {line}"));
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = connect => result,
        };
        let result = match (result, &runtime) {
            (Ok(sandbox), Some(name)) => sandbox.with_runtime(name).await,
            (result, _) => result,
        };
        match result {
            Ok(sandbox) => {
                let sandbox =
                    sandbox.with_warm_pool(crate::sandbox::warm_pool::PoolConfig::with_size(warm));
                let reaped = sandbox.reap_orphans().await;
                if reaped > 0 {
                    tracing::warn!(
                        reaped,
                        "removed sandbox containers left behind by an earlier crash"
                    );
                }
                let image = sandbox.image().to_string();
                let sandbox = Arc::new(sandbox);
                engine.set_sandbox(sandbox.clone(), image);
                break sandbox;
            }
            Err(e) => {
                engine.set_reachable(false, Some(e.to_string()));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ENGINE_POLL) => {}
                }
            }
        }
    };
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
                sandbox.reap_orphans().await
            } else {
                0
            };
            if reaped > 0 {
                tracing::warn!(
                    reaped,
                    "removed sandbox containers of processes that are gone"
                );
            }
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

/// Counters for `/metrics`, kept since start-up.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<MetricsInner>,
}

#[derive(Default)]
struct MetricsInner {
    /// (label, failure) → verifications finished.
    outcomes: BTreeMap<(String, String), u64>,
    /// Count per bucket of `DURATION_BUCKETS` (not cumulative), plus +Inf.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    duration_sum: f64,
    duration_count: u64,
    /// Per `callbacks::Outcome`, in `Outcome::ALL`'s order.
    callbacks: [u64; 3],
}

impl Metrics {
    fn record(&self, v: &Verification) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (
            v.label.as_str().to_string(),
            v.failure.clone().unwrap_or_default(),
        );
        *m.outcomes.entry(key).or_default() += 1;
        let seconds = v.duration_ms as f64 / 1000.0;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        m.buckets[bucket] += 1;
        m.duration_sum += seconds;
        m.duration_count += 1;
    }

    pub(crate) fn record_callback(&self, outcome: Outcome) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.callbacks[outcome as usize] += 1;
    }

    /// The mean verification time so far (seconds), for Retry-After.
    pub fn mean_seconds(&self) -> Option<f64> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (m.duration_count > 0).then(|| m.duration_sum / m.duration_count as f64)
    }

    /// The Prometheus text exposition of the counters and the gauges given.
    pub fn render(&self, depth: Depth, workers: usize, engine: &EngineHealth) -> String {
        use std::fmt::Write as _;
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP qtjudge_verifications_total Verifications finished since start-up, by label (tier) and failure code.\n");
        out.push_str("# TYPE qtjudge_verifications_total counter\n");
        for ((label, failure), n) in &m.outcomes {
            let tier = match label.as_str() {
                "flawless" => "1",
                "unrequested_changes" => "2",
                "fail" => "3",
                _ => "",
            };
            let _ = writeln!(
                out,
                "qtjudge_verifications_total{{tier=\"{tier}\",label=\"{label}\",failure=\"{}\"}} {n}",
                failure.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        out.push_str(
            "# HELP qtjudge_verification_duration_seconds Wall time of one verification.\n",
        );
        out.push_str("# TYPE qtjudge_verification_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i];
            let _ = writeln!(
                out,
                "qtjudge_verification_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += m.buckets[DURATION_BUCKETS.len()];
        let _ = writeln!(
            out,
            "qtjudge_verification_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "qtjudge_verification_duration_seconds_sum {}",
            m.duration_sum
        );
        let _ = writeln!(
            out,
            "qtjudge_verification_duration_seconds_count {}",
            m.duration_count
        );
        out.push_str("# HELP qtjudge_callbacks_total Callback attempts since start-up: delivered, retried (failed, another attempt scheduled), failed (given up).\n");
        out.push_str("# TYPE qtjudge_callbacks_total counter\n");
        for outcome in Outcome::ALL {
            let _ = writeln!(
                out,
                "qtjudge_callbacks_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                m.callbacks[outcome as usize]
            );
        }
        let gauges = [
            (
                "qtjudge_queue_depth",
                "Jobs accepted and waiting for a worker.",
                depth.queued,
            ),
            (
                "qtjudge_verifications_running",
                "Verifications running now (one sandbox container each).",
                depth.running,
            ),
            (
                "qtjudge_workers",
                "Verifications that may run at once.",
                workers,
            ),
            (
                "qtjudge_engine_up",
                "1 when the Docker engine answers.",
                usize::from(engine.reachable),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

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
    pub store: Store,
    pub config: JobsConfig,
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    tasks: Mutex<HashMap<String, Arc<PreparedTask>>>,
    wake: Notify,
    finished: broadcast::Sender<Finished>,
    /// Cancelled at shutdown: no new work is accepted or claimed.
    stopping: CancellationToken,
    running: AtomicUsize,
}

impl Jobs {
    pub fn new(store: Store, config: JobsConfig, engine: Arc<Engine>) -> Arc<Jobs> {
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
        let (id, batch_id) = (job.id.clone(), job.batch_id.clone());
        let run = std::panic::AssertUnwindSafe(self.run(job, sandbox));
        if let Err(payload) = run.catch_unwind().await {
            let why = format!(
                "qtjudge bug: panicked while handling the job: {}; please report it",
                verify::panic_message(payload.as_ref())
            );
            tracing::error!(job = %id, error = %why, "a job's handling panicked; the worker goes on");
            match self.store.finish(&id, Status::Error, None, Some(why)).await {
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
            tracing::info!(job = %job.id, model = %job.model, failure = v.failure.as_deref().unwrap_or(""), "the uploaded app cannot be unpacked");
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
        tracing::info!(job = %job.id, model = %job.model, label = v.label.as_str(), failure = v.failure.as_deref().unwrap_or(""), ms = v.duration_ms, "verification finished");
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
        let failed = |job: &Claimed, code: &str, reason: String| {
            let task = if job.task.is_empty() {
                crate::task::FALLBACK_TASK
            } else {
                &job.task
            };
            let mut v = Verification::unjudged(&job.model, task, "none");
            v.tier = Some(3);
            v.label = Label::Fail;
            v.failure = Some(code.to_string());
            v.reason = reason;
            v.task_choice = job.task_choice.clone();
            v
        };
        match unpacked {
            Ok(Ok((bundle, choice))) => {
                if let Some(choice) = choice {
                    if let Err(e) = self.store.set_task(&job.id, &choice).await {
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
                "unreadable_input",
                format!("unpacking the upload failed: {e}"),
            )),
        }
    }

    /// Not judged because of the engine (it may be back already): the job
    /// goes back to the queue, a bounded number of times.
    async fn retry_later(&self, job: &Claimed, why: &str) {
        match self.store.requeue_after_engine_fault(&job.id, why).await {
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
        if let Err(e) = self.store.finish(&job.id, status, v, error).await {
            // Left `running`: the next start-up runs it again.
            tracing::error!(job = %job.id, error = %e, "cannot store a result");
            return;
        }
        let _ = self.finished.send(Finished {
            id: job.id.clone(),
            batch_id: job.batch_id.clone(),
        });
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
        match self.jobs.store.recover_running_now().await {
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

impl Store {
    /// Puts every `running` job back in the queue (at shutdown, when they
    /// are all this process's), without counting it as a failed attempt.
    async fn recover_running_now(&self) -> Result<usize> {
        self.call(|conn| {
            conn.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, attempts = MAX(attempts - 1, 0) WHERE status = 'running'",
                [],
            )
            .map_err(sql("requeueing interrupted jobs"))
        })
        .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sandbox::{SandboxError, SandboxOutcome, SandboxRequest};

    fn tasks_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks")
    }

    fn job(output: &str) -> NewJob {
        NewJob {
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
                Err(SandboxError::EngineUnavailable(
                    "fake engine is down".into(),
                ))
            })
        }
    }

    fn jobs_with(dir: &Path, workers: usize, max_queue: usize) -> Arc<Jobs> {
        let store = Store::open(dir).unwrap();
        let engine = Arc::new(Engine::ready(Arc::new(DownSandbox), None, None));
        Jobs::new(
            store,
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

    #[tokio::test]
    async fn an_accepted_job_is_on_disk_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store
            .enqueue(vec![job("print(1)")], None, 10)
            .await
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let record = store.job(&ids[0]).await.unwrap().expect("the job is there");
        assert_eq!(record.status, Status::Queued);
        assert_eq!(record.metadata, Some(serde_json::json!({"run": 7})));
        assert_eq!(
            record.task_choice,
            Some(TaskChoice::given("reset-conversation"))
        );
    }

    #[tokio::test]
    async fn a_store_made_before_bundles_and_task_choices_gains_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        // The first version's jobs table, with a job queued in it.
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE batches (id TEXT PRIMARY KEY, task TEXT NOT NULL, created_at INTEGER NOT NULL);
                 CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                     batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE, task TEXT NOT NULL,
                     model TEXT NOT NULL, output TEXT NOT NULL, metadata TEXT, status TEXT NOT NULL,
                     result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
                     created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);
                 INSERT INTO jobs (id, task, model, output, status, created_at)
                     VALUES ('old', 'reset-conversation', 'm', 'print(1)', 'queued', 1);",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let old = store
            .job("old")
            .await
            .unwrap()
            .expect("the old job is kept");
        assert_eq!((old.status, old.task_choice), (Status::Queued, None));
        let ids = store.enqueue(vec![job("a")], None, 10).await.unwrap();
        let new = store.job(&ids[0]).await.unwrap().unwrap();
        assert_eq!(new.task_choice.map(|c| c.how), Some("given".into()));
        let claimed = store.claim_next().await.unwrap().unwrap();
        assert_eq!(claimed.id, "old", "the old job is first in the queue");
        assert!(claimed.task_choice.is_none() && claimed.bundle.is_none());
        // Opening again adds nothing twice.
        drop(store);
        Store::open(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_whole_submission() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.enqueue(vec![job("a")], None, 2).await.unwrap();
        let refused = store.enqueue(vec![job("b"), job("c")], None, 2).await;
        assert!(
            matches!(refused, Err(JobsError::QueueFull { queued: 1, max: 2 })),
            "{refused:?}"
        );
        assert_eq!(
            store.depth().await.unwrap().queued,
            1,
            "nothing of a refused batch is kept"
        );
    }

    #[tokio::test]
    async fn jobs_left_running_by_a_crash_are_queued_again_then_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store
            .enqueue(vec![job("a"), job("b")], None, 10)
            .await
            .unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            let claimed = store.claim_next().await.unwrap().expect("a job to claim");
            assert_eq!(claimed.id, ids[0], "oldest first");
            let recovered = store.recover().await.unwrap();
            let expected = if attempt < MAX_ATTEMPTS {
                Recovered {
                    requeued: 1,
                    given_up: 0,
                }
            } else {
                Recovered {
                    requeued: 0,
                    given_up: 1,
                }
            };
            assert_eq!(recovered, expected, "attempt {attempt}");
        }
        let given_up = store.job(&ids[0]).await.unwrap().unwrap();
        assert_eq!(given_up.status, Status::Error);
        assert!(given_up.error.unwrap().contains("given up"));
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
        let size = || std::fs::metadata(jobs.store.path()).unwrap().len();
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
            (result.tier, result.failure.as_deref()),
            (Some(3), Some("no_code"))
        );
        assert_eq!(
            result.task_choice.map(|c| c.how),
            Some("given".into()),
            "the job's task choice is in its result"
        );
        assert!(jobs
            .metrics
            .render(Depth::default(), 2, &jobs.engine.health())
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
        let engine = Arc::new(Engine::ready(Arc::new(SilentSandbox), None, None));
        let jobs = Jobs::new(
            Store::open(dir.path()).unwrap(),
            JobsConfig {
                workers: 1,
                max_queue: 10,
                tasks_dir: tasks_dir(),
                cache_dir: None,
                retention: None,
            },
            engine,
        );
        let pool = jobs.start();
        let correct = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/outputs/reset-conversation/correct.py"),
        )
        .unwrap();
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
        let engine_up: Probe = Box::new(|| Box::pin(async { true }));
        let engine = Arc::new(Engine::ready(
            Arc::new(PanickySandbox),
            None,
            Some(engine_up),
        ));
        let jobs = Jobs::new(
            Store::open(dir.path()).unwrap(),
            JobsConfig {
                workers: 1,
                max_queue: 10,
                tasks_dir: tasks_dir(),
                cache_dir: None,
                retention: None,
            },
            engine,
        );
        let correct = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/outputs/reset-conversation/correct.py"),
        )
        .unwrap();
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
                (result.tier, result.failure.as_deref()),
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
        let engine_up: Probe = Box::new(|| Box::pin(async { true }));
        let engine = Arc::new(Engine::ready(sandbox, None, Some(engine_up)));
        let jobs = Jobs::new(
            Store::open(dir.path()).unwrap(),
            JobsConfig {
                workers: 1,
                max_queue: 10,
                tasks_dir: tasks_dir(),
                cache_dir: None,
                retention: None,
            },
            engine,
        );
        let correct = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/outputs/reset-conversation/correct.py"),
        )
        .unwrap();
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
            (result.tier, result.failure.as_deref()),
            (Some(3), Some("output_too_large"))
        );
        assert!(result.reason.contains("64 levels"), "{}", result.reason);
    }

    #[tokio::test]
    async fn a_run_lost_to_an_engine_outage_goes_back_to_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let engine_down: Probe = Box::new(|| Box::pin(async { false }));
        let engine = Arc::new(Engine::ready(
            Arc::new(DownSandbox),
            None,
            Some(engine_down),
        ));
        let jobs = Jobs::new(
            Store::open(dir.path()).unwrap(),
            JobsConfig {
                workers: 1,
                max_queue: 10,
                tasks_dir: tasks_dir(),
                cache_dir: None,
                retention: None,
            },
            engine,
        );
        let correct = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/outputs/reset-conversation/correct.py"),
        )
        .unwrap();
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
                Err(SandboxError::Engine {
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
        let store = Store::open(dir.path()).unwrap();
        for id in ids {
            assert_eq!(
                store.job(&id).await.unwrap().unwrap().status,
                Status::Queued
            );
        }
    }

    /// Counts the clean-ups after outages.
    #[derive(Default)]
    struct CleanedSandbox(AtomicUsize);

    impl Sandbox for CleanedSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async { Err(SandboxError::EngineUnavailable("fake".into())) })
        }
        fn after_outage(&self) -> BoxFuture<'_, ()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }
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
