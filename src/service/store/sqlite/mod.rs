//! The embedded job store: one SQLite file (WAL) in the data folder, one
//! connection behind a mutex (SQLite writes one transaction at a time
//! anyway, and one service's load is a few rows a second), every call on
//! tokio's blocking pool. Only one process uses it (the data-dir lock), so
//! a lease never expires here: its token only fences off writes from a
//! claim that recovery or shutdown ended. Columns are read by name.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::columns::{from_json, to_json, to_json_opt};
use super::{
    new_id, now_ms, ArtifactData, BatchDetail, BatchListing, BatchRecord, CallbackAttempt, Claimed,
    Depth, JobInput, JobRecord, JobStore, Lease, NewBatch, NewJob, PendingDelivery, Recovered,
    Result, Status, StoreError, MAX_ATTEMPTS,
};
use crate::task::TaskChoice;
use crate::verify::Verification;

mod deliveries;
mod migrate;
#[cfg(test)]
mod tests;

/// The store's file name inside the data folder.
pub const DB_FILE: &str = "qtjudge.db";

/// What a failed statement was doing, for [`StoreError::Query`].
fn sql(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Query {
        doing,
        source: Box::new(source),
    }
}

/// The columns of a job after its result, shared by both readings below;
/// its delivery's columns are named as `deliveries::callback_status` reads them.
macro_rules! job_tail_columns {
    () => {
        "error, attempts, created_at, started_at, finished_at, callback_url, task_choice,
     (SELECT state FROM callbacks WHERE subject = jobs.id) AS callback_state,
     (SELECT attempts FROM callbacks WHERE subject = jobs.id) AS callback_attempts,
     (SELECT last_error FROM callbacks WHERE subject = jobs.id) AS callback_error"
    };
}

const JOB_COLUMNS: &str = concat!(
    "id, batch_id, task, model, sample, metadata, status, result, ",
    job_tail_columns!()
);

/// As [`JOB_COLUMNS`] for a batch's progress: no metadata, and a result
/// without its bulky parts (script, steps, static and behaviour reports,
/// timings), so polling a batch costs what its answer holds, not what its
/// answers carried. SQLite trims the JSON; the service never holds it whole.
const JOB_SUMMARY_COLUMNS: &str = concat!(
    "id, batch_id, task, model, sample, NULL AS metadata, status,
     CASE WHEN result IS NULL THEN NULL ELSE json_set(result, '$.script', NULL, '$.steps', json('[]'),
        '$.static', NULL, '$.behaviour', NULL, '$.timings', json('[]'), '$.missing', json('[]'),
        '$.extraction', NULL, '$.bundle', NULL) END AS result, ",
    job_tail_columns!()
);

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (or creates) `data_dir/qtjudge.db` and brings its schema up
    /// to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let location = path.display().to_string();
        let open_error = |source: rusqlite::Error| StoreError::Open {
            location: location.clone(),
            source: Box::new(source),
        };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        // Pages freed by pruning go back to the file system (see `prune`).
        // Set before the first table exists; an older store converts once.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(open_error)?;
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(open_error)?;
        if auto_vacuum != 2 {
            tracing::info!(path = %location, "converting the store to incremental vacuum (once)");
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
        migrate::run(&mut conn, &location)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
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
        .map_err(|e| StoreError::Thread(e.to_string()))?
    }
}

fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        job_id: lease.job_id.clone(),
        token: lease.token,
    }
}

