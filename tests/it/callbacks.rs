//! Callbacks (issue 5) end to end: a real `qtjudge serve` POSTs finished
//! verifications and batches to a real receiver on 127.0.0.1, signed,
//! retried after 5xx, and still delivered after a kill -9 and a restart.
//! The answers are snippets: graded tier 3 quickly, through the service's
//! workers like any other answer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::server::{service_ready, service_started, Server};
use crate::stores::Kind;
use crate::support::fixture;

pub(crate) const SECRET: &str = "s3cret";
const SNIPPET: &str = "granite4-small.md";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    /// The status the receiver answered it with.
    pub(crate) answered: u16,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .unwrap()
            .to_string()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }
}

/// A webhook receiver: records every request, answers 500 to the first
/// `refusals` (or to all while `refusing`), then 200.
#[derive(Default)]
pub(crate) struct Receiver {
    seen: Mutex<Vec<Seen>>,
    pub(crate) refusals: AtomicUsize,
    pub(crate) refusing: AtomicBool,
}

impl Receiver {
    pub(crate) async fn start(refusals: usize, refusing: bool) -> (Arc<Receiver>, String) {
        let receiver = Arc::new(Receiver {
            refusals: AtomicUsize::new(refusals),
            refusing: AtomicBool::new(refusing),
            ..Receiver::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let refuse = receiver.refusing.load(Ordering::SeqCst)
        || receiver
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let answer = if refuse {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    receiver.seen.lock().unwrap().push(Seen {
        headers,
        body,
        answered: answer.as_u16(),
    });
    answer
}

/// Recomputed here, not with qtjudge's own function.
fn expected_signature(timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn assert_signed(seen: &Seen, event: &str) {
    assert_eq!(seen.header("content-type"), "application/json");
    assert_eq!(seen.header("x-qtjudge-event"), event);
    let timestamp = seen.header("x-qtjudge-timestamp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sent: u64 = timestamp.parse().expect("Unix seconds");
    assert!(now.abs_diff(sent) < 600, "a stale timestamp: {sent}");
    assert_eq!(
        seen.header("x-qtjudge-signature"),
        expected_signature(&timestamp, &seen.body),
        "the signature covers `<timestamp>.<body>`"
    );
}

/// The view without its `callback` object (which moves on after sending).
pub(crate) fn without_callback(mut view: Value) -> Value {
    view.as_object_mut().unwrap().remove("callback");
    view
}

/// Polls `path` until its callback is no longer pending.
async fn settled(server: &Server, path: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let view: Value = server.get(path).send().await.unwrap().json().await.unwrap();
        let state = &view["callback"]["state"];
        if state == "delivered" || state == "failed" {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "the callback of {path} never settled: {view}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit_with_callback(server: &Server, url: &str) -> String {
    let response = server
        .post("/v1/verifications")
        .json(&json!({"output": fixture(SNIPPET), "model": "granite", "callback_url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn a_finished_verification_is_posted_signed_and_retried_after_server_errors(kind: Kind) {
    let Some((server, store, _dir)) =
        service_ready(kind, &["--workers", "1", "--callback-secret", SECRET]).await
    else {
        return;
    };
    let (receiver, url) = Receiver::start(2, false).await;
    let id = submit_with_callback(&server, &url).await;
    let queued: Value = server.view(&id).await;
    assert_eq!(
        queued["callback"],
        json!({"url": url, "state": "pending", "attempts": 0, "last_error": null})
    );

    let view = settled(
        &server,
        &format!("/v1/verifications/{id}"),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        view["callback"],
        json!({"url": url, "state": "delivered", "attempts": 3, "last_error": null}),
        "two 500s, then taken"
    );
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for attempt in &seen {
        assert_signed(attempt, "verification.finished");
        assert_eq!(
            attempt.body, seen[0].body,
            "every attempt sends the same body"
        );
        assert_eq!(
            attempt.header("x-qtjudge-delivery"),
            seen[0].header("x-qtjudge-delivery"),
            "one delivery id across retries"
        );
    }
    let sent = seen[2].json();
    assert_eq!(
        without_callback(sent.clone()),
        without_callback(view.clone()),
        "the body is what GET gives"
    );
    assert_eq!(sent["status"], "done");
    assert_eq!(sent["result"]["failure"], "snippet");
    assert_eq!(sent["callback"]["state"], "pending", "as it was when sent");

    let metrics = server.metrics().await;
    for line in [
        "qtjudge_callbacks_total{outcome=\"delivered\"} 1",
        "qtjudge_callbacks_total{outcome=\"retried\"} 2",
        "qtjudge_callbacks_total{outcome=\"failed\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    server.stop();
    store.finish().await;
}

async fn a_batch_is_posted_once_when_all_its_answers_are_finished(kind: Kind) {
    let Some((server, store, _dir)) =
        service_ready(kind, &["--workers", "2", "--callback-secret", SECRET]).await
    else {
        return;
    };
    let (receiver, url) = Receiver::start(0, false).await;
    let answers = [
        "granite4-small.md",
        "phi3-medium-14b-q8.md",
        "trap-no-code.md",
    ]
    .map(|file| json!({"model": file, "output": fixture(file)}));
    let id = server
        .accepted("/v1/batches", &json!(answers), Some(&url))
        .await;

    let view = settled(
        &server,
        &format!("/v1/batches/{id}"),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(view["callback"]["state"], "delivered", "{view}");
    assert_eq!(view["callback"]["attempts"], 1);
    // Late duplicates would show up within a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "one callback for the whole batch: {seen:?}");
    assert_signed(&seen[0], "batch.finished");
    let sent = seen[0].json();
    assert_eq!(without_callback(sent.clone()), without_callback(view));
    assert_eq!(sent["status"], "done");
    assert_eq!(sent["progress"]["done"], 3);
    assert!(sent["table"].is_string(), "the finished table rides along");
    for verification in sent["verifications"].as_array().unwrap() {
        let one = server
            .get_json(verification["links"]["self"].as_str().unwrap())
            .await;
        assert!(one["callback"].is_null(), "no per-answer callbacks: {one}");
    }
    server.stop();
    store.finish().await;
}

async fn a_callback_url_that_is_not_an_http_url_is_a_422_json_error(kind: Kind) {
    // Checked before anything else: no Docker needed.
    let Some((server, store, _dir)) = service_started(kind, &["--workers", "1"]).await else {
        return;
    };
    for bad in ["not a url", "/relative/hook", "ftp://127.0.0.1/hook", ""] {
        let response = server
            .post("/v1/verifications")
            .json(&json!({"output": "x", "callback_url": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_callback_url", "{bad:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("callback_url"),
            "{body}"
        );
    }
    let response = server
        .post("/v1/batches")
        .query(&[("callback_url", "mailto:me@example.com")])
        .json(&json!([{"output": "x"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_callback_url"
    );
    let response = server
        .post("/v1/verifications")
        .json(&json!({"output": "x", "callback_url": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a wrong type is malformed JSON");
    server.stop();
    store.finish().await;
}

async fn a_pending_callback_survives_kill_9_and_is_delivered_after_the_restart(kind: Kind) {
    let args = ["--workers", "1", "--callback-secret", SECRET];
    let Some((server, store, dir)) = service_ready(kind, &args).await else {
        return;
    };
    let data = dir.path().join("data");
    let (receiver, url) = Receiver::start(0, true).await;
    let id = submit_with_callback(&server, &url).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.seen().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "fewer than 2 attempts: {:?}\nlog:\n{}",
            receiver.seen(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Killed in the backoff before the third attempt (2 s away), once the
    // second is stored (the receiver sees it a moment before the service
    // records its answer: a kill in between would count it again).
    let path = format!("/v1/verifications/{id}");
    while server.get_json(&path).await["callback"]["attempts"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the second attempt is never stored:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_9();
    let before = receiver.seen().len();
    receiver.refusing.store(false, Ordering::SeqCst);

    let server = Server::start_on(&store, &data, &args);
    let view = settled(
        &server,
        &format!("/v1/verifications/{id}"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(view["callback"]["state"], "delivered", "{view}");
    let seen = receiver.seen();
    assert_eq!(
        view["callback"]["attempts"].as_u64(),
        Some(seen.len() as u64),
        "attempts survive the restart: {view}"
    );
    assert_eq!(seen.len(), before + 1, "one attempt after the restart");
    let last = seen.last().unwrap();
    assert_signed(last, "verification.finished");
    assert_eq!(last.body, seen[0].body, "the stored body, unchanged");
    assert_eq!(
        last.header("x-qtjudge-delivery"),
        seen[0].header("x-qtjudge-delivery")
    );
    assert_eq!(
        without_callback(last.json()),
        without_callback(view),
        "the body is what GET gives"
    );
    server.stop();
    store.finish().await;
}

crate::stores::on_both_stores!(
    a_finished_verification_is_posted_signed_and_retried_after_server_errors,
    a_batch_is_posted_once_when_all_its_answers_are_finished,
    a_callback_url_that_is_not_an_http_url_is_a_422_json_error,
    a_pending_callback_survives_kill_9_and_is_delivered_after_the_restart,
);
