//! The PostgreSQL store's tests: every job store's tests (`conformance`),
//! each in a schema of its own (so they run in parallel), and what only a
//! shared store does: leases that expire, a late write refused, replicas
//! claiming from one queue without running a job twice, one queue limit.
//!
//! They need a server: `QTJUDGE_TEST_POSTGRES` (default
//! [`DEFAULT_TEST_URL`], what `scripts/postgres` starts). Without one they
//! fail in CI and skip, loudly, elsewhere.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::super::conformance::job_store_tests;
use super::*;

/// Where `scripts/postgres` (run by `scripts/setup`) listens.
pub(crate) const DEFAULT_TEST_URL: &str = "postgres://qtjudge:qtjudge@127.0.0.1:54329/qtjudge_test";

pub(crate) fn test_url() -> String {
    std::env::var("QTJUDGE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_TEST_URL.to_string())
}

/// A schema made for one test, dropped when it ends.
pub(crate) struct Schema {
    pub url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await: a thread of its own, with its own runtime.
        let (admin, name) = (test_url(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        // Bounded: a connection of the test's stores still
                        // in a transaction would otherwise hold it forever.
                        .batch_execute(&format!(
                            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A fresh schema, or `None` (outside CI, said loudly) without a server.
pub(crate) async fn schema() -> Option<Schema> {
    let admin = test_url();
    let (client, connection) = match tokio_postgres::connect(&admin, NoTls).await {
        Ok(pair) => pair,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but PostgreSQL is not reachable at {admin}: {e} (scripts/postgres starts it)")
        }
        Err(e) => {
            eprintln!("\n!!! SKIPPED: PostgreSQL is not reachable at {admin}: {e}; run scripts/postgres (or set QTJUDGE_TEST_POSTGRES)\n");
            return None;
        }
    };
    tokio::spawn(connection);
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .unwrap();
    let separator = if admin.contains('?') { '&' } else { '?' };
    Some(Schema {
        url: format!("{admin}{separator}options=-c%20search_path%3D{name}"),
        name,
    })
}

async fn fresh() -> Option<(Arc<dyn JobStore>, Schema)> {
    let schema = schema().await?;
    let store = PostgresStore::open(&schema.url, Options::default())
        .await
        .unwrap();
    Some((Arc::new(store), schema))
}

job_store_tests!(fresh);

fn job() -> NewJob {
    NewJob {
        sample: None,
        task: "reset-conversation".into(),
        model: "m\0with a NUL".into(),
        output: "print('a NUL \0 in an answer')".into(),
        metadata: None,
        callback_url: Some("http://127.0.0.1:1/a".into()),
        upload: None,
        task_choice: None,
    }
}

/// A replica that stops answering: its claims expire after `ttl`.
async fn silent(url: &str, ttl: Duration) -> PostgresStore {
    PostgresStore::open(
        url,
        Options {
            lease_ttl: ttl,
            heartbeat: false,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn an_expired_lease_is_run_again_by_another_replica_and_its_late_write_refused() {
    let Some(schema) = schema().await else { return };
    let dead = silent(&schema.url, Duration::from_millis(500)).await;
    let alive = PostgresStore::open(&schema.url, Options::default())
        .await
        .unwrap();
    let ids = dead.enqueue(vec![job()], None, 10).await.unwrap();
    let stale = dead.claim_next().await.unwrap().unwrap();
    assert_eq!(stale.output, "print('a NUL \0 in an answer')", "bytes kept");
    assert!(
        alive.claim_next().await.unwrap().is_none(),
        "held, not yet expired"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let lost = |r: Result<()>| matches!(r, Err(StoreError::LeaseLost { .. }));
    assert!(
        lost(dead.finish(&stale.lease, Status::Done, None, None).await),
        "an expired lease writes nothing, even before anyone took the job over"
    );
    let current = alive
        .claim_next()
        .await
        .unwrap()
        .expect("the expired job, again");
    assert_eq!(current.id, ids[0]);
    assert_ne!(current.lease, stale.lease);
    assert!(lost(
        dead.finish(&stale.lease, Status::Done, None, None).await
    ));
    assert!(lost(
        dead.set_task(&stale.lease, &TaskChoice::given("generic-reset"))
            .await
    ));
    assert!(matches!(
        dead.requeue_after_engine_fault(&stale.lease, "late").await,
        Err(StoreError::LeaseLost { .. })
    ));
    alive
        .finish(&current.lease, Status::Done, None, None)
        .await
        .unwrap();
    let record = alive.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Done, 2));
    assert_eq!(record.model, "m\u{FFFD}with a NUL");
    assert_eq!(
        alive.pending_callbacks().await.unwrap().len(),
        1,
        "one delivery"
    );
}

#[tokio::test]
async fn a_live_replica_keeps_its_lease_past_the_ttl_by_its_heartbeat() {
    let Some(schema) = schema().await else { return };
    let ttl = Duration::from_millis(600);
    let holder = PostgresStore::open(
        &schema.url,
        Options {
            lease_ttl: ttl,
            heartbeat: true,
        },
    )
    .await
    .unwrap();
    let other = silent(&schema.url, ttl).await;
    holder.enqueue(vec![job()], None, 10).await.unwrap();
    let claimed = holder.claim_next().await.unwrap().unwrap();
    tokio::time::sleep(ttl * 3).await;
    assert!(other.claim_next().await.unwrap().is_none(), "still held");
    holder
        .finish(&claimed.lease, Status::Done, None, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn replicas_claiming_at_once_run_every_job_exactly_once() {
    let Some(schema) = schema().await else { return };
    let a = Arc::new(
        PostgresStore::open(&schema.url, Options::default())
            .await
            .unwrap(),
    );
    let b = Arc::new(
        PostgresStore::open(&schema.url, Options::default())
            .await
            .unwrap(),
    );
    let jobs: Vec<NewJob> = (0..40).map(|_| job()).collect();
    let ids = a
        .enqueue(
            jobs,
            Some(NewBatch {
                id: "b".into(),
                task: "reset-conversation".into(),
                callback_url: Some("http://127.0.0.1:1/b".into()),
            }),
            100,
        )
        .await
        .unwrap();
    let mut workers = Vec::new();
    for store in [a.clone(), b.clone(), a.clone(), b.clone()] {
        workers.push(tokio::spawn(async move {
            let mut ran = Vec::new();
            while let Some(c) = store.claim_next().await.unwrap() {
                store
                    .finish(&c.lease, Status::Done, None, None)
                    .await
                    .unwrap();
                ran.push(c.id);
            }
            ran
        }));
    }
    let mut ran = Vec::new();
    for w in workers {
        ran.extend(w.await.unwrap());
    }
    assert_eq!(ran.len(), ids.len(), "each job once");
    let unique: HashSet<_> = ran.iter().collect();
    assert_eq!(unique.len(), ids.len());
    let deliveries = b.pending_callbacks().await.unwrap();
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d.event == BATCH_FINISHED)
            .count(),
        1,
        "the batch's callback once, whoever finished its last job"
    );
    assert!(
        a.pending_callbacks().await.unwrap().is_empty(),
        "held by the replica that listed them"
    );
}

#[tokio::test]
async fn the_queue_limit_counts_every_replicas_jobs() {
    let Some(schema) = schema().await else { return };
    let a = PostgresStore::open(&schema.url, Options::default())
        .await
        .unwrap();
    let b = PostgresStore::open(&schema.url, Options::default())
        .await
        .unwrap();
    a.enqueue(vec![job(), job()], None, 3).await.unwrap();
    let refused = b.enqueue(vec![job(), job()], None, 3).await;
    assert!(
        matches!(refused, Err(StoreError::QueueFull { queued: 2, max: 3 })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_server_out_of_reach_is_refused_at_open_without_its_password() {
    // A port nothing listens on.
    let refused = PostgresStore::open(
        "postgres://qtjudge:qtjudge@127.0.0.1:1/qtjudge_test",
        Options::default(),
    )
    .await;
    let Err(e) = refused else {
        panic!("opened a store on port 1")
    };
    assert!(matches!(e, StoreError::Connect { .. }), "{e:?}");
    assert!(
        !e.to_string().contains("qtjudge:qtjudge"),
        "no password in: {e}"
    );
}

#[tokio::test]
async fn a_silent_replica_is_claimed_dead_by_one_replica_at_a_time_and_forgotten_once_reaped() {
    let Some(schema) = schema().await else { return };
    let ttl = Duration::from_millis(400);
    let a = silent(&schema.url, ttl).await;
    let b = silent(&schema.url, ttl).await;
    let c = silent(&schema.url, ttl).await;
    a.say_alive("node-a:1:1").await.unwrap();
    let a_spoke = std::time::Instant::now();
    b.say_alive("node-b:2:2").await.unwrap();
    assert!(b.claim_dead().await.unwrap().is_empty(), "both just spoke");
    // A falls silent; B keeps speaking.
    for _ in 0..5 {
        tokio::time::sleep(ttl / 2).await;
        b.say_alive("node-b:2:2").await.unwrap();
    }
    assert_eq!(
        b.claim_dead().await.unwrap(),
        vec!["node-a:1:1".to_string()]
    );
    assert!(
        c.claim_dead().await.unwrap().is_empty(),
        "claimed by B: no one else reaps it meanwhile"
    );
    // B's claim lapses unreaped (B died while reaping): C may take it.
    tokio::time::sleep(ttl + ttl / 2).await;
    b.say_alive("node-b:2:2").await.unwrap();
    let taken = c.claim_dead().await.unwrap();
    assert_eq!(taken, vec!["node-a:1:1".to_string()]);
    // B's late word counts for nothing: still C's claim.
    b.forget_dead(&taken).await.unwrap();
    assert!(b.claim_dead().await.unwrap().is_empty(), "still C's claim");
    // Reaped, not yet forgotten: claimed again once C's claim lapses (a
    // container created late is reaped by a later round).
    c.forget_dead(&taken).await.unwrap();
    tokio::time::sleep(ttl + ttl / 2).await;
    b.say_alive("node-b:2:2").await.unwrap();
    assert_eq!(b.claim_dead().await.unwrap(), taken, "reaped again");
    // Silent for twenty leases: forgotten.
    while a_spoke.elapsed() < ttl * 21 {
        tokio::time::sleep(ttl).await;
    }
    b.say_alive("node-b:2:2").await.unwrap();
    b.forget_dead(&taken).await.unwrap();
    tokio::time::sleep(ttl + ttl / 2).await;
    b.say_alive("node-b:2:2").await.unwrap();
    assert!(b.claim_dead().await.unwrap().is_empty(), "forgotten");
    // A replica that speaks again is alive again.
    a.say_alive("node-a:1:1").await.unwrap();
    tokio::time::sleep(ttl + ttl / 2).await;
    b.say_alive("node-b:2:2").await.unwrap();
    assert!(b.claim_dead().await.unwrap().is_empty());
}