impl JobStore for SqliteStore {
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        batch: Option<NewBatch>,
        max_queue: usize,
    ) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction().map_err(sql("starting an enqueue"))?;
            let queued: i64 = tx
                .query_row(
                    "SELECT COUNT(*) AS queued FROM jobs WHERE status = 'queued'",
                    [],
                    |r| r.get("queued"),
                )
                .map_err(sql("counting queued jobs"))?;
            let queued = queued as usize;
            if queued + jobs.len() > max_queue {
                return Err(StoreError::QueueFull { queued, max: max_queue });
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
                        "INSERT INTO jobs (id, batch_id, task, model, output, metadata, status, created_at, callback_url, upload, task_choice, sample)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(sql("preparing a job insert"))?;
                for job in jobs {
                    let id = new_id();
                    let metadata = job.metadata.map(|m| m.to_string());
                    let upload = to_json_opt(job.upload.as_ref(), "an upload")?;
                    let choice = to_json_opt(job.task_choice.as_ref(), "a task choice")?;
                    insert
                        .execute(params![id, batch_id, job.task, job.model, job.output, metadata, now, job.callback_url, upload, choice, job.sample])
                        .map_err(sql("inserting a job"))?;
                    ids.push(id);
                }
            }
            tx.commit().map_err(sql("committing new jobs"))?;
            Ok(ids)
        }))
    }

    fn claim_next(&self) -> BoxFuture<'_, Result<Option<Claimed>>> {
        Box::pin(self.call(|conn| {
            conn.query_row(
                "UPDATE jobs SET status = 'running', started_at = ?1, attempts = attempts + 1,
                     lease = lease + 1
                 WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1)
                 RETURNING id, batch_id, task, model, output, bundle, task_choice, upload, lease",
                params![now_ms()],
                |r| {
                    let id: String = r.get("id")?;
                    let bundle: Option<String> = r.get("bundle")?;
                    let choice: Option<String> = r.get("task_choice")?;
                    let upload: Option<String> = r.get("upload")?;
                    Ok(Claimed {
                        lease: Lease {
                            job_id: id.clone(),
                            token: r.get("lease")?,
                        },
                        id,
                        batch_id: r.get("batch_id")?,
                        task: r.get("task")?,
                        model: r.get("model")?,
                        output: r.get("output")?,
                        // Written by `enqueue` from a checked upload: unreadable only if corrupted.
                        upload: from_json(upload),
                        bundle: from_json(bundle),
                        task_choice: from_json(choice),
                    })
                },
            )
            .optional()
            .map_err(sql("claiming a job"))
        }))
    }

    fn set_task<'a>(
        &'a self,
        lease: &'a Lease,
        choice: &'a TaskChoice,
    ) -> BoxFuture<'a, Result<()>> {
        let (lease, task) = (lease.clone(), choice.task.clone());
        let choice = to_json(choice, "a task choice");
        Box::pin(async move {
            let choice = choice?;
            self.call(move |conn| {
                let updated = conn
                    .execute(
                        "UPDATE jobs SET task = ?3, task_choice = ?4
                         WHERE id = ?1 AND lease = ?2 AND status = 'running'",
                        params![lease.job_id, lease.token, task, choice],
                    )
                    .map_err(sql("recording a job's task"))?;
                if updated == 0 {
                    return Err(lease_lost(&lease));
                }
                Ok(())
            })
            .await
        })
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        status: Status,
        result: Option<&'a Verification>,
        error: Option<String>,
    ) -> BoxFuture<'a, Result<()>> {
        let lease = lease.clone();
        let artifacts: Vec<(String, String, Vec<u8>)> = result
            .map(|v| {
                v.artifacts
                    .iter()
                    .map(|a| (a.name.clone(), a.media_type.clone(), a.data.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let result = to_json_opt(result, "a result");
        Box::pin(async move {
            let result = result?;
            self.call(move |conn| {
                let tx = conn
                    .transaction()
                    .map_err(sql("starting to store a result"))?;
                let now = now_ms();
                let updated = tx
                    .execute(
                        "UPDATE jobs SET status = ?3, result = ?4, error = ?5, finished_at = ?6
                         WHERE id = ?1 AND lease = ?2 AND status = 'running'",
                        params![
                            lease.job_id,
                            lease.token,
                            status.as_str(),
                            result,
                            error,
                            now
                        ],
                    )
                    .map_err(sql("storing a result"))?;
                if updated == 0 {
                    return Err(lease_lost(&lease));
                }
                for (name, media_type, data) in artifacts {
                    tx.execute(
                        "INSERT OR REPLACE INTO artifacts (job_id, name, media_type, data) VALUES (?1, ?2, ?3, ?4)",
                        params![lease.job_id, name, media_type, data],
                    )
                    .map_err(sql("storing an artifact"))?;
                }
                if status.is_finished() {
                    deliveries::queue_on_finish(&tx, &lease.job_id, now)
                        .map_err(sql("queueing a finished job's callbacks"))?;
                }
                tx.commit().map_err(sql("committing a result"))
            })
            .await
        })
    }

    fn requeue_after_engine_fault<'a>(
        &'a self,
        lease: &'a Lease,
        why: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        let (lease, why) = (lease.clone(), why.to_string());
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction().map_err(sql("starting a requeue"))?;
            let now = now_ms();
            let given_up = tx
                .execute(
                    "UPDATE jobs SET status = 'error', finished_at = ?3,
                     error = 'the sandbox engine failed this verification ' || attempts || ' times (last: ' || ?4
                             || '); given up: check the engine (docker info, its log) and submit the answer again'
                     WHERE id = ?1 AND lease = ?2 AND status = 'running' AND attempts >= ?5",
                    params![lease.job_id, lease.token, now, why, MAX_ATTEMPTS],
                )
                .map_err(sql("giving up on a job"))?;
            if given_up > 0 {
                deliveries::queue_on_finish(&tx, &lease.job_id, now)
                    .map_err(sql("queueing a finished job's callbacks"))?;
            } else {
                let requeued = tx
                    .execute(
                        "UPDATE jobs SET status = 'queued', started_at = NULL
                         WHERE id = ?1 AND lease = ?2 AND status = 'running'",
                        params![lease.job_id, lease.token],
                    )
                    .map_err(sql("requeueing a job"))?;
                if requeued == 0 {
                    return Err(lease_lost(&lease));
                }
            }
            tx.commit().map_err(sql("committing a requeue"))?;
            Ok(given_up == 0)
        }))
    }

    fn recover(&self) -> BoxFuture<'_, Result<Recovered>> {
        Box::pin(self.call(|conn| {
            let tx = conn.transaction().map_err(sql("starting recovery"))?;
            let now = now_ms();
            let given_up: Vec<String> = tx
                .prepare(
                    "UPDATE jobs SET status = 'error', finished_at = ?1,
                     error = 'the service stopped while running this answer ' || attempts || ' times; given up'
                     WHERE status = 'running' AND attempts >= ?2
                     RETURNING id",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![now, MAX_ATTEMPTS], |r| r.get("id"))?
                        .collect()
                })
                .map_err(sql("giving up on jobs"))?;
            for id in &given_up {
                deliveries::queue_on_finish(&tx, id, now)
                    .map_err(sql("queueing a finished job's callbacks"))?;
            }
            let requeued = tx
                .execute(
                    "UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'",
                    [],
                )
                .map_err(sql("requeueing interrupted jobs"))?;
            tx.commit().map_err(sql("committing recovery"))?;
            Ok(Recovered {
                requeued,
                given_up: given_up.len(),
            })
        }))
    }

    fn release_claims(&self) -> BoxFuture<'_, Result<usize>> {
        // Every running job is this process's (the data-dir lock).
        Box::pin(self.call(|conn| {
            conn.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL, attempts = MAX(attempts - 1, 0)
                 WHERE status = 'running'",
                [],
            )
            .map_err(sql("requeueing interrupted jobs"))
        }))
    }

    fn job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobRecord>>> {
        let id = id.to_string();
        Box::pin(self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                job_record,
            )
            .optional()
            .map_err(sql("reading a job"))
        }))
    }

    fn job_input<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobInput>>> {
        let id = id.to_string();
        Box::pin(self.call(move |conn| {
            conn.query_row(
                "SELECT output, upload FROM jobs WHERE id = ?1",
                params![id],
                |r| {
                    let upload: Option<String> = r.get("upload")?;
                    Ok(JobInput {
                        output: r.get("output")?,
                        upload: from_json(upload),
                    })
                },
            )
            .optional()
            .map_err(sql("reading a job's input"))
        }))
    }

    fn artifact<'a>(
        &'a self,
        job_id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ArtifactData>>> {
        let (job_id, name) = (job_id.to_string(), name.to_string());
        Box::pin(self.call(move |conn| {
            conn.query_row(
                "SELECT media_type, data FROM artifacts WHERE job_id = ?1 AND name = ?2",
                params![job_id, name],
                |r| Ok((r.get("media_type")?, r.get("data")?)),
            )
            .optional()
            .map_err(sql("reading an artifact"))
        }))
    }

    fn batch_unfinished<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<usize>>> {
        let id = id.to_string();
        Box::pin(self.call(move |conn| {
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM jobs WHERE batch_id = ?1 AND status NOT IN ('done', 'error'))
                     AS unfinished
                 FROM batches WHERE id = ?1",
                params![id],
                |r| r.get::<_, i64>("unfinished"),
            )
            .optional()
            .map(|n| n.map(|n| n as usize))
            .map_err(sql("counting a batch's unfinished jobs"))
        }))
    }

    fn batch_with<'a>(
        &'a self,
        id: &'a str,
        detail: BatchDetail,
    ) -> BoxFuture<'a, Result<Option<BatchRecord>>> {
        let columns = match detail {
            BatchDetail::Full => JOB_COLUMNS,
            BatchDetail::Summary => JOB_SUMMARY_COLUMNS,
        };
        let id = id.to_string();
        Box::pin(self.call(move |conn| {
            let head = conn
                .query_row(
                    "SELECT id, task, created_at, callback_url,
                            (SELECT state FROM callbacks WHERE subject = batches.id) AS callback_state,
                            (SELECT attempts FROM callbacks WHERE subject = batches.id) AS callback_attempts,
                            (SELECT last_error FROM callbacks WHERE subject = batches.id) AS callback_error
                     FROM batches WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok(BatchRecord {
                            id: r.get("id")?,
                            task: r.get("task")?,
                            created_at: r.get("created_at")?,
                            jobs: Vec::new(),
                            callback: deliveries::callback_status(r)?,
                        })
                    },
                )
                .optional()
                .map_err(sql("reading a batch"))?;
            let Some(mut batch) = head else {
                return Ok(None);
            };
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {columns} FROM jobs WHERE batch_id = ?1 ORDER BY seq"
                ))
                .map_err(sql("reading a batch's jobs"))?;
            batch.jobs = statement
                .query_map(params![id], job_record)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql("reading a batch's jobs"))?;
            Ok(Some(batch))
        }))
    }

    fn recent_jobs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<JobRecord>>> {
        Box::pin(self.call(move |conn| {
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
        }))
    }

    fn recent_batches(&self, limit: usize) -> BoxFuture<'_, Result<Vec<BatchListing>>> {
        Box::pin(self.call(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT b.id AS id, b.task AS task, b.created_at AS created_at,
                            COUNT(j.id) AS jobs,
                            COALESCE(SUM(j.status IN ('done', 'error')), 0) AS finished
                     FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id
                     GROUP BY b.id ORDER BY b.created_at DESC LIMIT ?1",
                )
                .map_err(sql("listing batches"))?;
            let rows = statement
                .query_map(params![limit as i64], |r| {
                    Ok(BatchListing {
                        id: r.get("id")?,
                        task: r.get("task")?,
                        created_at: r.get("created_at")?,
                        jobs: r.get::<_, i64>("jobs")? as usize,
                        finished: r.get::<_, i64>("finished")? as usize,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql("listing batches"))?;
            Ok(rows)
        }))
    }

    fn depth(&self) -> BoxFuture<'_, Result<Depth>> {
        Box::pin(self.call(|conn| {
            conn.query_row(
                "SELECT COALESCE(SUM(status = 'queued'), 0) AS queued,
                        COALESCE(SUM(status = 'running'), 0) AS running
                 FROM jobs",
                [],
                |r| {
                    Ok(Depth {
                        queued: r.get::<_, i64>("queued")? as usize,
                        running: r.get::<_, i64>("running")? as usize,
                    })
                },
            )
            .map_err(sql("counting jobs"))
        }))
    }

    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<usize>> {
        Box::pin(self.call(move |conn| {
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
        }))
    }

    fn pending_callbacks(&self) -> BoxFuture<'_, Result<Vec<PendingDelivery>>> {
        Box::pin(self.call(deliveries::pending))
    }

    fn callback_body<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        let id = id.to_string();
        Box::pin(self.call(move |conn| deliveries::body(conn, &id)))
    }

    fn set_callback_body<'a>(&'a self, id: &'a str, body: String) -> BoxFuture<'a, Result<()>> {
        let id = id.to_string();
        Box::pin(self.call(move |conn| deliveries::set_body(conn, &id, &body)))
    }

    fn callback_attempted<'a>(
        &'a self,
        id: &'a str,
        attempt: CallbackAttempt,
    ) -> BoxFuture<'a, Result<()>> {
        let id = id.to_string();
        Box::pin(self.call(move |conn| deliveries::attempted(conn, &id, &attempt)))
    }
}

/// A job from the columns of [`JOB_COLUMNS`] (or its summary's).
fn job_record(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let metadata: Option<String> = r.get("metadata")?;
    let status: String = r.get("status")?;
    let result: Option<String> = r.get("result")?;
    let choice: Option<String> = r.get("task_choice")?;
    Ok(JobRecord {
        id: r.get("id")?,
        batch_id: r.get("batch_id")?,
        task: r.get("task")?,
        model: r.get("model")?,
        sample: r.get("sample")?,
        metadata: from_json(metadata),
        status: Status::parse(&status),
        // A result written by an older, incompatible version reads as none.
        result: from_json(result),
        error: r.get("error")?,
        attempts: r.get("attempts")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        callback: deliveries::callback_status(r)?,
        task_choice: from_json(choice),
    })
}
