//! The rows of callback deliveries: the pending ones, each one's body
//! (rendered once, then sent unchanged), each attempt's outcome, and the
//! clean-up of those whose verification or batch is gone. `callbacks`
//! makes the deliveries; the trigger that queues them is in `schema`.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, sql, CallbackStatus, DeliveryState, JobsError, Store};

/// A delivery still to make (its body is read when its turn comes).
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub id: String,
    pub subject: String,
    pub event: String,
    pub url: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
}

impl Store {
    pub async fn pending_callbacks(&self) -> Result<Vec<PendingDelivery>, JobsError> {
        self.call(|conn| {
            let mut statement = conn
                .prepare(
                    "SELECT id, subject, event, url, attempts, next_attempt_ms FROM callbacks
                     WHERE state = 'pending' ORDER BY next_attempt_ms",
                )
                .map_err(sql("listing pending callbacks"))?;
            let rows = statement
                .query_map([], |r| {
                    Ok(PendingDelivery {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        event: r.get(2)?,
                        url: r.get(3)?,
                        attempts: r.get(4)?,
                        next_attempt_ms: r.get(5)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql("listing pending callbacks"))?;
            Ok(rows)
        })
        .await
    }

    pub async fn callback_body(&self, id: &str) -> Result<Option<String>, JobsError> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT body FROM callbacks WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(sql("reading a callback's body"))
        })
        .await
    }

    pub async fn set_callback_body(&self, id: &str, body: String) -> Result<(), JobsError> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.execute(
                "UPDATE callbacks SET body = ?2 WHERE id = ?1",
                params![id, body],
            )
            .map(|_| ())
            .map_err(sql("storing a callback's body"))
        })
        .await
    }

    pub async fn callback_attempted(
        &self,
        id: &str,
        attempts: u32,
        state: DeliveryState,
        next_attempt_ms: i64,
        last_error: Option<String>,
    ) -> Result<(), JobsError> {
        let id = id.to_string();
        self.call(move |conn| {
            let finished_at = (state != DeliveryState::Pending).then(now_ms);
            conn.execute(
                "UPDATE callbacks SET attempts = ?2, state = ?3, next_attempt_ms = ?4,
                 last_error = ?5, finished_at = ?6 WHERE id = ?1",
                params![
                    id,
                    attempts,
                    state.as_str(),
                    next_attempt_ms,
                    last_error,
                    finished_at
                ],
            )
            .map(|_| ())
            .map_err(sql("recording a callback attempt"))
        })
        .await
    }
}

/// From four columns from `first` on: the job's or batch's
/// `callback_url`, then its delivery's `state`, `attempts`, `last_error`.
pub(super) fn callback_status(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<Option<CallbackStatus>> {
    let Some(url) = r.get::<_, Option<String>>(first)? else {
        return Ok(None);
    };
    let state = match r.get::<_, Option<String>>(first + 1)?.as_deref() {
        Some("delivered") => DeliveryState::Delivered,
        Some("failed") => DeliveryState::Failed,
        _ => DeliveryState::Pending,
    };
    Ok(Some(CallbackStatus {
        url,
        state,
        attempts: r.get::<_, Option<i64>>(first + 2)?.unwrap_or(0),
        last_error: r.get(first + 3)?,
    }))
}

/// Deletes finished deliveries whose verification or batch was pruned.
pub(super) fn prune(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM callbacks WHERE state != 'pending'
         AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = callbacks.subject)
         AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.id = callbacks.subject)",
        [],
    )
}

#[cfg(test)]
mod tests {
    use super::super::{NewBatch, NewJob, Status, BATCH_FINISHED, DB_FILE, VERIFICATION_FINISHED};
    use super::*;

    fn job(callback_url: Option<&str>) -> NewJob {
        NewJob {
            task: "reset-conversation".into(),
            model: "m".into(),
            // No code: graded without the sandbox.
            output: "Sorry, I cannot help with that.".into(),
            metadata: None,
            callback_url: callback_url.map(String::from),
            upload: None,
            task_choice: None,
        }
    }

