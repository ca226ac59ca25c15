//! The shared job store: one PostgreSQL schema that any number of
//! `qtjudge serve` replicas use at once. A claim takes the oldest queued
//! job with `FOR UPDATE SKIP LOCKED`, so replicas never wait on each other,
//! and gives it a lease that expires (the database's clock) unless this
//! process's heartbeat renews it: a replica that dies has its jobs run
//! again by another, counted in `attempts`. Every write of a job's outcome
//! names its lease's token and an unexpired lease, so a late write from a
//! replica that lost its lease changes nothing. Columns are read by name.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_util::future::BoxFuture;
use tokio_postgres::{NoTls, Row, Transaction};
use tokio_util::sync::CancellationToken;

use super::columns::{from_json, to_json, to_json_opt};
use super::{
    new_id, now_ms, ArtifactData, BatchDetail, BatchListing, BatchRecord, CallbackAttempt,
    CallbackStatus, Claimed, DeliveryState, Depth, JobInput, JobRecord, JobStore, Lease, NewBatch,
    NewJob, PendingDelivery, Recovered, Result, Status, StoreError, StoreEvent, BATCH_FINISHED,
    MAX_ATTEMPTS, VERIFICATION_FINISHED,
};
use crate::task::TaskChoice;
use crate::verify::Verification;

mod listen;
mod replicas;
mod schema;
#[cfg(test)]
pub(crate) mod tests;

/// How long a claim lasts without a heartbeat, by default: long enough
/// for a busy database to answer a renewal, short enough that a dead
/// replica's jobs wait little.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// How a store behaves besides its URL.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a claim (of a job or a delivery) lasts unless renewed.
    pub lease_ttl: Duration,
    /// Renew this process's claims (off only in tests that play a replica
    /// that stopped answering).
    pub heartbeat: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            lease_ttl: DEFAULT_LEASE_TTL,
            heartbeat: true,
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// Names this process in `lease_holder`: whose claims recovery ends,
    /// shutdown releases and the heartbeat renews.
    holder: String,
    lease_secs: f64,
    /// The NOTIFY channel of this schema's news (see `listen`).
    channel: String,
    /// News from every process on this schema, as the listener hears it.
    events: tokio::sync::broadcast::Sender<StoreEvent>,
    /// Ends the heartbeat and the listener when the store is dropped.
    stop: CancellationToken,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A URL without its password, for messages.
fn location(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// A `postgres://` URL as messages may show it.
pub(super) fn redacted(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => location(&config),
        Err(_) => "postgres://(an unreadable URL)".to_string(),
    }
}

/// Whether a database library's error means the server is out of reach
/// (down, restarting, the connection cut) rather than a statement's fault.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        // Class 08: connection exceptions; 57P0x: the server shutting down
        // or starting.
        let code = db.code().code();
        return code.starts_with("08") || code.starts_with("57P");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// What a failed statement was doing, for [`StoreError::Query`] (or
/// [`StoreError::Unavailable`] when the server is out of reach).
fn pg(doing: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |source| {
        if unreachable(&source) {
            StoreError::Unavailable {
                doing,
                source: Box::new(source),
            }
        } else {
            StoreError::Query {
                doing,
                source: Box::new(source),
            }
        }
    }
}

fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        job_id: lease.job_id.clone(),
        token: lease.token,
    }
}

