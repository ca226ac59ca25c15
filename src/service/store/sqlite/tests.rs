//! The SQLite store's tests: every job store's tests (`conformance`) on a
//! fresh file, and what is about its file: what is accepted survives a
//! reopen, stores made by older versions (before versions were numbered,
//! with the callback trigger) open with their data kept and are migrated
//! once, a newer store is refused.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::super::conformance::job_store_tests;
use super::super::{CallbackStatus, DeliveryState, BATCH_FINISHED, VERIFICATION_FINISHED};
use super::*;

async fn fresh() -> Option<(Arc<dyn JobStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    Some((Arc::new(store), dir))
}

job_store_tests!(fresh);

fn job(callback_url: Option<&str>) -> NewJob {
    NewJob {
        sample: None,
        task: "reset-conversation".into(),
        model: "m".into(),
        output: "print(1)".into(),
        metadata: Some(serde_json::json!({"run": 7})),
        callback_url: callback_url.map(String::from),
        upload: None,
        task_choice: Some(TaskChoice::given("reset-conversation")),
    }
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).unwrap()
}

fn user_version(dir: &Path) -> i64 {
    raw(dir)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// (subject, event, id) of every delivery, in the order queued.
fn deliveries(dir: &Path) -> Vec<(String, String, String)> {
    let conn = raw(dir);
    let mut statement = conn
        .prepare("SELECT subject, event, id FROM callbacks ORDER BY rowid")
        .unwrap();
    let rows = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// The first version's tables, with a job queued in them.
const FIRST_VERSION: &str = "
CREATE TABLE batches (id TEXT PRIMARY KEY, task TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE, task TEXT NOT NULL,
    model TEXT NOT NULL, output TEXT NOT NULL, metadata TEXT, status TEXT NOT NULL,
    result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);
INSERT INTO jobs (id, task, model, output, status, created_at)
    VALUES ('old', 'reset-conversation', 'm', 'print(1)', 'queued', 1);
";

/// What the last version before numbered migrations made of a new data
/// dir, statement for statement (its `schema::migrate`): the tables, the
/// columns added since their first version, the deliveries and the
/// trigger that queued them.
const LAST_UNVERSIONED: &str = "
CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, task TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE, task TEXT NOT NULL,
    model TEXT NOT NULL, output TEXT NOT NULL, metadata TEXT, status TEXT NOT NULL,
    result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch_id, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at);
CREATE TABLE IF NOT EXISTS artifacts (job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL, media_type TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (job_id, name));
ALTER TABLE jobs ADD COLUMN bundle TEXT;
ALTER TABLE jobs ADD COLUMN task_choice TEXT;
ALTER TABLE jobs ADD COLUMN upload TEXT;
ALTER TABLE jobs ADD COLUMN callback_url TEXT;
ALTER TABLE batches ADD COLUMN callback_url TEXT;
CREATE TABLE IF NOT EXISTS callbacks (id TEXT PRIMARY KEY, subject TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL, url TEXT NOT NULL, body TEXT, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
CREATE INDEX IF NOT EXISTS callbacks_state ON callbacks(state, next_attempt_ms);
CREATE TRIGGER IF NOT EXISTS callbacks_on_finish
AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('done', 'error') AND OLD.status NOT IN ('done', 'error')
BEGIN
    INSERT OR IGNORE INTO callbacks (id, subject, event, url, created_at)
    SELECT lower(hex(randomblob(16))), NEW.id, 'verification.finished', NEW.callback_url,
           CAST(unixepoch('subsec') * 1000 AS INTEGER)
    WHERE NEW.callback_url IS NOT NULL;
    INSERT OR IGNORE INTO callbacks (id, subject, event, url, created_at)
    SELECT lower(hex(randomblob(16))), b.id, 'batch.finished', b.callback_url,
           CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM batches b
    WHERE b.id = NEW.batch_id AND b.callback_url IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.status NOT IN ('done', 'error'));
END;
";

#[tokio::test]
async fn an_accepted_job_is_on_disk_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let ids = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    let record = store.job(&ids[0]).await.unwrap().expect("the job is there");
    assert_eq!(record.status, Status::Queued);
    assert_eq!(record.metadata, Some(serde_json::json!({"run": 7})));
    assert_eq!(
        record.task_choice,
        Some(TaskChoice::given("reset-conversation"))
    );
    assert_eq!(user_version(dir.path()), i64::from(migrate::latest()));
}

#[tokio::test]
async fn a_store_made_before_bundles_and_task_choices_gains_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    raw(dir.path()).execute_batch(FIRST_VERSION).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let old = store
        .job("old")
        .await
        .unwrap()
        .expect("the old job is kept");
    assert_eq!((old.status, old.task_choice), (Status::Queued, None));
    let ids = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    let new = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(new.task_choice.map(|c| c.how), Some("given".into()));
    let claimed = store.claim_next().await.unwrap().unwrap();
    assert_eq!(claimed.id, "old", "the old job is first in the queue");
    assert!(claimed.task_choice.is_none() && claimed.bundle.is_none());
    // Opening again adds nothing twice.
    drop(store);
    SqliteStore::open(dir.path()).unwrap();
    assert_eq!(user_version(dir.path()), i64::from(migrate::latest()));
}