    async fn set_status(store: &Store, id: &str, status: &str) {
        let (id, status) = (id.to_string(), status.to_string());
        store
            .call(move |conn| {
                conn.execute(
                    "UPDATE jobs SET status = ?2 WHERE id = ?1",
                    params![id, status],
                )
                .map(|_| ())
                .map_err(sql("test"))
            })
            .await
            .unwrap();
    }

    async fn subjects(store: &Store) -> Vec<(String, String)> {
        store
            .call(|conn| {
                let mut statement = conn
                    .prepare("SELECT subject, event FROM callbacks ORDER BY rowid")
                    .unwrap();
                let rows = statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                Ok(rows)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn finishing_queues_one_delivery_per_job_and_one_per_batch_when_it_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let single = store
            .enqueue(vec![job(Some("http://127.0.0.1:1/a")), job(None)], None, 10)
            .await
            .unwrap();
        let batch = NewBatch {
            id: "b1".into(),
            task: "reset-conversation".into(),
            callback_url: Some("http://127.0.0.1:1/b".into()),
        };
        let in_batch = store
            .enqueue(vec![job(None), job(None)], Some(batch), 10)
            .await
            .unwrap();
        assert!(subjects(&store).await.is_empty());

        set_status(&store, &single[0], "running").await;
        assert!(subjects(&store).await.is_empty(), "not finished yet");
        set_status(&store, &single[0], "done").await;
        set_status(&store, &single[1], "done").await;
        assert_eq!(
            subjects(&store).await,
            [(single[0].clone(), VERIFICATION_FINISHED.to_string())],
            "only the job that named a callback"
        );

        set_status(&store, &in_batch[0], "error").await;
        assert_eq!(subjects(&store).await.len(), 1, "the batch is not complete");
        set_status(&store, &in_batch[1], "done").await;
        set_status(&store, &in_batch[1], "queued").await;
        set_status(&store, &in_batch[1], "done").await;
        assert_eq!(
            subjects(&store).await[1..],
            [("b1".to_string(), BATCH_FINISHED.to_string())],
            "once, however often its last job finishes"
        );

        let record = store.job(&single[0]).await.unwrap().unwrap();
        assert_eq!(
            record.callback,
            Some(CallbackStatus {
                url: "http://127.0.0.1:1/a".into(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_error: None
            })
        );
        assert_eq!(store.job(&single[1]).await.unwrap().unwrap().callback, None);
        let batch = store.batch("b1").await.unwrap().unwrap();
        assert_eq!(batch.callback.unwrap().url, "http://127.0.0.1:1/b");
    }

    #[tokio::test]
    async fn a_store_made_before_callbacks_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE batches (id TEXT PRIMARY KEY, task TEXT NOT NULL, created_at INTEGER NOT NULL);
             CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                 batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE, task TEXT NOT NULL,
                 model TEXT NOT NULL, output TEXT NOT NULL, metadata TEXT, status TEXT NOT NULL,
                 result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
                 created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);
             INSERT INTO jobs (id, task, model, output, status, created_at)
                 VALUES ('old', 'reset-conversation', 'm', 'x', 'queued', 1);",
        )
        .unwrap();
        drop(conn);
        for _ in 0..2 {
            let store = Store::open(dir.path()).unwrap();
            let old = store
                .job("old")
                .await
                .unwrap()
                .expect("the old job is kept");
            assert_eq!((old.status, old.callback), (Status::Queued, None));
        }
        let store = Store::open(dir.path()).unwrap();
        let ids = store
            .enqueue(vec![job(Some("https://example.com/hook"))], None, 10)
            .await
            .unwrap();
        set_status(&store, &ids[0], "done").await;
        assert_eq!(subjects(&store).await.len(), 1);
    }
}
