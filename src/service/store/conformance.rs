//! What every job store must do, as tests over `&dyn JobStore`: each
//! function here is one test, given a fresh store; a store runs them all
//! with `job_store_tests!` and a function that opens a fresh one. What is
//! about one store's files (reopening, its older schemas) stays with it.

use super::{
    now_ms, BatchDetail, CallbackAttempt, CallbackStatus, DeliveryState, JobStore, Lease, NewBatch,
    NewJob, Recovered, Status, StoreError, BATCH_FINISHED, MAX_ATTEMPTS, VERIFICATION_FINISHED,
};
use crate::harness::Artifact;
use crate::task::TaskChoice;
use crate::verify::Verification;

/// One `#[tokio::test]` per function of this module, each on a store from
/// `$open` (an async function giving the store and whatever keeps it
/// alive, such as its temporary folder; or `None` when the store's server
/// is out of reach outside CI: the test is then skipped, as it said).
macro_rules! job_store_tests {
    ($open:path) => {
        $crate::service::store::conformance::job_store_tests!(
            $open;
            an_accepted_job_reads_back_as_it_was_given,
            a_jobs_input_reads_back_to_run_it_again,
            a_full_queue_refuses_the_whole_submission,
            jobs_are_claimed_oldest_first_each_under_a_new_lease,
            jobs_left_running_by_a_crash_are_queued_again_then_given_up,
            finishing_queues_one_delivery_per_job_and_one_per_batch_when_it_is_complete,
            a_job_given_up_at_recovery_has_its_callback_queued,
            a_claim_ended_by_recovery_writes_nothing_more,
            a_run_the_engine_failed_is_requeued_then_given_up_with_its_callback,
            released_claims_are_queued_again_without_counting_an_attempt,
            a_finished_job_keeps_its_result_screenshots_and_chosen_task,
            a_batch_summary_leaves_out_metadata_and_the_bulky_result,
            pruning_deletes_old_finished_jobs_emptied_batches_and_settled_deliveries,
            a_delivery_keeps_its_body_and_records_each_attempt,
            listings_and_depth_count_what_is_stored,
        );
    };
    ($open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((store, _keep)) = $open().await else {
                    return;
                };
                $crate::service::store::conformance::$name(&*store).await;
            }
        )*
    };
}
pub(crate) use job_store_tests;

const TASK: &str = "reset-conversation";

fn job(callback_url: Option<&str>) -> NewJob {
    NewJob {
        sample: None,
        task: TASK.into(),
        model: "m".into(),
        output: "Sorry, I cannot help with that.".into(),
        metadata: Some(serde_json::json!({"run": 7})),
        callback_url: callback_url.map(String::from),
        upload: None,
        task_choice: Some(TaskChoice::given(TASK)),
    }
}

fn batch(id: &str, callback_url: Option<&str>) -> NewBatch {
    NewBatch {
        id: id.into(),
        task: TASK.into(),
        callback_url: callback_url.map(String::from),
    }
}

/// Claims the next job, which must be `id`.
async fn claim(store: &dyn JobStore, id: &str) -> Lease {
    let claimed = store.claim_next().await.unwrap().expect("a job to claim");
    assert_eq!(claimed.id, id, "oldest first");
    assert_eq!(claimed.lease.job_id, claimed.id);
    claimed.lease
}

async fn claim_and_finish(store: &dyn JobStore, id: &str, status: Status) {
    let lease = claim(store, id).await;
    store.finish(&lease, status, None, None).await.unwrap();
}

fn sorted<T: Ord>(mut all: Vec<T>) -> Vec<T> {
    all.sort();
    all
}

/// (subject, event) of every pending delivery, sorted.
async fn deliveries(store: &dyn JobStore) -> Vec<(String, String)> {
    let mut all: Vec<_> = store
        .pending_callbacks()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.subject, p.event))
        .collect();
    all.sort();
    all
}

pub(crate) async fn an_accepted_job_reads_back_as_it_was_given(store: &dyn JobStore) {
    let ids = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    let record = store.job(&ids[0]).await.unwrap().expect("the job is there");
    assert_eq!(record.status, Status::Queued);
    assert_eq!((record.task.as_str(), record.model.as_str()), (TASK, "m"));
    assert_eq!(record.metadata, Some(serde_json::json!({"run": 7})));
    assert_eq!(record.task_choice, Some(TaskChoice::given(TASK)));
    assert_eq!((record.attempts, record.callback), (0, None));
    assert!(record.result.is_none() && record.started_at.is_none());
    assert!(store.job("no-such-job").await.unwrap().is_none());
}