#[tokio::test]
async fn a_store_made_before_callbacks_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    raw(dir.path()).execute_batch(FIRST_VERSION).unwrap();
    for _ in 0..2 {
        let store = SqliteStore::open(dir.path()).unwrap();
        let old = store
            .job("old")
            .await
            .unwrap()
            .expect("the old job is kept");
        assert_eq!((old.status, old.callback), (Status::Queued, None));
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let ids = store
        .enqueue(vec![job(Some("https://example.com/hook"))], None, 10)
        .await
        .unwrap();
    for id in ["old", ids[0].as_str()] {
        let claimed = store.claim_next().await.unwrap().unwrap();
        assert_eq!(claimed.id, id);
        store
            .finish(&claimed.lease, Status::Done, None, None)
            .await
            .unwrap();
    }
    assert_eq!(deliveries(dir.path()).len(), 1);
}

#[tokio::test]
async fn a_data_dir_of_the_last_unversioned_schema_opens_with_its_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = raw(dir.path());
        conn.execute_batch(LAST_UNVERSIONED).unwrap();
        // A finished job (result, screenshot, delivered callback) and a
        // batch with one job queued and one running, as a kill -9 left them.
        let v = crate::verify::Verification::unjudged("m", "reset-conversation", "none");
        conn.execute_batch(&format!(
            "INSERT INTO batches (id, task, created_at, callback_url)
                 VALUES ('b1', 'reset-conversation', 5, 'http://127.0.0.1:1/b');
             INSERT INTO jobs (id, task, model, output, status, result, attempts, created_at,
                               finished_at, callback_url, task_choice)
                 VALUES ('done', 'reset-conversation', 'm', 'x', 'running', '{}', 1, 1, NULL,
                         'http://127.0.0.1:1/a', '{}');
             UPDATE jobs SET status = 'done', finished_at = 2 WHERE id = 'done';
             UPDATE callbacks SET state = 'delivered', attempts = 1, body = '{{}}';
             INSERT INTO artifacts (job_id, name, media_type, data)
                 VALUES ('done', 'end.png', 'image/png', x'89504e47');
             INSERT INTO jobs (id, batch_id, task, model, output, status, attempts, created_at,
                               callback_url)
                 VALUES ('queued', 'b1', 'reset-conversation', 'm', 'y', 'queued', 0, 3, 'http://127.0.0.1:1/q'),
                        ('running', 'b1', 'reset-conversation', 'm', 'z', 'running', 1, 4, NULL);",
            serde_json::to_string(&v).unwrap().replace('\'', "''"),
            serde_json::to_string(&TaskChoice::given("reset-conversation"))
                .unwrap()
                .replace('\'', "''"),
        ))
        .unwrap();
        assert_eq!(
            deliveries(dir.path()).len(),
            1,
            "the fixture's trigger queued the finished job's delivery"
        );
    }
    let old_delivery = deliveries(dir.path()).remove(0);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(user_version(dir.path()), i64::from(migrate::latest()));
    let triggers: i64 = raw(dir.path())
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(triggers, 0, "no logic left in triggers");

    let done = store.job("done").await.unwrap().expect("kept");
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.result.unwrap().model, "m");
    assert_eq!(
        done.callback,
        Some(CallbackStatus {
            url: "http://127.0.0.1:1/a".into(),
            state: DeliveryState::Delivered,
            attempts: 1,
            last_error: None,
        })
    );
    assert_eq!(
        store.artifact("done", "end.png").await.unwrap(),
        Some(("image/png".into(), vec![0x89, 0x50, 0x4e, 0x47]))
    );
    assert_eq!(
        store
            .callback_body(&old_delivery.2)
            .await
            .unwrap()
            .as_deref(),
        Some("{}")
    );
    let batch = store.batch("b1").await.unwrap().expect("kept");
    assert_eq!(batch.jobs.len(), 2);
    assert_eq!(store.batch_unfinished("b1").await.unwrap(), Some(2));

    // The running job a kill left goes back to the queue, behind none.
    let recovered = store.recover().await.unwrap();
    assert_eq!((recovered.requeued, recovered.given_up), (1, 0));
    for id in ["queued", "running"] {
        let claimed = store.claim_next().await.unwrap().unwrap();
        assert_eq!(claimed.id, id, "in the order submitted");
        store
            .finish(&claimed.lease, Status::Done, None, None)
            .await
            .unwrap();
    }
    let all = deliveries(dir.path());
    let queued: Vec<_> = all
        .iter()
        .map(|(s, e, _)| (s.as_str(), e.as_str()))
        .collect();
    assert_eq!(
        queued,
        [
            ("done", VERIFICATION_FINISHED),
            ("queued", VERIFICATION_FINISHED),
            ("b1", BATCH_FINISHED),
        ],
        "each once, by the store now, not by a trigger"
    );
    for (_, _, id) in &all {
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "delivery ids as before: {id}"
        );
    }
    // Opening again migrates nothing twice.
    drop(store);
    SqliteStore::open(dir.path()).unwrap();
}

#[tokio::test]
async fn a_store_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let ids = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    drop(store);
    let newer = i64::from(migrate::latest()) + 1;
    raw(dir.path())
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let refused = SqliteStore::open(dir.path()).map(drop);
    assert!(
        matches!(&refused, Err(StoreError::TooNew { found, .. }) if *found == newer),
        "{refused:?}"
    );
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("newer than this qtjudge knows"),
        "{message}"
    );
    assert_eq!(user_version(dir.path()), newer);
    let kept: i64 = raw(dir.path())
        .query_row("SELECT COUNT(*) FROM jobs WHERE id = ?1", [&ids[0]], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, 1);
}
