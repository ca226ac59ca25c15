//! The warm pool (issue 6): one answer per container, stale containers
//! never handed out, nothing left behind on shutdown.

use std::time::Duration;

use qtjudge::grading::verdict::Label;
use qtjudge::sandbox::docker::{count_labelled, DockerSandbox};
use qtjudge::sandbox::warm_pool::PoolConfig;

use crate::support::{docker, fixture, prepared};

async fn wait_for_warm(sandbox: &DockerSandbox, count: usize) -> Vec<String> {
    // A container joins the pool once its harness is warm: a second or so,
    // much longer when the tests load both cores.
    for _ in 0..300 {
        let labels = sandbox.warm_labels();
        if labels.len() >= count {
            return labels;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the pool never filled to {count}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_warm_container_serves_one_answer_and_shutdown_leaves_nothing() {
    let Some(cold) = docker().await else { return };
    let sandbox = (*cold).clone().with_warm_pool(PoolConfig::with_size(2));
    let answer = fixture("correct.py");
    // The first verification starts cold and fills the pool behind it.
    let first = qtjudge::verify::verify(&answer, "first", &prepared(), &sandbox).await;
    assert_eq!(first.label, Label::Flawless, "{first:#?}");
    let warm = wait_for_warm(&sandbox, 2).await;
    let second = qtjudge::verify::verify(&answer, "second", &prepared(), &sandbox).await;
    assert_eq!(second.label, Label::Flawless, "{second:#?}");
    assert!(
        warm.contains(&second.run_id),
        "the second answer should run in a warm container"
    );
    sandbox.settled().await;
    assert_eq!(
        count_labelled(sandbox.engine(), Some(&second.run_id))
            .await
            .unwrap(),
        0,
        "a served container is removed"
    );
    let third = qtjudge::verify::verify(&answer, "third", &prepared(), &sandbox).await;
    assert_ne!(
        third.run_id, second.run_id,
        "a container never serves twice"
    );

    let ready = wait_for_warm(&sandbox, 1).await;
    sandbox.shutdown().await;
    for label in ready {
        assert_eq!(
            count_labelled(sandbox.engine(), Some(&label))
                .await
                .unwrap(),
            0,
            "warm container {label} left after shutdown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_warm_container_is_never_handed_out() {
    let Some(cold) = docker().await else { return };
    let config = PoolConfig {
        size: 1,
        // Counted from the container's start: long enough for its harness
        // to warm up on a loaded machine (else it is stale on arrival).
        max_age: Duration::from_secs(8),
        idle_after: Duration::from_secs(60),
    };
    let sandbox = (*cold).clone().with_warm_pool(config);
    let answer = fixture("correct.py");
    qtjudge::verify::verify(&answer, "fills-the-pool", &prepared(), &sandbox).await;
    let stale = wait_for_warm(&sandbox, 1).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let v = qtjudge::verify::verify(&answer, "after-expiry", &prepared(), &sandbox).await;
    assert_eq!(v.label, Label::Flawless, "{v:#?}");
    assert!(
        !stale.contains(&v.run_id),
        "a stale container was handed out"
    );
    assert_eq!(
        count_labelled(sandbox.engine(), Some(&stale[0]))
            .await
            .unwrap(),
        0,
        "the stale container was removed"
    );
    sandbox.shutdown().await;
}

/// A service stopping mid-batch abandons its running verifications: each
/// is cut off wherever it is (creating, attaching, starting or serving its
/// container), and the engine may finish a creation whose caller is gone.
/// Shutdown must still leave no container of the sandbox behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_abandoned_at_any_point_leave_nothing_after_shutdown() {
    let Some(cold) = docker().await else { return };
    let sandbox = std::sync::Arc::new((*cold).clone().with_warm_pool(PoolConfig::with_size(1)));
    let answer = fixture("correct.py");
    let mut runs = Vec::new();
    // Cut-offs spread over a cold verification's life (about 1 s here).
    for (n, cut_after_ms) in [0u64, 15, 40, 80, 150, 250, 400, 700]
        .into_iter()
        .enumerate()
    {
        let sandbox = sandbox.clone();
        let answer = answer.clone();
        let run = tokio::spawn(async move {
            qtjudge::verify::verify(&answer, &format!("cut-{n}"), &prepared(), &*sandbox).await
        });
        runs.push((cut_after_ms, run));
    }
    let started = std::time::Instant::now();
    for (cut_after_ms, run) in &runs {
        let at = Duration::from_millis(*cut_after_ms);
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        run.abort();
    }
    let t = std::time::Instant::now();
    sandbox.shutdown().await;
    eprintln!(
        "DEBUG shutdown took {:?} after {:?}",
        t.elapsed(),
        started.elapsed()
    );
    let left = sandbox.containers().await.unwrap();
    assert!(left.is_empty(), "containers left after shutdown: {left:?}");
    // The engine may still finish a creation it was given before the cut:
    // look again a little later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let late = sandbox.containers().await.unwrap();
    assert!(
        late.is_empty(),
        "containers appeared after shutdown: {late:?}"
    );
}

/// Issue 6: a pooled container was handed out as soon as it had started,
/// its harness still importing, so the job waited inside it. The pool now
/// holds a container only once its supervisor printed the readiness line,
/// and a verification arriving while the refill is still warming waits for
/// that container instead of starting a cold one. Back to back, each
/// verification here arrives while its container is warming: each must
/// come from the pool, and its supervisor must find no job waiting on
/// stdin when its harness became ready (the host wrote it only after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_container_is_handed_out_only_after_its_harness_said_ready() {
    use qtjudge::sandbox::{Sandbox, SandboxRequest};

    let Some(cold) = docker().await else { return };
    let sandbox = (*cold).clone().with_warm_pool(PoolConfig::with_size(1));
    let task = crate::support::task();
    let script = fixture("correct.py");
    let app = qtjudge::bundle::Bundle::script("app.py", &script);
    for n in 0..4 {
        let turns = qtjudge::harness::new_turns();
        let outcome = sandbox
            .run(SandboxRequest {
                run_id: format!("ready-{n}-{}", &qtjudge::sandbox::new_nonce()[..8]),
                job: qtjudge::harness::job(&task, &app, &turns),
                limits: task.limits,
            })
            .await
            .expect("the sandbox runs");
        let behaviour = qtjudge::harness::judge(&outcome, &turns, task.limits.wall_seconds)
            .expect("the run is judged");
        assert!(behaviour.passed, "run {n}: {behaviour:#?}");
        let result = outcome.result.as_ref().expect("a result");
        let supervisor = &result["supervisor"];
        if n == 0 {
            // The first one starts cold and makes the pool refill behind it.
            assert!(outcome.container_label.starts_with("ready-0-"));
            continue;
        }
        assert!(
            outcome.container_label.starts_with("warm-"),
            "run {n} should have waited for the warming container, not started cold: {}",
            outcome.container_label
        );
        assert_eq!(
            supervisor["job_waiting_at_ready"],
            serde_json::json!(false),
            "run {n}: the job reached the container before its harness was ready: {supervisor}"
        );
        let phases: Vec<&str> = outcome.phases.iter().map(|p| p.name.as_str()).collect();
        assert!(
            !phases.contains(&"sandbox.until_ready"),
            "run {n}: a pooled container's readiness line was read before it was handed out, \
             not after the job: {phases:?}"
        );
        assert!(
            phases.contains(&"harness.turn_3"),
            "run {n}: the harness's steps are on the timeline: {phases:?}"
        );
    }
    sandbox.shutdown().await;
}
