//! The store's own tests: what is accepted is on disk and survives a
//! reopen, an older store gains its new columns, a full queue refuses a
//! whole submission, jobs a crash left running are queued again and then
//! given up.

use super::*;

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