/// TEXT refuses NUL characters; a model's name or an error may hold one.
fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`; the
    /// schema is the connection's `search_path`, `public` by default) and
    /// brings the schema up to date.
    pub async fn open(url: &str, options: Options) -> Result<PostgresStore> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|source| StoreError::Connect {
                location: "of the --store URL".to_string(),
                source: Box::new(source),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let location = location(&config);
        let pg_config = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: a store that is down answers "unavailable" in
        // seconds instead of holding requests.
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source: Box::new(source),
            })?;
        let mut client = pool.get().await.map_err(|source| StoreError::Connect {
            location: location.clone(),
            source: Box::new(source),
        })?;
        schema::run(&mut client, &location).await?;
        let schema: String = client
            .query_one("SELECT current_schema() AS schema", &[])
            .await
            .map_err(pg("reading the schema's name"))?
            .get("schema");
        drop(client);
        let channel = listen::channel(&schema);
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let store = PostgresStore {
            pool,
            holder: format!("{hostname}/{}/{}", std::process::id(), new_id()),
            lease_secs: options.lease_ttl.as_secs_f64(),
            channel,
            events,
            stop: CancellationToken::new(),
        };
        tokio::spawn(listen::listen(
            pg_config,
            store.channel.clone(),
            store.events.clone(),
            store.stop.clone(),
        ));
        if options.heartbeat {
            tokio::spawn(heartbeat(
                store.pool.clone(),
                store.holder.clone(),
                options.lease_ttl,
                store.stop.clone(),
            ));
        }
        tracing::info!(store = %location, holder = %store.holder, "job store: PostgreSQL");
        Ok(store)
    }

    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|source| StoreError::Unavailable {
                doing: "connecting",
                source: Box::new(source),
            })
    }
}

/// Renews this process's claims, a third of their lifetime apart, until
/// the store is dropped. A claim that expired meanwhile stays expired: it
/// may be another replica's already.
async fn heartbeat(pool: Pool, holder: String, ttl: Duration, stop: CancellationToken) {
    let secs = ttl.as_secs_f64();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        let renewed = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $2::float8)
                     WHERE lease_holder = $1 AND status = 'running' AND lease_expires_at > now()",
                    &[&holder, &secs],
                )
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(
                    "UPDATE callbacks SET held_until = now() + make_interval(secs => $2::float8)
                     WHERE holder = $1 AND state = 'pending' AND held_until > now()",
                    &[&holder, &secs],
                )
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = renewed.await {
            tracing::warn!(error = %e, "cannot renew this replica's leases; they expire unless the store answers soon");
        }
    }
}

/// The columns of a job after its result.
const JOB_TAIL: &str =
    "error, attempts, created_at, started_at, finished_at, callback_url, task_choice,
     (SELECT state FROM callbacks WHERE subject = jobs.id) AS callback_state,
     (SELECT attempts FROM callbacks WHERE subject = jobs.id) AS callback_attempts,
     (SELECT last_error FROM callbacks WHERE subject = jobs.id) AS callback_error";

fn job_columns(detail: BatchDetail) -> String {
    match detail {
        BatchDetail::Full => {
            format!("id, batch_id, task, model, sample, metadata, status, result, {JOB_TAIL}")
        }
        BatchDetail::Summary => format!(
            "id, batch_id, task, model, sample, NULL::text AS metadata, status, result_summary AS result, {JOB_TAIL}"
        ),
    }
}

/// A result without its bulky parts (script, steps, static and behaviour
/// reports, timings…), as SQLite's summary columns trim it.
fn summary(result: &serde_json::Value) -> serde_json::Value {
    let mut light = result.clone();
    if let Some(map) = light.as_object_mut() {
        for (key, empty) in [
            ("script", serde_json::Value::Null),
            ("steps", serde_json::json!([])),
            ("static", serde_json::Value::Null),
            ("behaviour", serde_json::Value::Null),
            ("timings", serde_json::json!([])),
            ("missing", serde_json::json!([])),
            ("extraction", serde_json::Value::Null),
            ("bundle", serde_json::Value::Null),
        ] {
            map.insert(key.to_string(), empty);
        }
    }
    light
}

fn job_record(r: &Row) -> JobRecord {
    let metadata: Option<String> = r.get("metadata");
    let status: String = r.get("status");
    let result: Option<String> = r.get("result");
    let choice: Option<String> = r.get("task_choice");
    JobRecord {
        id: r.get("id"),
        batch_id: r.get("batch_id"),
        task: r.get("task"),
        model: r.get("model"),
        sample: r.get("sample"),
        metadata: from_json(metadata),
        status: Status::parse(&status),
        result: from_json(result),
        error: r.get("error"),
        attempts: r.get("attempts"),
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        callback: callback_status(r),
        task_choice: from_json(choice),
    }
}

fn callback_status(r: &Row) -> Option<CallbackStatus> {
    let url: String = r.get::<_, Option<String>>("callback_url")?;
    let state = match r.get::<_, Option<String>>("callback_state").as_deref() {
        Some("delivered") => DeliveryState::Delivered,
        Some("failed") => DeliveryState::Failed,
        _ => DeliveryState::Pending,
    };
    Some(CallbackStatus {
        url,
        state,
        attempts: r.get::<_, Option<i64>>("callback_attempts").unwrap_or(0),
        last_error: r.get("callback_error"),
    })
}

/// Queues the deliveries a job's finish calls for (as the SQLite store's
/// `deliveries::queue_on_finish`). The batch's row is locked before its
/// unfinished jobs are counted: two replicas finishing its last two jobs
/// at once then count one after the other, and exactly one sees zero.
async fn queue_on_finish(
    tx: &Transaction<'_>,
    job_id: &str,
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT callback_url, batch_id FROM jobs WHERE id = $1",
            &[&job_id],
        )
        .await?;
    let url: Option<String> = row.get("callback_url");
    let batch_id: Option<String> = row.get("batch_id");
    if let Some(url) = url {
        queue(tx, job_id, VERIFICATION_FINISHED, &url, now).await?;
    }
    let Some(batch_id) = batch_id else {
        return Ok(());
    };
    let batch = tx
        .query_opt(
            "SELECT callback_url FROM batches WHERE id = $1 FOR NO KEY UPDATE",
            &[&batch_id],
        )
        .await?;
    let Some(Some(url)) = batch.map(|b| b.get::<_, Option<String>>("callback_url")) else {
        return Ok(());
    };
    // A statement of its own, after the lock: it sees what the other
    // finishers committed.
    let unfinished: i64 = tx
        .query_one(
            "SELECT COUNT(*) AS unfinished FROM jobs
             WHERE batch_id = $1 AND status NOT IN ('done', 'error')",
            &[&batch_id],
        )
        .await?
        .get("unfinished");
    if unfinished == 0 {
        queue(tx, &batch_id, BATCH_FINISHED, &url, now).await?;
    }
    Ok(())
}

/// One delivery for `subject`, unless it has one already.
async fn queue(
    tx: &Transaction<'_>,
    subject: &str,
    event: &str,
    url: &str,
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tx.execute(
        "INSERT INTO callbacks (id, subject, event, url, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (subject) DO NOTHING",
        &[&id, &subject, &event, &url, &now],
    )
    .await?;
    Ok(())
}

/// Ends the claims of dead holders: running jobs whose lease expired, and
/// (at start-up) those of `holder`. Each goes back to the queue, or, after
/// `MAX_ATTEMPTS` runs, is given up (`error`) with its callbacks queued.
async fn end_dead_claims(
    tx: &Transaction<'_>,
    channel: &str,
    holder: Option<&str>,
) -> Result<Recovered, tokio_postgres::Error> {
    let now = now_ms();
    let given_up = tx
        .query(
            "UPDATE jobs SET status = 'error', finished_at = $1, lease_holder = NULL,
                 lease_expires_at = NULL,
                 error = 'the service running this answer stopped ' || attempts || ' times; given up'
             WHERE id IN (SELECT id FROM jobs
                          WHERE status = 'running' AND attempts >= $3
                            AND (lease_expires_at < now() OR lease_holder = $2)
                          FOR UPDATE SKIP LOCKED)
             RETURNING id, batch_id",
            &[&now, &holder, &MAX_ATTEMPTS],
        )
        .await?;
    for row in &given_up {
        let id: String = row.get("id");
        queue_on_finish(tx, &id, now).await?;
        let batch_id: Option<String> = row.get("batch_id");
        listen::notify(tx, channel, &listen::finished(&id, batch_id.as_deref())).await?;
    }
    let requeued = tx
        .execute(
            "UPDATE jobs SET status = 'queued', started_at = NULL, lease_holder = NULL,
                 lease_expires_at = NULL
             WHERE id IN (SELECT id FROM jobs
                          WHERE status = 'running'
                            AND (lease_expires_at < now() OR lease_holder = $1)
                          FOR UPDATE SKIP LOCKED)",
            &[&holder],
        )
        .await?;
    if requeued > 0 {
        listen::notify(tx, channel, listen::QUEUED).await?;
    }
    Ok(Recovered {
        requeued: requeued as usize,
        given_up: given_up.len(),
    })
}

impl JobStore for PostgresStore {
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        batch: Option<NewBatch>,
        max_queue: usize,
    ) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(pg("starting an enqueue"))?;
            // The limit is the cluster's: enqueues take turns, so two
            // replicas cannot both see room for the last places.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':qtjudge-enqueue'))",
                &[],
            )
            .await
            .map_err(pg("waiting for the queue"))?;
            let queued: i64 = tx
                .query_one(
                    "SELECT COUNT(*) AS queued FROM jobs WHERE status = 'queued'",
                    &[],
                )
                .await
                .map_err(pg("counting queued jobs"))?
                .get("queued");
            let queued = queued as usize;
            if queued + jobs.len() > max_queue {
                // Said, not left to the drop: the locks go at once.
                let _ = tx.rollback().await;
                return Err(StoreError::QueueFull {
                    queued,
                    max: max_queue,
                });
            }
            let now = now_ms();
            let batch_id = batch.as_ref().map(|b| b.id.clone());
            if let Some(b) = &batch {
                tx.execute(
                    "INSERT INTO batches (id, task, created_at, callback_url) VALUES ($1, $2, $3, $4)",
                    &[&b.id, &b.task, &now, &b.callback_url],
                )
                .await
                .map_err(pg("inserting a batch"))?;
            }
            let insert = tx
                .prepare(
                    "INSERT INTO jobs (id, batch_id, task, model, output, metadata, status,
                                       created_at, callback_url, upload, task_choice, sample)
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11)",
                )
                .await
                .map_err(pg("preparing a job insert"))?;
            let mut ids = Vec::with_capacity(jobs.len());
            for job in jobs {
                let id = new_id();
                let metadata = job.metadata.map(|m| m.to_string());
                let upload = to_json_opt(job.upload.as_ref(), "an upload")?;
                let choice = to_json_opt(job.task_choice.as_ref(), "a task choice")?;
                tx.execute(
                    &insert,
                    &[
                        &id,
                        &batch_id,
                        &text(&job.task),
                        &text(&job.model),
                        &job.output.as_bytes(),
                        &metadata,
                        &now,
                        &job.callback_url,
                        &upload,
                        &choice,
                        &job.sample.as_deref().map(text),
                    ],
                )
                .await
                .map_err(pg("inserting a job"))?;
                ids.push(id);
            }
            listen::notify(&tx, &self.channel, listen::QUEUED)
                .await
                .map_err(pg("announcing new jobs"))?;
            tx.commit().await.map_err(pg("committing new jobs"))?;
            Ok(ids)
        })
    }

    fn claim_next(&self) -> BoxFuture<'_, Result<Option<Claimed>>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg("starting a claim"))?;
            // Whoever looks for work first ends the claims of dead replicas.
            end_dead_claims(&tx, &self.channel, None)
                .await
                .map_err(pg("requeueing jobs of expired leases"))?;
            let row = tx
                .query_opt(
                    "UPDATE jobs SET status = 'running', started_at = $1, attempts = attempts + 1,
                         lease = lease + 1, lease_holder = $2,
                         lease_expires_at = now() + make_interval(secs => $3::float8)
                     WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued'
                                  ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING id, batch_id, task, model, output, task_choice, upload, lease",
                    &[&now_ms(), &self.holder, &self.lease_secs],
                )
                .await
                .map_err(pg("claiming a job"))?;
            tx.commit().await.map_err(pg("committing a claim"))?;
            Ok(row.map(|r| {
                let id: String = r.get("id");
                let output: Vec<u8> = r.get("output");
                let choice: Option<String> = r.get("task_choice");
                let upload: Option<String> = r.get("upload");
                Claimed {
                    lease: Lease {
                        job_id: id.clone(),
                        token: r.get("lease"),
                    },
                    id,
                    batch_id: r.get("batch_id"),
                    task: r.get("task"),
                    model: r.get("model"),
                    output: String::from_utf8_lossy(&output).into_owned(),
                    // Written by `enqueue` from a checked upload.
                    upload: from_json(upload),
                    bundle: None,
                    task_choice: from_json(choice),
                }
            }))
        })
    }

    fn set_task<'a>(
        &'a self,
        lease: &'a Lease,
        choice: &'a TaskChoice,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let encoded = to_json(choice, "a task choice")?;
            let client = self.client().await?;
            let updated = client
                .execute(
                    "UPDATE jobs SET task = $3, task_choice = $4
                     WHERE id = $1 AND lease = $2 AND status = 'running' AND lease_expires_at > now()",
                    &[&lease.job_id, &lease.token, &text(&choice.task), &encoded],
                )
                .await
                .map_err(pg("recording a job's task"))?;
            if updated == 0 {
                return Err(lease_lost(lease));
            }
            Ok(())
        })
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        status: Status,
        result: Option<&'a Verification>,
        error: Option<String>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let encode = |source| StoreError::Encode {
                what: "a result",
                source,
            };
            let value = result
                .map(serde_json::to_value)
                .transpose()
                .map_err(encode)?;
            let full = value
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(encode)?;
            let light = value
                .as_ref()
                .map(|v| serde_json::to_string(&summary(v)))
                .transpose()
                .map_err(encode)?;
            let error = error.as_deref().map(text);
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(pg("starting to store a result"))?;
            let now = now_ms();
            let updated = tx
                .query_opt(
                    "UPDATE jobs SET status = $3, result = $4, result_summary = $5, error = $6,
                         finished_at = $7, lease_holder = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND lease = $2 AND status = 'running' AND lease_expires_at > now()
                     RETURNING batch_id",
                    &[
                        &lease.job_id,
                        &lease.token,
                        &status.as_str(),
                        &full,
                        &light,
                        &error,
                        &now,
                    ],
                )
                .await
                .map_err(pg("storing a result"))?;
            let Some(updated) = updated else {
                let _ = tx.rollback().await;
                return Err(lease_lost(lease));
            };
            if let Some(v) = result {
                for a in &v.artifacts {
                    tx.execute(
                        "INSERT INTO artifacts (job_id, name, media_type, data) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (job_id, name) DO UPDATE
                         SET media_type = EXCLUDED.media_type, data = EXCLUDED.data",
                        &[&lease.job_id, &text(&a.name), &a.media_type, &a.data],
                    )
                    .await
                    .map_err(pg("storing an artifact"))?;
                }
            }
            if status.is_finished() {
                queue_on_finish(&tx, &lease.job_id, now)
                    .await
                    .map_err(pg("queueing a finished job's callbacks"))?;
                let batch_id: Option<String> = updated.get("batch_id");
                let news = listen::finished(&lease.job_id, batch_id.as_deref());
                listen::notify(&tx, &self.channel, &news)
                    .await
                    .map_err(pg("announcing a finished job"))?;
            }
            tx.commit().await.map_err(pg("committing a result"))
        })
    }

    fn requeue_after_engine_fault<'a>(
        &'a self,
        lease: &'a Lease,
        why: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(pg("starting a requeue"))?;
            let now = now_ms();
            let given_up = tx
                .query_opt(
                    "UPDATE jobs SET status = 'error', finished_at = $3, lease_holder = NULL,
                         lease_expires_at = NULL,
                         error = 'the sandbox engine failed this verification ' || attempts
                             || ' times (last: ' || $4::text
                             || '); given up: check the engine (docker info, its log) and submit the answer again'
                     WHERE id = $1 AND lease = $2 AND status = 'running' AND lease_expires_at > now()
                       AND attempts >= $5
                     RETURNING batch_id",
                    &[&lease.job_id, &lease.token, &now, &text(why), &MAX_ATTEMPTS],
                )
                .await
                .map_err(pg("giving up on a job"))?;
            let news = if let Some(row) = &given_up {
                queue_on_finish(&tx, &lease.job_id, now)
                    .await
                    .map_err(pg("queueing a finished job's callbacks"))?;
                let batch_id: Option<String> = row.get("batch_id");
                listen::finished(&lease.job_id, batch_id.as_deref())
            } else {
                let requeued = tx
                    .execute(
                        "UPDATE jobs SET status = 'queued', started_at = NULL, lease_holder = NULL,
                             lease_expires_at = NULL
                         WHERE id = $1 AND lease = $2 AND status = 'running'
                           AND lease_expires_at > now()",
                        &[&lease.job_id, &lease.token],
                    )
                    .await
                    .map_err(pg("requeueing a job"))?;
                if requeued == 0 {
                    let _ = tx.rollback().await;
                    return Err(lease_lost(lease));
                }
                listen::QUEUED.to_string()
            };
            listen::notify(&tx, &self.channel, &news)
                .await
                .map_err(pg("announcing a requeue"))?;
            tx.commit().await.map_err(pg("committing a requeue"))?;
            Ok(given_up.is_none())
        })
    }

    fn recover(&self) -> BoxFuture<'_, Result<Recovered>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(pg("starting recovery"))?;
            let recovered = end_dead_claims(&tx, &self.channel, Some(&self.holder))
                .await
                .map_err(pg("requeueing interrupted jobs"))?;
            tx.commit().await.map_err(pg("committing recovery"))?;
            Ok(recovered)
        })
    }

    fn release_claims(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let client = self.client().await?;
            let released = client
                .execute(
                    "UPDATE jobs SET status = 'queued', started_at = NULL,
                         attempts = GREATEST(attempts - 1, 0), lease_holder = NULL,
                         lease_expires_at = NULL
                     WHERE status = 'running' AND lease_holder = $1",
                    &[&self.holder],
                )
                .await
                .map_err(pg("requeueing interrupted jobs"))?;
            client
                .execute(
                    "UPDATE callbacks SET holder = NULL, held_until = NULL WHERE holder = $1",
                    &[&self.holder],
                )
                .await
                .map_err(pg("releasing callback deliveries"))?;
            Ok(released as usize)
        })
    }

    fn job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobRecord>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {} FROM jobs WHERE id = $1",
                        job_columns(BatchDetail::Full)
                    ),
                    &[&id],
                )
                .await
                .map_err(pg("reading a job"))?;
            Ok(row.as_ref().map(job_record))
        })
    }

    fn job_input<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobInput>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT output, upload FROM jobs WHERE id = $1", &[&id])
                .await
                .map_err(pg("reading a job's input"))?;
            Ok(row.map(|r| {
                // Stored as bytes (an answer may hold NUL, which text refuses).
                let output: Vec<u8> = r.get("output");
                let upload: Option<String> = r.get("upload");
                JobInput {
                    output: String::from_utf8_lossy(&output).into_owned(),
                    upload: from_json(upload),
                }
            }))
        })
    }

    fn artifact<'a>(
        &'a self,
        job_id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ArtifactData>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT media_type, data FROM artifacts WHERE job_id = $1 AND name = $2",
                    &[&job_id, &name],
                )
                .await
                .map_err(pg("reading an artifact"))?;
            Ok(row.map(|r| (r.get("media_type"), r.get("data"))))
        })
    }

    fn batch_unfinished<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<usize>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT (SELECT COUNT(*) FROM jobs
                             WHERE batch_id = $1 AND status NOT IN ('done', 'error')) AS unfinished
                     FROM batches WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(pg("counting a batch's unfinished jobs"))?;
            Ok(row.map(|r| r.get::<_, i64>("unfinished") as usize))
        })
    }

    fn batch_with<'a>(
        &'a self,
        id: &'a str,
        detail: BatchDetail,
    ) -> BoxFuture<'a, Result<Option<BatchRecord>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let head = client
                .query_opt(
                    "SELECT id, task, created_at, callback_url,
                        (SELECT state FROM callbacks WHERE subject = batches.id) AS callback_state,
                        (SELECT attempts FROM callbacks WHERE subject = batches.id) AS callback_attempts,
                        (SELECT last_error FROM callbacks WHERE subject = batches.id) AS callback_error
                     FROM batches WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(pg("reading a batch"))?;
            let Some(head) = head else {
                return Ok(None);
            };
            let jobs = client
                .query(
                    &format!(
                        "SELECT {} FROM jobs WHERE batch_id = $1 ORDER BY seq",
                        job_columns(detail)
                    ),
                    &[&id],
                )
                .await
                .map_err(pg("reading a batch's jobs"))?;
            Ok(Some(BatchRecord {
                id: head.get("id"),
                task: head.get("task"),
                created_at: head.get("created_at"),
                jobs: jobs.iter().map(job_record).collect(),
                callback: callback_status(&head),
            }))
        })
    }

    fn recent_jobs(&self, limit: usize) -> BoxFuture<'_, Result<Vec<JobRecord>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {} FROM jobs ORDER BY seq DESC LIMIT $1",
                        job_columns(BatchDetail::Summary)
                    ),
                    &[&(limit as i64)],
                )
                .await
                .map_err(pg("listing jobs"))?;
            Ok(rows.iter().map(job_record).collect())
        })
    }

    fn recent_batches(&self, limit: usize) -> BoxFuture<'_, Result<Vec<BatchListing>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT b.id AS id, b.task AS task, b.created_at AS created_at,
                            COUNT(j.id) AS jobs,
                            COUNT(j.id) FILTER (WHERE j.status IN ('done', 'error')) AS finished
                     FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id
                     GROUP BY b.id ORDER BY b.created_at DESC, b.id LIMIT $1",
                    &[&(limit as i64)],
                )
                .await
                .map_err(pg("listing batches"))?;
            Ok(rows
                .iter()
                .map(|r| BatchListing {
                    id: r.get("id"),
                    task: r.get("task"),
                    created_at: r.get("created_at"),
                    jobs: r.get::<_, i64>("jobs") as usize,
                    finished: r.get::<_, i64>("finished") as usize,
                })
                .collect())
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<Depth>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE status = 'queued') AS queued,
                            COUNT(*) FILTER (WHERE status = 'running') AS running
                     FROM jobs WHERE status IN ('queued', 'running')",
                    &[],
                )
                .await
                .map_err(pg("counting jobs"))?;
            Ok(Depth {
                queued: row.get::<_, i64>("queued") as usize,
                running: row.get::<_, i64>("running") as usize,
            })
        })
    }

    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg("starting a prune"))?;
            // One replica prunes at a time; the others skip this round.
            let ours: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || ':qtjudge-prune'))
                         AS ours",
                    &[],
                )
                .await
                .map_err(pg("taking the prune lock"))?
                .get("ours");
            if !ours {
                let _ = tx.rollback().await;
                return Ok(0);
            }
            let deleted = tx
                .execute(
                    "DELETE FROM jobs WHERE status IN ('done', 'error') AND finished_at < $1",
                    &[&before_ms],
                )
                .await
                .map_err(pg("pruning jobs"))?;
            tx.execute(
                "DELETE FROM batches WHERE created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id)",
                &[&before_ms],
            )
            .await
            .map_err(pg("pruning batches"))?;
            tx.execute(
                "DELETE FROM callbacks WHERE state != 'pending'
                 AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = callbacks.subject)
                 AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.id = callbacks.subject)",
                &[],
            )
            .await
            .map_err(pg("pruning callbacks"))?;
            tx.commit().await.map_err(pg("committing a prune"))?;
            Ok(deleted as usize)
        })
    }

    fn pending_callbacks(&self) -> BoxFuture<'_, Result<Vec<PendingDelivery>>> {
        Box::pin(async move {
            let client = self.client().await?;
            // Claimed for this replica while it lives: another sends one
            // only once this one's hold expired.
            let rows = client
                .query(
                    "UPDATE callbacks SET holder = $1,
                         held_until = now() + make_interval(secs => $2::float8)
                     WHERE id IN (SELECT id FROM callbacks
                                  WHERE state = 'pending'
                                    AND (holder IS NULL OR holder = $1 OR held_until < now())
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING id, subject, event, url, attempts, next_attempt_ms",
                    &[&self.holder, &self.lease_secs],
                )
                .await
                .map_err(pg("listing pending callbacks"))?;
            let mut pending: Vec<PendingDelivery> = rows
                .iter()
                .map(|r| PendingDelivery {
                    id: r.get("id"),
                    subject: r.get("subject"),
                    event: r.get("event"),
                    url: r.get("url"),
                    attempts: r.get::<_, i64>("attempts") as u32,
                    next_attempt_ms: r.get("next_attempt_ms"),
                })
                .collect();
            pending.sort_by_key(|p| p.next_attempt_ms);
            Ok(pending)
        })
    }

    fn callback_body<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT body FROM callbacks WHERE id = $1", &[&id])
                .await
                .map_err(pg("reading a callback's body"))?;
            Ok(row.and_then(|r| r.get("body")))
        })
    }

    fn set_callback_body<'a>(&'a self, id: &'a str, body: String) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE callbacks SET body = $2 WHERE id = $1",
                    &[&id, &text(&body)],
                )
                .await
                .map(drop)
                .map_err(pg("storing a callback's body"))
        })
    }

    fn events(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        Some(self.events.subscribe())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn replica_alive<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.say_alive(owner))
    }

    fn claim_dead_replicas(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.claim_dead())
    }

    fn dead_replicas_reaped<'a>(&'a self, owners: &'a [String]) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.forget_dead(owners))
    }

    fn callback_attempted<'a>(
        &'a self,
        id: &'a str,
        attempt: CallbackAttempt,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let last_error = attempt.last_error.as_deref().map(text);
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE callbacks SET attempts = $2, state = $3, next_attempt_ms = $4,
                         last_error = $5, finished_at = $6
                     WHERE id = $1",
                    &[
                        &id,
                        &i64::from(attempt.attempts),
                        &attempt.state.as_str(),
                        &attempt.next_attempt_ms,
                        &last_error,
                        &attempt.finished_at(),
                    ],
                )
                .await
                .map(drop)
                .map_err(pg("recording a callback attempt"))
        })
    }
}