/// A page's re-run submits what the job was given: its answer, or its
/// app still compressed, as enqueued.
pub(crate) async fn a_jobs_input_reads_back_to_run_it_again(store: &dyn JobStore) {
    let upload = crate::bundle::Upload {
        kind: crate::bundle::InputKind::Zip,
        name: "app.zip".into(),
        entry: Some("main.py".into()),
        bytes: vec![b'P', b'K', 0, 1, 2, 255],
    };
    let app = NewJob {
        output: String::new(),
        upload: Some(upload.clone()),
        ..job(None)
    };
    let ids = store.enqueue(vec![job(None), app], None, 10).await.unwrap();
    let answer = store
        .job_input(&ids[0])
        .await
        .unwrap()
        .expect("the job is there");
    assert_eq!(
        answer,
        super::JobInput {
            output: "Sorry, I cannot help with that.".into(),
            upload: None
        }
    );
    let app = store
        .job_input(&ids[1])
        .await
        .unwrap()
        .expect("the job is there");
    assert_eq!((app.output.as_str(), app.upload), ("", Some(upload)));
    assert!(store.job_input("no-such-job").await.unwrap().is_none());
}

pub(crate) async fn a_full_queue_refuses_the_whole_submission(store: &dyn JobStore) {
    store.enqueue(vec![job(None)], None, 2).await.unwrap();
    let refused = store
        .enqueue(vec![job(None), job(None)], Some(batch("b1", None)), 2)
        .await;
    assert!(
        matches!(refused, Err(StoreError::QueueFull { queued: 1, max: 2 })),
        "{refused:?}"
    );
    assert_eq!(
        store.depth().await.unwrap().queued,
        1,
        "nothing of a refused batch is kept"
    );
    assert!(store.batch("b1").await.unwrap().is_none());
}

pub(crate) async fn jobs_are_claimed_oldest_first_each_under_a_new_lease(store: &dyn JobStore) {
    let ids = store
        .enqueue(vec![job(None), job(None)], None, 10)
        .await
        .unwrap();
    let first = store.claim_next().await.unwrap().unwrap();
    assert_eq!(first.id, ids[0]);
    assert_eq!(
        (first.task.as_str(), first.output.as_str()),
        (TASK, "Sorry, I cannot help with that.")
    );
    assert_eq!(first.task_choice, Some(TaskChoice::given(TASK)));
    let running = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((running.status, running.attempts), (Status::Running, 1));
    assert!(running.started_at.is_some());
    claim(store, &ids[1]).await;
    assert!(store.claim_next().await.unwrap().is_none(), "none left");
    store.recover().await.unwrap();
    let again = claim(store, &ids[0]).await;
    assert_ne!(again, first.lease, "each claim its own lease");
}

pub(crate) async fn jobs_left_running_by_a_crash_are_queued_again_then_given_up(
    store: &dyn JobStore,
) {
    let ids = store
        .enqueue(vec![job(None), job(None)], None, 10)
        .await
        .unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        claim(store, &ids[0]).await;
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
    assert!(given_up.finished_at.is_some());
    assert!(given_up.error.unwrap().contains("given up"));
    assert_eq!(
        store.job(&ids[1]).await.unwrap().unwrap().status,
        Status::Queued
    );
}

