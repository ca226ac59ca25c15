//! The rows of callback deliveries: queued when a job or its batch
//! finishes (in the transaction that finishes it), the pending ones, each
//! one's body (rendered once, then sent unchanged), each attempt's outcome,
//! and the clean-up of those whose verification or batch is gone.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::super::{
    CallbackAttempt, CallbackStatus, DeliveryState, PendingDelivery, Result, BATCH_FINISHED,
    VERIFICATION_FINISHED,
};
use super::sql;

/// Queues the deliveries a job's finish calls for: the job's, if it named
/// a `callback_url`, and its batch's, if the batch named one and this was
/// its last unfinished job. Each subject gets one delivery, however often
/// it finishes: a delivery keeps its id across attempts, which is what a
/// receiver dedupes on.
pub(super) fn queue_on_finish(
    tx: &Transaction<'_>,
    job_id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let (url, batch_id): (Option<String>, Option<String>) = tx.query_row(
        "SELECT callback_url, batch_id FROM jobs WHERE id = ?1",
        params![job_id],
        |r| Ok((r.get("callback_url")?, r.get("batch_id")?)),
    )?;
    if let Some(url) = url {
        queue(tx, job_id, VERIFICATION_FINISHED, &url, now)?;
    }
    let Some(batch_id) = batch_id else {
        return Ok(());
    };
    let batch: Option<(Option<String>, i64)> = tx
        .query_row(
            "SELECT callback_url,
                    (SELECT COUNT(*) FROM jobs
                     WHERE batch_id = batches.id AND status NOT IN ('done', 'error')) AS unfinished
             FROM batches WHERE id = ?1",
            params![batch_id],
            |r| Ok((r.get("callback_url")?, r.get("unfinished")?)),
        )
        .optional()?;
    if let Some((Some(url), 0)) = batch {
        queue(tx, &batch_id, BATCH_FINISHED, &url, now)?;
    }
    Ok(())
}

/// One delivery for `subject`, unless it has one already.
fn queue(
    tx: &Transaction<'_>,
    subject: &str,
    event: &str,
    url: &str,
    now: i64,
) -> rusqlite::Result<()> {
    // 32 lower-case hex digits, as the deliveries of older versions.
    let id = uuid::Uuid::new_v4().simple().to_string();
    tx.execute(
        "INSERT INTO callbacks (id, subject, event, url, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (subject) DO NOTHING",
        params![id, subject, event, url, now],
    )?;
    Ok(())
}

pub(super) fn pending(conn: &mut Connection) -> Result<Vec<PendingDelivery>> {
    let mut statement = conn
        .prepare(
            "SELECT id, subject, event, url, attempts, next_attempt_ms FROM callbacks
             WHERE state = 'pending' ORDER BY next_attempt_ms",
        )
        .map_err(sql("listing pending callbacks"))?;
    let rows = statement
        .query_map([], |r| {
            Ok(PendingDelivery {
                id: r.get("id")?,
                subject: r.get("subject")?,
                event: r.get("event")?,
                url: r.get("url")?,
                attempts: r.get("attempts")?,
                next_attempt_ms: r.get("next_attempt_ms")?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql("listing pending callbacks"))?;
    Ok(rows)
}

pub(super) fn body(conn: &mut Connection, id: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT body FROM callbacks WHERE id = ?1",
        params![id],
        |r| r.get("body"),
    )
    .optional()
    .map(Option::flatten)
    .map_err(sql("reading a callback's body"))
}

pub(super) fn set_body(conn: &mut Connection, id: &str, body: &str) -> Result<()> {
    conn.execute(
        "UPDATE callbacks SET body = ?2 WHERE id = ?1",
        params![id, body],
    )
    .map(drop)
    .map_err(sql("storing a callback's body"))
}

pub(super) fn attempted(conn: &mut Connection, id: &str, attempt: &CallbackAttempt) -> Result<()> {
    conn.execute(
        "UPDATE callbacks SET attempts = ?2, state = ?3, next_attempt_ms = ?4,
         last_error = ?5, finished_at = ?6 WHERE id = ?1",
        params![
            id,
            attempt.attempts,
            attempt.state.as_str(),
            attempt.next_attempt_ms,
            attempt.last_error,
            attempt.finished_at()
        ],
    )
    .map(drop)
    .map_err(sql("recording a callback attempt"))
}

/// A job's or batch's callback from its `callback_url` and its delivery's
/// `callback_state`, `callback_attempts` and `callback_error` columns.
pub(super) fn callback_status(r: &Row<'_>) -> rusqlite::Result<Option<CallbackStatus>> {
    let Some(url) = r.get::<_, Option<String>>("callback_url")? else {
        return Ok(None);
    };
    let state = match r.get::<_, Option<String>>("callback_state")?.as_deref() {
        Some("delivered") => DeliveryState::Delivered,
        Some("failed") => DeliveryState::Failed,
        _ => DeliveryState::Pending,
    };
    Ok(Some(CallbackStatus {
        url,
        state,
        attempts: r.get::<_, Option<i64>>("callback_attempts")?.unwrap_or(0),
        last_error: r.get("callback_error")?,
    }))
}

/// Deletes settled deliveries whose verification or batch was pruned.
pub(super) fn prune(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM callbacks WHERE state != 'pending'
         AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = callbacks.subject)
         AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.id = callbacks.subject)",
        [],
    )
}
