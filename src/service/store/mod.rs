//! The service's job store: one SQLite file (WAL) of verifications, their
//! screenshots, batches and callback deliveries. The store is the queue: a
//! job is a row, accepted only once committed; workers claim the oldest
//! `queued` row. So a crash loses nothing accepted: rows left `running` go
//! back to `queued` at start-up. All of the service's SQL is in this
//! module.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::task::TaskChoice;
use crate::verify::Verification;

mod deliveries;
mod records;
mod schema;
#[cfg(test)]
mod tests;

pub use deliveries::PendingDelivery;
pub(crate) use records::Claimed;
pub use records::{
    BatchDetail, BatchRecord, CallbackStatus, DeliveryState, Depth, JobRecord, NewBatch, NewJob,
    Recovered, Status, BATCH_FINISHED, VERIFICATION_FINISHED,
};

/// The store's file name inside the data folder.
pub const DB_FILE: &str = "qtjudge.db";
/// A job that was running when the service died, or whose run the engine
/// failed, this many times is given up on (`error`, saying why): the same
/// answer keeps taking the service down, or the engine is not fit to run it.
pub const MAX_ATTEMPTS: i64 = 3;

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

fn sql(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> JobsError {
    move |source| JobsError::Sql { doing, source }
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
        schema::migrate(&conn).map_err(open_error)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, off the async threads.
    async fn call<T, F>(&self, f: F) -> Result<T>
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
    pub(crate) async fn claim_next(&self) -> Result<Option<Claimed>> {
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
    pub(crate) async fn set_task(&self, id: &str, choice: &TaskChoice) -> Result<()> {
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
    pub(crate) async fn finish(
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
    pub(crate) async fn requeue_after_engine_fault(&self, id: &str, why: &str) -> Result<bool> {
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
                            deliveries::callback_status(r, 3)?,
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
            deliveries::prune(&tx).map_err(sql("pruning callbacks"))?;
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

    /// Puts every `running` job back in the queue (at shutdown, when they
    /// are all this process's), without counting it as a failed attempt.
    pub(crate) async fn recover_running_now(&self) -> Result<usize> {
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
        callback: deliveries::callback_status(r, 12)?,
        task_choice: choice.and_then(|c| serde_json::from_str(&c).ok()),
    })
}