pub(crate) async fn finishing_queues_one_delivery_per_job_and_one_per_batch_when_it_is_complete(
    store: &dyn JobStore,
) {
    let single = store
        .enqueue(vec![job(Some("http://127.0.0.1:1/a")), job(None)], None, 10)
        .await
        .unwrap();
    let in_batch = store
        .enqueue(
            vec![job(None), job(None)],
            Some(batch("b1", Some("http://127.0.0.1:1/b"))),
            10,
        )
        .await
        .unwrap();
    assert!(deliveries(store).await.is_empty());

    let lease = claim(store, &single[0]).await;
    assert!(deliveries(store).await.is_empty(), "not finished yet");
    store
        .finish(&lease, Status::Done, None, None)
        .await
        .unwrap();
    claim_and_finish(store, &single[1], Status::Done).await;
    assert_eq!(
        deliveries(store).await,
        [(single[0].clone(), VERIFICATION_FINISHED.to_string())],
        "only the job that named a callback"
    );

    claim_and_finish(store, &in_batch[0], Status::Error).await;
    assert_eq!(
        deliveries(store).await.len(),
        1,
        "the batch is not complete"
    );
    let last = claim(store, &in_batch[1]).await;
    store.finish(&last, Status::Done, None, None).await.unwrap();
    let again = store.finish(&last, Status::Done, None, None).await;
    assert!(
        matches!(again, Err(StoreError::LeaseLost { .. })),
        "a finished job is finished once: {again:?}"
    );
    assert_eq!(
        deliveries(store).await,
        sorted(vec![
            ("b1".to_string(), BATCH_FINISHED.to_string()),
            (single[0].clone(), VERIFICATION_FINISHED.to_string()),
        ]),
        "once, however often its last job finishes"
    );
    let ids: std::collections::HashSet<String> = store
        .pending_callbacks()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids.len(), 2, "each delivery its own id");

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

pub(crate) async fn a_job_given_up_at_recovery_has_its_callback_queued(store: &dyn JobStore) {
    let ids = store
        .enqueue(
            vec![job(Some("http://127.0.0.1:1/a"))],
            Some(batch("b1", Some("http://127.0.0.1:1/b"))),
            10,
        )
        .await
        .unwrap();
    for _ in 0..MAX_ATTEMPTS {
        claim(store, &ids[0]).await;
        assert!(deliveries(store).await.is_empty());
        store.recover().await.unwrap();
    }
    assert_eq!(
        deliveries(store).await,
        sorted(vec![
            ("b1".to_string(), BATCH_FINISHED.to_string()),
            (ids[0].clone(), VERIFICATION_FINISHED.to_string()),
        ])
    );
}

pub(crate) async fn a_claim_ended_by_recovery_writes_nothing_more(store: &dyn JobStore) {
    let ids = store
        .enqueue(vec![job(Some("http://127.0.0.1:1/a"))], None, 10)
        .await
        .unwrap();
    let stale = claim(store, &ids[0]).await;
    store.recover().await.unwrap();
    let lost = |r: Result<(), StoreError>| matches!(r, Err(StoreError::LeaseLost { .. }));
    assert!(
        lost(store.finish(&stale, Status::Done, None, None).await),
        "queued again: not the old claim's to finish"
    );
    let current = claim(store, &ids[0]).await;
    assert!(lost(store.finish(&stale, Status::Done, None, None).await));
    assert!(lost(
        store
            .set_task(&stale, &TaskChoice::given("generic-reset"))
            .await
    ));
    assert!(matches!(
        store.requeue_after_engine_fault(&stale, "late").await,
        Err(StoreError::LeaseLost { .. })
    ));
    let job = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((job.status, job.task.as_str()), (Status::Running, TASK));
    assert!(deliveries(store).await.is_empty());
    store
        .finish(&current, Status::Done, None, None)
        .await
        .unwrap();
    assert_eq!(deliveries(store).await.len(), 1);
}

pub(crate) async fn a_run_the_engine_failed_is_requeued_then_given_up_with_its_callback(
    store: &dyn JobStore,
) {
    let ids = store
        .enqueue(vec![job(Some("http://127.0.0.1:1/a"))], None, 10)
        .await
        .unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        let lease = claim(store, &ids[0]).await;
        let requeued = store
            .requeue_after_engine_fault(&lease, "cut")
            .await
            .unwrap();
        assert_eq!(requeued, attempt < MAX_ATTEMPTS, "attempt {attempt}");
    }
    let job = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (Status::Error, MAX_ATTEMPTS));
    let error = job.error.unwrap();
    assert!(
        error.contains("failed this verification 3 times") && error.contains("cut"),
        "says why: {error}"
    );
    assert_eq!(deliveries(store).await.len(), 1);
    assert!(store.claim_next().await.unwrap().is_none());
}

