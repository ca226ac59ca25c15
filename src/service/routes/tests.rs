//! The router's tests, without a socket: submissions, refusals and their
//! codes, waits, tokens, the queue's limits, an unreachable engine, and
//! every documented route routed.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body as HttpBody;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::router;
use crate::sandbox::{BoxFuture, Sandbox, SandboxError, SandboxOutcome, SandboxRequest};
use crate::service::engine_watch::Engine;
use crate::service::jobs::{Jobs, JobsConfig};
use crate::service::openapi::openapi_document;
use crate::service::state::{ApiConfig, AppState};
use crate::service::store;

/// The experiment's task (fixtures/tasks).
const DEFAULT_TASK: &str = "reset-conversation";

struct UnusedSandbox;

impl Sandbox for UnusedSandbox {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
        Box::pin(async {
            Err(SandboxError::RunFailed(
                "the API tests run no verification".into(),
            ))
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

/// A service with no workers (jobs stay queued) and a small queue.
fn fixture(token: Option<&str>, max_queue: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tasks_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks");
    let engine = Arc::new(Engine::ready(
        Arc::new(UnusedSandbox),
        Some("fake:image".into()),
        None,
    ));
    let jobs = Jobs::new(
        store::open(dir.path()).unwrap(),
        JobsConfig {
            workers: 0,
            max_queue,
            tasks_dir: tasks_dir.clone(),
            cache_dir: None,
            retention: None,
        },
        engine,
    );
    let state = AppState {
        jobs,
        config: Arc::new(ApiConfig {
            token: token.map(String::from),
            max_body: 4096,
            max_batch: 3,
            max_batch_unpacked: 64 << 20,
            tasks_dir,
        }),
        connections: Default::default(),
    };
    Fixture { _dir: dir, state }
}

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router(state.clone())
        .oneshot(request.body(HttpBody::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, json)
}

async fn post(state: &AppState, uri: &str, body: &str) -> (StatusCode, HeaderMap, Value) {
    call(
        state,
        "POST",
        uri,
        body,
        &[("content-type", "application/json")],
    )
    .await
}

fn assert_error(got: &(StatusCode, HeaderMap, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{:?}", got.2);
    assert_eq!(got.2["error"], code, "{:?}", got.2);
    assert!(
        got.2["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{:?}",
        got.2
    );
}

#[tokio::test]
async fn an_accepted_verification_is_queued_with_its_location_and_metadata() {
    let f = fixture(None, 10);
    let (status, headers, body) = post(
        &f.state,
        "/v1/verifications",
        r#"{"output": "print(1)", "model": "m", "metadata": {"k": 1}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap();
    assert_eq!(headers[LOCATION], format!("/v1/verifications/{id}"));
    let (status, _, view) =
        call(&f.state, "GET", &format!("/v1/verifications/{id}"), "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (view["status"].as_str(), view["model"].as_str()),
        (Some("queued"), Some("m"))
    );
    assert_eq!(view["metadata"], json!({"k": 1}));
    // No task named and `print(1)` resembles no original: the generic task.
    assert_eq!(view["task"], crate::task::FALLBACK_TASK);
    assert_eq!(body["task_choice"]["how"], "default", "{body}");
    assert_eq!(
        view["task_choice"], body["task_choice"],
        "kept with the job"
    );
}

#[tokio::test]
async fn a_batch_without_a_task_chooses_each_answers_task_as_a_verification_does() {
    let f = fixture(None, 10);
    let original = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/tasks/reset-conversation/original.py"),
    )
    .unwrap();
    // Every name of the experiment's original: it resembles that task.
    let experiment = crate::task::original_names(&original).join("\n");
    let app =
        crate::bundle::Bundle::script("main.py", "if __name__ == \"__main__\":\n    print(1)\n");
    let archive = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        app.to_tar_gz().unwrap(),
    );
    let items = json!([
        {"model": "experiment", "output": experiment},
        {"model": "other", "output": "print(1)"},
        {"model": "app", "archive_base64": archive, "entry": "main.py"},
    ])
    .to_string();
    let tasks_of = |batch: &Value| -> Vec<(String, String)> {
        batch["verifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                if !v["task_choice"].is_null() {
                    assert_eq!(v["task"], v["task_choice"]["task"], "{v}");
                }
                (
                    v["task"].as_str().unwrap().to_string(),
                    v["task_choice"]["how"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (status, headers, body) = post(&f.state, "/v1/batches", &items).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, _, batch) = call(
        &f.state,
        "GET",
        headers[LOCATION].to_str().unwrap(),
        "",
        &[],
    )
    .await;
    let expected = |t: &str, how: &str| (t.to_string(), how.to_string());
    assert_eq!(
        tasks_of(&batch),
        [
            expected(DEFAULT_TASK, "resembles"),
            expected(crate::task::FALLBACK_TASK, "default"),
            // An app is unpacked, and its task chosen, when it runs.
            expected("", ""),
        ]
    );
    assert_eq!(batch["task"], "generic-reset, reset-conversation");
    // Each one's choice is the one a single verification gets.
    let (_, _, single) = post(
        &f.state,
        "/v1/verifications",
        &json!({"output": crate::task::original_names(&original).join("\n")}).to_string(),
    )
    .await;
    let (_, _, view) = call(
        &f.state,
        "GET",
        single["links"]["self"].as_str().unwrap(),
        "",
        &[],
    )
    .await;
    assert_eq!(
        view["task_choice"],
        batch["verifications"][0]["task_choice"]
    );

    // A task given is every answer's task.
    let (status, headers, body) =
        post(&f.state, "/v1/batches?task=reset-conversation", &items).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, _, batch) = call(
        &f.state,
        "GET",
        headers[LOCATION].to_str().unwrap(),
        "",
        &[],
    )
    .await;
    assert_eq!(tasks_of(&batch), vec![expected(DEFAULT_TASK, "given"); 3]);
    assert_eq!(batch["task"], DEFAULT_TASK);
}

fn zip_of_one(name: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    writer
        .start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(data).unwrap();
    writer.finish().unwrap();
    out.into_inner()
}

#[tokio::test]
async fn a_batch_refuses_bad_apps_with_the_codes_of_a_verification_naming_the_answer() {
    let f = fixture(None, 10);
    let cases = [
        (json!({"archive_base64": "%%%"}), "bad_archive"),
        (
            json!({"output": "print(1)", "archive_base64": "UEsFBg=="}),
            "output_and_archive",
        ),
        (
            json!({"output": "print(1)", "entry": "main.py"}),
            "entry_without_archive",
        ),
        (
            json!({"archive_base64": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                zip_of_one("notes.txt", b"no code here"),
            )}),
            "no_python_file",
        ),
        (json!({"model": "m"}), "empty_output"),
    ];
    for (item, code) in cases {
        let body = json!([{"output": "print(1)"}, item]).to_string();
        let got = post(&f.state, "/v1/batches", &body).await;
        assert_error(&got, 422, code);
        assert!(
            got.2["message"].as_str().unwrap().starts_with("answer 2: "),
            "{}",
            got.2
        );
    }
    assert_eq!(
        f.state.jobs.store.depth().await.unwrap().queued,
        0,
        "nothing of a refused batch is kept"
    );
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_json() {
    let f = fixture(None, 10);
    assert_error(
        &post(&f.state, "/v1/verifications", "{not json").await,
        400,
        "bad_request",
    );
    assert_error(
        &post(&f.state, "/v1/verifications", r#"{"output": 5}"#).await,
        400,
        "bad_request",
    );
    assert_error(
        &post(&f.state, "/v1/verifications", r#"{"model": "m"}"#).await,
        422,
        "empty_output",
    );
    assert_error(
        &post(
            &f.state,
            "/v1/verifications",
            r#"{"output": "x", "callback": "http://x"}"#,
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &post(
            &f.state,
            "/v1/verifications",
            r#"{"output": "x", "metadata": [1]}"#,
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &post(
            &f.state,
            "/v1/verifications?wait=soon",
            r#"{"output": "x"}"#,
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &post(&f.state, "/v1/batches", "[{\"output\": 1}]").await,
        400,
        "bad_request",
    );
    assert_error(
        &post(&f.state, "/v1/batches", "{\"output\": \"a\"}\nnot json\n").await,
        400,
        "bad_request",
    );
    let (_, _, body) = call(&f.state, "GET", "/v1/batches/x?format=pdf", "", &[]).await;
    assert_eq!(body["error"], "bad_request");
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404_json() {
    let f = fixture(None, 10);
    assert_error(
        &call(&f.state, "GET", "/v1/verifications/nope", "", &[]).await,
        404,
        "not_found",
    );
    assert_error(
        &call(
            &f.state,
            "GET",
            "/v1/verifications/nope/artifacts/after_reset.png",
            "",
            &[],
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &call(&f.state, "GET", "/v1/batches/nope", "", &[]).await,
        404,
        "not_found",
    );
    assert_error(
        &call(&f.state, "GET", "/v2/anything", "", &[]).await,
        404,
        "no_such_route",
    );
    assert_error(
        &call(&f.state, "DELETE", "/v1/verifications", "", &[]).await,
        404,
        "no_such_route",
    );
}

#[tokio::test]
async fn bodies_and_answers_over_the_limits_are_413() {
    let f = fixture(None, 10);
    let big = "x".repeat(20_000);
    assert_error(
        &post(
            &f.state,
            "/v1/verifications",
            &json!({"output": big}).to_string(),
        )
        .await,
        413,
        "too_large",
    );
    let over = "x".repeat(5000);
    assert_error(
        &post(
            &f.state,
            "/v1/verifications",
            &json!({"output": over}).to_string(),
        )
        .await,
        413,
        "too_large",
    );
    let four =
        json!([{"output": "a"}, {"output": "b"}, {"output": "c"}, {"output": "d"}]).to_string();
    assert_error(
        &post(&f.state, "/v1/batches", &four).await,
        413,
        "too_large",
    );
}

#[tokio::test]
async fn unknown_tasks_and_empty_answers_are_422() {
    let f = fixture(None, 10);
    assert_error(
        &post(
            &f.state,
            "/v1/verifications",
            r#"{"output": "x", "task": "nope"}"#,
        )
        .await,
        422,
        "unknown_task",
    );
    assert_error(
        &post(
            &f.state,
            "/v1/verifications",
            r#"{"output": "x", "task": "../etc"}"#,
        )
        .await,
        422,
        "unknown_task",
    );
    assert_error(
        &post(&f.state, "/v1/verifications", r#"{"output": "  \n"}"#).await,
        422,
        "empty_output",
    );
    assert_error(
        &post(&f.state, "/v1/batches", "[]").await,
        422,
        "empty_batch",
    );
    assert_error(&post(&f.state, "/v1/batches", "").await, 422, "empty_batch");
    assert_error(
        &post(&f.state, "/v1/batches?task=nope", r#"[{"output": "a"}]"#).await,
        422,
        "unknown_task",
    );
}

#[tokio::test]
async fn a_callback_url_is_checked_kept_and_shown_as_pending() {
    let f = fixture(None, 10);
    for bad in [r#""no url""#, r#""ftp://h/x""#, r#""/hook""#] {
        assert_error(
            &post(
                &f.state,
                "/v1/verifications",
                &format!(r#"{{"output": "x", "callback_url": {bad}}}"#),
            )
            .await,
            422,
            "invalid_callback_url",
        );
    }
    assert_error(
        &post(
            &f.state,
            "/v1/batches?callback_url=nope",
            r#"[{"output": "a"}]"#,
        )
        .await,
        422,
        "invalid_callback_url",
    );
    let hook = "http://127.0.0.1:9/hook";
    let (status, headers, _) = post(
        &f.state,
        "/v1/verifications",
        &json!({"output": "x", "callback_url": hook}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, view) = call(
        &f.state,
        "GET",
        headers[LOCATION].to_str().unwrap(),
        "",
        &[],
    )
    .await;
    assert_eq!(
        view["callback"],
        json!({"url": hook, "state": "pending", "attempts": 0, "last_error": null})
    );
    let (status, headers, _) = post(
        &f.state,
        "/v1/batches?callback_url=http%3A%2F%2F127.0.0.1%3A9%2Fhook",
        r#"[{"output": "a"}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, batch) = call(
        &f.state,
        "GET",
        headers[LOCATION].to_str().unwrap(),
        "",
        &[],
    )
    .await;
    assert_eq!(batch["callback"]["url"], hook);
    let item = &batch["verifications"][0]["links"]["self"];
    let (_, _, one) = call(&f.state, "GET", item.as_str().unwrap(), "", &[]).await;
    assert!(one["callback"].is_null(), "the batch's, not each answer's");
}

#[tokio::test]
async fn a_token_is_needed_on_v1_routes_only() {
    let f = fixture(Some("s3cret"), 10);
    let missing = call(&f.state, "GET", "/v1/tasks", "", &[]).await;
    assert_error(&missing, 401, "unauthorized");
    assert!(missing.1.contains_key(WWW_AUTHENTICATE));
    assert_error(
        &call(
            &f.state,
            "GET",
            "/v1/tasks",
            "",
            &[("authorization", "Bearer wrong!")],
        )
        .await,
        401,
        "unauthorized",
    );
    let (status, _, tasks) = call(
        &f.state,
        "GET",
        "/v1/tasks",
        "",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(tasks
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == DEFAULT_TASK));
    assert_eq!(
        call(&f.state, "GET", "/healthz", "", &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after_and_keeps_nothing_of_a_batch() {
    let f = fixture(None, 2);
    for _ in 0..2 {
        assert_eq!(
            post(&f.state, "/v1/verifications", r#"{"output": "x"}"#)
                .await
                .0,
            StatusCode::ACCEPTED
        );
    }
    let full = post(&f.state, "/v1/verifications", r#"{"output": "x"}"#).await;
    assert_error(&full, 429, "queue_full");
    assert!(
        full.1[RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_error(
        &post(&f.state, "/v1/batches", r#"[{"output": "a"}]"#).await,
        429,
        "queue_full",
    );
    let (_, _, health) = call(&f.state, "GET", "/healthz", "", &[]).await;
    assert_eq!(health["queue"]["queued"], 2);
}

#[tokio::test]
async fn an_unreachable_engine_is_503_and_health_says_degraded() {
    let f = fixture(None, 10);
    f.state
        .jobs
        .engine
        .set_reachable(false, Some("socket gone".into()));
    let refused = post(&f.state, "/v1/verifications", r#"{"output": "x"}"#).await;
    assert_error(&refused, 503, "engine_unavailable");
    assert!(refused.1.contains_key(RETRY_AFTER));
    let (_, _, health) = call(&f.state, "GET", "/healthz", "", &[]).await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["engine"]["reachable"], false);
}

#[tokio::test]
async fn a_batch_reports_progress_and_names_models_once() {
    let f = fixture(None, 10);
    let jsonl = "{\"model\": \"a\", \"output\": \"x\"}\n\n{\"model\": \"a\", \"output\": \"y\"}\n";
    let (status, headers, body) = post(&f.state, "/v1/batches", jsonl).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let location = headers[LOCATION].to_str().unwrap().to_string();
    let (_, _, batch) = call(&f.state, "GET", &location, "", &[]).await;
    assert_eq!(batch["total"], 2);
    assert_eq!(batch["status"], "queued");
    assert_eq!(batch["progress"]["queued"], 2);
    let keys: Vec<(&str, &str)> = batch["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["model"].as_str().unwrap(), v["sample"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("a", "1"), ("a", "2")], "keyed by sample, not `a#2`");
    assert!(batch["table"].is_null(), "no table before the end");
    assert_eq!(
        batch["leaderboard"]["models"],
        json!([]),
        "nothing finished yet"
    );
    assert_eq!(batch["leaderboard"]["pass_at"], json!([1]));
    let (_, _, batch) = call(&f.state, "GET", &format!("{location}?pass_at=1,5"), "", &[]).await;
    assert_eq!(batch["leaderboard"]["pass_at"], json!([1, 5]));
    assert_error(
        &call(&f.state, "GET", &format!("{location}?pass_at=0"), "", &[]).await,
        400,
        "bad_request",
    );
    let (status, _, _) = call(
        &f.state,
        "GET",
        &format!("{location}?format=junit"),
        "",
        &[],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a report of an unfinished batch is its progress"
    );
}

/// A comparison of a batch not finished is 202 with its progress and a
/// Retry-After, whatever the format asked; a batch page takes `?pass_at=`.
#[tokio::test]
async fn a_comparison_waits_for_both_batches_and_a_page_takes_pass_at() {
    let f = fixture(None, 10);
    let (status, _, body) = post(
        &f.state,
        "/v1/batches",
        "[{\"model\": \"a\", \"output\": \"x\"}]",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap();
    for format in ["", "?format=text"] {
        let uri = format!("/v1/batches/{id}/compare/{id}{format}");
        let (status, headers, body) = call(&f.state, "GET", &uri, "", &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(
            headers[RETRY_AFTER], "2",
            "a verification's time, 2 s unknown"
        );
        assert_eq!(body["status"], "queued", "{body}");
        assert_eq!(body["running"], json!([id]), "{body}");
        let progress = json!({"id": id, "status": "queued", "total": 1, "finished": 0});
        assert_eq!((&body["a"], &body["b"]), (&progress, &progress), "{body}");
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("0 of 1 answers finished"));
    }
    let uri = format!("/batches/{id}?pass_at=1,5");
    let (status, _, page) = call(&f.state, "GET", &uri, "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.as_str()
            .unwrap()
            .contains("<th>pass@1</th><th>pass@5</th>"),
        "{page}"
    );
    let uri = format!("/batches/{id}?pass_at=1,,5");
    assert_error(
        &call(&f.state, "GET", &uri, "", &[]).await,
        400,
        "bad_request",
    );
}

/// An answer's own task, its `sample` (or `id`) and `metadata` are kept
/// with its job; a key given twice is refused.
#[tokio::test]
async fn batch_answers_carry_their_task_sample_and_metadata() {
    let f = fixture(None, 10);
    let items = json!([
        {"model": "m", "task": "generic-reset", "sample": 7, "metadata": {"seed": 1}, "output": "x"},
        {"model": "m", "task": "generic-reset", "id": "b", "output": "y"},
        {"model": "m", "task": "generic-reset", "output": "z"},
    ])
    .to_string();
    let (status, headers, body) = post(&f.state, "/v1/batches", &items).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, _, batch) = call(
        &f.state,
        "GET",
        headers[LOCATION].to_str().unwrap(),
        "",
        &[],
    )
    .await;
    let rows = batch["verifications"].as_array().unwrap();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|v| (v["task"].as_str().unwrap(), v["sample"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("generic-reset", "7"),
            ("generic-reset", "b"),
            ("generic-reset", "1")
        ]
    );
    let link = rows[0]["links"]["self"].as_str().unwrap();
    let (_, _, job) = call(&f.state, "GET", link, "", &[]).await;
    assert_eq!(job["metadata"], json!({"seed": 1}));
    let twice = json!([{"model": "m", "sample": "1", "output": "x"}, {"model": "m", "id": 1, "output": "y"}]);
    assert_error(
        &post(&f.state, "/v1/batches", &twice.to_string()).await,
        422,
        "duplicate_sample",
    );
    let unknown = json!([{"model": "m", "task": "nope", "output": "x"}]);
    assert_error(
        &post(&f.state, "/v1/batches", &unknown.to_string()).await,
        422,
        "unknown_task",
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let f = fixture(None, 10);
    let (status, headers, body) = call(&f.state, "GET", "/metrics", "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = body.as_str().unwrap();
    for name in [
        "qtjudge_queue_depth 0",
        "qtjudge_cluster_queue_depth 0",
        "qtjudge_verification_duration_seconds_count 0",
        "qtjudge_engine_up 1",
        "qtjudge_store_up 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

/// The OpenAPI document and the router agree: each documented path and
/// method is routed (an unknown id gives `not_found`, never `no_such_route`).
#[tokio::test]
async fn every_documented_route_exists() {
    let f = fixture(None, 10);
    let doc = openapi_document();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9);
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let uri = path
                .replace("{id}", "unknown")
                .replace("{other}", "unknown")
                .replace("{name}", "x.png");
            let (status, _, body) = call(&f.state, &method.to_uppercase(), &uri, "{}", &[]).await;
            assert_ne!(
                body["error"], "no_such_route",
                "{method} {path} is documented but not routed"
            );
            assert_ne!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path}: {body}"
            );
        }
    }
    let (_, _, served) = call(&f.state, "GET", "/openapi.json", "", &[]).await;
    assert_eq!(served["openapi"], "3.0.3");
}

#[tokio::test]
async fn pages_need_the_token_and_take_it_as_a_basic_password() {
    use base64::Engine as _;
    let f = fixture(Some("s3cret"), 10);
    let refused = call(&f.state, "GET", "/", "", &[]).await;
    assert_error(&refused, 401, "unauthorized");
    let challenges: Vec<_> = refused.1.get_all(WWW_AUTHENTICATE).iter().collect();
    assert!(challenges
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("Basic")));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me:s3cret")
    );
    let (status, headers, body) =
        call(&f.state, "GET", "/", "", &[("authorization", &basic)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.as_str().unwrap().contains("<h1>qtjudge verifier</h1>"));
}
