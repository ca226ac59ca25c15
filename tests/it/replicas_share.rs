//! Issue 20, everything a single service does, across replicas: a batch
//! submitted to replica A is served whole by replica B (progress, the
//! JSON report and the table, a screenshot), each replica's `/metrics`
//! gives the cluster's queue, and callbacks are delivered once per job or
//! batch although two replicas run, with one delivery id across retries.
//!
//! Real parts: two `qtjudge serve` processes on one PostgreSQL schema, the
//! real Docker sandbox, a webhook receiver on 127.0.0.1. Without Docker or
//! PostgreSQL the test fails in CI and skips, loudly, elsewhere.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::callbacks::{assert_signed, without_callback, Receiver, SECRET};
use crate::replicas::Schema;
use crate::server::Server;
use crate::support::{docker, fixture};

/// A gauge's value in a scrape.
fn gauge_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|v| v.parse().unwrap())
}

/// A gauge's value in a replica's `/metrics`.
pub(crate) async fn gauge(server: &Server, name: &str) -> Option<f64> {
    gauge_in(&server.metrics().await, name)
}

/// The sum over both replicas of a counter's line, by its full name.
async fn counted(servers: [&Server; 2], line: &str) -> u64 {
    let mut sum = 0;
    for server in servers {
        sum += server
            .metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{line} ")))
            .map_or(0, |v| v.parse::<u64>().unwrap());
    }
    sum
}