pub(crate) async fn released_claims_are_queued_again_without_counting_an_attempt(
    store: &dyn JobStore,
) {
    let ids = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    let released = claim(store, &ids[0]).await;
    assert_eq!(store.release_claims().await.unwrap(), 1);
    let job = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (Status::Queued, 0));
    assert!(job.started_at.is_none());
    assert!(matches!(
        store.finish(&released, Status::Done, None, None).await,
        Err(StoreError::LeaseLost { .. })
    ));
    claim(store, &ids[0]).await;
    assert_eq!(store.job(&ids[0]).await.unwrap().unwrap().attempts, 1);
}

pub(crate) async fn a_finished_job_keeps_its_result_screenshots_and_chosen_task(
    store: &dyn JobStore,
) {
    let ids = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    let lease = claim(store, &ids[0]).await;
    let choice = TaskChoice {
        task: "generic-reset".into(),
        how: "resembles".into(),
        reason: "it resembles nothing better".into(),
        score: Some(0.5),
    };
    store.set_task(&lease, &choice).await.unwrap();
    let mut v = Verification::unjudged("m", "generic-reset", "none");
    v.reason = "a reason worth keeping".into();
    v.artifacts.push(Artifact {
        name: "after_reset.png".into(),
        media_type: "image/png".into(),
        size: 3,
        path: None,
        data: vec![1, 2, 3],
    });
    store
        .finish(&lease, Status::Done, Some(&v), None)
        .await
        .unwrap();
    let done = store.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.task, "generic-reset");
    assert_eq!(done.task_choice, Some(choice));
    assert!(done.finished_at.is_some() && done.error.is_none());
    assert_eq!(done.result.unwrap().reason, "a reason worth keeping");
    assert_eq!(
        store.artifact(&ids[0], "after_reset.png").await.unwrap(),
        Some(("image/png".to_string(), vec![1, 2, 3]))
    );
    assert!(store
        .artifact(&ids[0], "other.png")
        .await
        .unwrap()
        .is_none());
}

pub(crate) async fn a_batch_summary_leaves_out_metadata_and_the_bulky_result(store: &dyn JobStore) {
    let ids = store
        .enqueue(vec![job(None), job(None)], Some(batch("b1", None)), 10)
        .await
        .unwrap();
    assert_eq!(store.batch_unfinished("b1").await.unwrap(), Some(2));
    assert_eq!(store.batch_unfinished("b2").await.unwrap(), None);
    let lease = claim(store, &ids[0]).await;
    let mut v = Verification::unjudged("m", TASK, "none");
    v.reason = "why".into();
    v.script = Some("print('a long script')".into());
    store
        .finish(&lease, Status::Done, Some(&v), None)
        .await
        .unwrap();
    assert_eq!(store.batch_unfinished("b1").await.unwrap(), Some(1));
    let full = store.batch("b1").await.unwrap().unwrap();
    let summary = store
        .batch_with("b1", BatchDetail::Summary)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((full.id.as_str(), full.task.as_str()), ("b1", TASK));
    let order: Vec<_> = full.jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(order, ids, "in the order submitted");
    assert!(full.jobs[0].metadata.is_some());
    assert!(full.jobs[0].result.as_ref().unwrap().script.is_some());
    let light = &summary.jobs[0];
    assert!(light.metadata.is_none());
    let result = light.result.as_ref().unwrap();
    assert_eq!(result.reason, "why");
    assert!(result.script.is_none());
    assert_eq!(summary.jobs[1].status, Status::Queued);
}

pub(crate) async fn pruning_deletes_old_finished_jobs_emptied_batches_and_settled_deliveries(
    store: &dyn JobStore,
) {
    let ids = store
        .enqueue(
            vec![job(Some("http://127.0.0.1:1/a"))],
            Some(batch("b1", None)),
            10,
        )
        .await
        .unwrap();
    let queued = store.enqueue(vec![job(None)], None, 10).await.unwrap();
    let lease = claim(store, &ids[0]).await;
    let mut v = Verification::unjudged("m", TASK, "none");
    v.artifacts.push(Artifact {
        name: "end.png".into(),
        media_type: "image/png".into(),
        size: 1,
        path: None,
        data: vec![0],
    });
    store
        .finish(&lease, Status::Done, Some(&v), None)
        .await
        .unwrap();
    let delivery = store.pending_callbacks().await.unwrap().remove(0);
    assert_eq!(
        store.prune(now_ms() - 60_000).await.unwrap(),
        0,
        "young jobs stay"
    );
    assert_eq!(store.prune(now_ms() + 1).await.unwrap(), 1);
    assert!(store.job(&ids[0]).await.unwrap().is_none());
    assert!(store.artifact(&ids[0], "end.png").await.unwrap().is_none());
    assert!(store.batch("b1").await.unwrap().is_none());
    assert!(
        store.job(&queued[0]).await.unwrap().is_some(),
        "unfinished jobs stay"
    );
    assert_eq!(
        store.pending_callbacks().await.unwrap().len(),
        1,
        "a pending delivery stays (it reports the job gone)"
    );
    store
        .callback_attempted(
            &delivery.id,
            CallbackAttempt {
                attempts: 1,
                state: DeliveryState::Failed,
                next_attempt_ms: now_ms(),
                last_error: None,
            },
        )
        .await
        .unwrap();
    store.prune(now_ms() + 1).await.unwrap();
    store
        .set_callback_body(&delivery.id, "{}".into())
        .await
        .unwrap();
    assert_eq!(
        store.callback_body(&delivery.id).await.unwrap(),
        None,
        "a settled delivery of a pruned job is gone"
    );
}

