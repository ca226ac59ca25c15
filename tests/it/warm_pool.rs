//! The warm pool (issue 6): one answer per container, stale containers
//! never handed out, nothing left behind on shutdown.

use std::time::Duration;

use qtjudge::sandbox::docker::{count_labelled, DockerSandbox};
use qtjudge::sandbox::warm_pool::PoolConfig;
use qtjudge::verdict::Label;

use crate::support::{docker, fixture, prepared};

async fn wait_for_warm(sandbox: &DockerSandbox, count: usize) -> Vec<String> {
    for _ in 0..100 {
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
        max_age: Duration::from_secs(2),
        idle_after: Duration::from_secs(60),
    };
    let sandbox = (*cold).clone().with_warm_pool(config);
    let answer = fixture("correct.py");
    qtjudge::verify::verify(&answer, "fills-the-pool", &prepared(), &sandbox).await;
    let stale = wait_for_warm(&sandbox, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
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