pub(crate) async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_to_one_replica_is_served_by_the_other_and_called_back_once() {
    let Some(_) = docker().await else { return };
    let Some(schema) = Schema::make().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--store",
        schema.url.as_str(),
        "--workers",
        "1",
        "--callback-secret",
        SECRET,
    ];
    let a = Server::start(&dir.path().join("a"), &args);
    let b = Server::start(&dir.path().join("b"), &args);
    a.wait_ready().await;
    b.wait_ready().await;
    // The first attempt of one delivery is refused: it is sent again.
    let (receiver, hook) = Receiver::start(1, false).await;

    let answers = [
        ("devstral", "devstral.md", 1),
        ("magistral", "magistral.md", 2),
        ("display-only", "trap-display-only.md", 3),
        ("mistral-small", "mistral-small.md", 1),
    ];
    let batch: Vec<Value> = answers
        .iter()
        .map(|(model, file, _)| json!({"model": model, "output": fixture(file)}))
        .collect();
    let batch_id = a.accepted("/v1/batches", &json!(batch), Some(&hook)).await;

    // Each replica shows the cluster's queue: all four answers, queued or
    // running (a run takes seconds), and at most its own one running.
    for server in [&a, &b] {
        // One scrape: its figures are of one moment.
        let text = server.metrics().await;
        let queued = gauge_in(&text, "qtjudge_cluster_queue_depth").unwrap();
        let running = gauge_in(&text, "qtjudge_cluster_running").unwrap();
        assert_eq!(queued + running, 4.0, "{text}");
        assert!(running <= 2.0, "two replicas of one worker: {text}");
        let here = gauge_in(&text, "qtjudge_verifications_running").unwrap();
        assert!(here <= 1.0, "one worker: {text}");
        assert_eq!(
            gauge_in(&text, "qtjudge_queue_depth"),
            Some(queued),
            "the shared queue is every replica's: {text}"
        );
        assert_eq!(gauge_in(&text, "qtjudge_store_up"), Some(1.0), "{text}");
    }

    // Two single verifications with a callback each, one to each replica.
    let mut singles = Vec::new();
    for server in [&a, &b] {
        let response = server
            .post("/v1/verifications")
            .json(&json!({"output": fixture("granite4-small.md"), "model": "granite", "callback_url": hook}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        singles.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    // B serves A's batch: the progress, then the finished view.
    let progress = b.get_json(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(progress["total"], 4, "{progress}");
    let view = b
        .get_json(&format!("/v1/batches/{batch_id}?wait=300"))
        .await;
    assert_eq!(
        view["status"],
        "done",
        "{view}\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(view["progress"]["done"], 4, "{view}");
    let rows = view["verifications"].as_array().unwrap();
    for ((model, _, tier), row) in answers.iter().zip(rows) {
        assert_eq!(row["model"], *model, "{row}");
        assert_eq!(row["tier"], *tier, "{model}: {row}");
    }
    let table = view["table"].as_str().expect("the finished table");
    for (model, _, _) in answers {
        assert!(table.contains(model), "{model} missing from:\n{table}");
    }
    // The report in a format, from B, the same as from A.
    let report_of = |server: &Server| {
        server
            .get(&format!("/v1/batches/{batch_id}"))
            .query(&[("format", "json")])
            .send()
    };
    let from_b = report_of(&b).await.unwrap();
    assert_eq!(from_b.status(), 200);
    let from_b = from_b.text().await.unwrap();
    assert_eq!(from_b, report_of(&a).await.unwrap().text().await.unwrap());
    assert!(from_b.contains("devstral"), "{from_b}");

    // A screenshot of a flawless answer, from B, whichever replica ran it.
    let flawless = b.view(rows[0]["id"].as_str().unwrap()).await;
    let shot = flawless["links"]["artifacts"]["after_reset.png"]
        .as_str()
        .unwrap_or_else(|| panic!("no after_reset.png: {flawless}"))
        .to_string();
    let png = b.get(&shot).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(
        bytes,
        a.get(&shot).send().await.unwrap().bytes().await.unwrap()
    );

    // The callbacks: one delivery per single job and one for the batch,
    // each taken exactly once (one refused attempt sent again).
    wait_until(
        "three deliveries taken",
        Duration::from_secs(120),
        async || receiver.seen().iter().filter(|s| s.answered == 200).count() >= 3,
    )
    .await;
    // Late duplicates from the other replica would show within a moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = receiver.seen();
    let mut by_delivery: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for attempt in &seen {
        by_delivery
            .entry(attempt.header("x-qtjudge-delivery"))
            .or_default()
            .push(attempt);
    }
    assert_eq!(by_delivery.len(), 3, "three deliveries: {seen:#?}");
    let mut subjects = Vec::new();
    for (delivery, attempts) in &by_delivery {
        let taken = attempts.iter().filter(|s| s.answered == 200).count();
        assert_eq!(taken, 1, "{delivery}: taken once: {attempts:#?}");
        assert_eq!(
            attempts.last().unwrap().answered,
            200,
            "{delivery}: nothing after"
        );
        for attempt in attempts {
            assert_eq!(attempt.body, attempts[0].body, "{delivery}: one body");
        }
        let sent = attempts[0].json();
        let event = attempts[0].header("x-qtjudge-event");
        assert_signed(attempts[0], &event);
        subjects.push((event, sent["id"].as_str().unwrap().to_string()));
    }
    subjects.sort();
    let mut expected = vec![("batch.finished".to_string(), batch_id.clone())];
    expected.extend(
        singles
            .iter()
            .map(|id| ("verification.finished".to_string(), id.clone())),
    );
    expected.sort();
    assert_eq!(subjects, expected);
    let retried: Vec<_> = by_delivery.values().filter(|a| a.len() == 2).collect();
    assert_eq!(
        retried.len(),
        1,
        "the refused delivery, sent again: {seen:#?}"
    );
    assert_eq!(seen.len(), 4, "three deliveries, one of them twice");

    // Either replica tells how each went, and the two replicas' counters
    // add up to what the receiver took.
    for id in &singles {
        let view = a.view(id).await;
        assert_eq!(view["callback"]["state"], "delivered", "{view}");
    }
    let batch_view = a.get_json(&format!("/v1/batches/{batch_id}")).await;
    assert_eq!(batch_view["callback"]["state"], "delivered", "{batch_view}");
    let sent_batch = by_delivery
        .values()
        .map(|attempts| attempts[0].json())
        .find(|body| body["id"] == batch_id.as_str())
        .unwrap();
    assert_eq!(without_callback(sent_batch), without_callback(batch_view));
    wait_until("the counters moved", Duration::from_secs(10), async || {
        counted([&a, &b], "qtjudge_callbacks_total{outcome=\"delivered\"}").await == 3
    })
    .await;
    assert_eq!(
        counted([&a, &b], "qtjudge_callbacks_total{outcome=\"retried\"}").await,
        1
    );
    for server in [&a, &b] {
        assert_eq!(
            gauge(server, "qtjudge_cluster_queue_depth").await,
            Some(0.0)
        );
        assert_eq!(gauge(server, "qtjudge_cluster_running").await, Some(0.0));
    }

    a.stop();
    b.stop();
    schema.drop_it().await;
}