pub(crate) async fn a_delivery_keeps_its_body_and_records_each_attempt(store: &dyn JobStore) {
    let ids = store
        .enqueue(vec![job(Some("http://127.0.0.1:1/a"))], None, 10)
        .await
        .unwrap();
    claim_and_finish(store, &ids[0], Status::Done).await;
    let pending = store.pending_callbacks().await.unwrap();
    assert_eq!(pending.len(), 1);
    let p = &pending[0];
    assert_eq!(
        (p.subject.as_str(), p.event.as_str(), p.url.as_str()),
        (
            ids[0].as_str(),
            VERIFICATION_FINISHED,
            "http://127.0.0.1:1/a"
        )
    );
    assert_eq!((p.attempts, p.next_attempt_ms), (0, 0));
    assert_eq!(store.callback_body(&p.id).await.unwrap(), None);
    store
        .set_callback_body(&p.id, "{\"id\":1}".into())
        .await
        .unwrap();
    assert_eq!(
        store.callback_body(&p.id).await.unwrap().as_deref(),
        Some("{\"id\":1}")
    );
    let due = now_ms() + 1000;
    store
        .callback_attempted(
            &p.id,
            CallbackAttempt {
                attempts: 1,
                state: DeliveryState::Pending,
                next_attempt_ms: due,
                last_error: Some("503".into()),
            },
        )
        .await
        .unwrap();
    let again = store.pending_callbacks().await.unwrap();
    assert_eq!((again[0].attempts, again[0].next_attempt_ms), (1, due));
    let status = store.job(&ids[0]).await.unwrap().unwrap().callback.unwrap();
    assert_eq!(
        (status.state, status.attempts, status.last_error.as_deref()),
        (DeliveryState::Pending, 1, Some("503"))
    );
    store
        .callback_attempted(
            &p.id,
            CallbackAttempt {
                attempts: 2,
                state: DeliveryState::Delivered,
                next_attempt_ms: due,
                last_error: None,
            },
        )
        .await
        .unwrap();
    assert!(store.pending_callbacks().await.unwrap().is_empty());
    let status = store.job(&ids[0]).await.unwrap().unwrap().callback.unwrap();
    assert_eq!(
        (status.state, status.attempts, status.last_error),
        (DeliveryState::Delivered, 2, None)
    );
}

pub(crate) async fn listings_and_depth_count_what_is_stored(store: &dyn JobStore) {
    let singles = store
        .enqueue(vec![job(None), job(None)], None, 10)
        .await
        .unwrap();
    store
        .enqueue(vec![job(None), job(None)], Some(batch("b1", None)), 10)
        .await
        .unwrap();
    claim_and_finish(store, &singles[0], Status::Done).await;
    claim(store, &singles[1]).await;
    let depth = store.depth().await.unwrap();
    assert_eq!((depth.queued, depth.running), (2, 1));
    let recent = store.recent_jobs(3).await.unwrap();
    assert_eq!(recent.len(), 3, "at most the limit");
    assert_eq!(recent[2].id, singles[1], "newest first");
    assert!(recent.iter().all(|j| j.metadata.is_none()), "summaries");
    let batches = store.recent_batches(10).await.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        (batches[0].id.as_str(), batches[0].jobs, batches[0].finished),
        ("b1", 2, 0)
    );
}
