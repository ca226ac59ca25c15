//! The pages a person opens (server-rendered HTML, no script build): the
//! form that submits an answer and the recent verifications and batches,
//! one verification (beside its task's original), one batch (its
//! leaderboard with the pass@k of `?pass_at=`); and the
//! headers every page carries. The store's records are handed to the
//! render room (`render::html`), which holds the templates.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::render::html::{self, BatchLine, TaskOption, IMAGE_FAILED, IMAGE_LOADED};
use crate::service::api_error::{ApiError, ApiPath, ApiQuery};
use crate::service::limits::parse_pass_at;
use crate::service::state::AppState;
use crate::service::store::{BatchDetail, BatchRecord, JobRecord, Status};
use crate::service::views::{batch_status, batch_tasks, rfc3339};
use crate::task::Task;

/// Pages are HTML the service wrote: no other script may run in them (only
/// the two image handlers of `render::html`, by hash), and no other site
/// may frame them.
pub(super) async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    secure_page(response.headers_mut());
    response
}

/// A page's security headers (also on a batch's report as HTML).
pub(super) fn secure_page(headers: &mut HeaderMap) {
    static POLICY: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = |code: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(code))
        };
        let policy = format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
             script-src 'unsafe-hashes' 'sha256-{}' 'sha256-{}'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            hash(IMAGE_LOADED),
            hash(IMAGE_FAILED)
        );
        HeaderValue::from_str(&policy).expect("the policy is ASCII")
    });
    headers.insert("content-security-policy", POLICY.clone());
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// A page as the response; a page that cannot be rendered is a fault of
/// the service (logged once by `ApiError`).
pub(super) fn page(rendered: askama::Result<String>) -> Result<Response, ApiError> {
    let html = rendered.map_err(|e| ApiError::Internal(format!("rendering a page: {e}")))?;
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response())
}

/// A job as the pages show it.
fn job_page(job: &JobRecord) -> html::Job<'_> {
    html::Job {
        id: &job.id,
        batch_id: job.batch_id.as_deref(),
        task: &job.task,
        model: &job.model,
        sample: job.sample.as_deref(),
        metadata: job.metadata.as_ref().map(|m| m.to_string()),
        status: job.status.as_str(),
        finished: job.status.is_finished(),
        error: job.error.as_deref(),
        created: Some(rfc3339(job.created_at)),
        result: job.result.as_ref(),
        rerun_of: html::rerun_of(job.metadata.as_ref()),
    }
}

/// A batch as its page shows it, its leaderboard with pass@k for each k
/// of `pass_at`.
fn batch_page_of<'a>(batch: &'a BatchRecord, pass_at: &[usize]) -> html::Batch<'a> {
    let status = batch_status(batch);
    html::Batch {
        id: &batch.id,
        tasks: batch_tasks(batch),
        status: status.as_str(),
        done: status == Status::Done,
        created: Some(rfc3339(batch.created_at)),
        jobs: batch.jobs.iter().map(job_page).collect(),
        pass_at: pass_at.to_vec(),
    }
}

pub(super) async fn index_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let jobs = state.jobs.store.recent_jobs(50).await?;
    let batches: Vec<BatchLine> = state
        .jobs
        .store
        .recent_batches(20)
        .await?
        .into_iter()
        .map(|b| BatchLine {
            id: b.id,
            task: b.task,
            created: rfc3339(b.created_at),
            total: b.jobs,
            finished: b.finished,
        })
        .collect();
    let jobs: Vec<html::Job> = jobs.iter().map(job_page).collect();
    page(html::index_page(
        &task_options(&state).await?,
        &batches,
        &jobs,
    ))
}

/// The tasks the service knows, for the form's choice.
async fn task_options(state: &AppState) -> Result<Vec<TaskOption>, ApiError> {
    let dir = state.config.tasks_dir.clone();
    // Reading the task folders is blocking IO.
    tokio::task::spawn_blocking(move || {
        Task::list(&dir)
            .into_iter()
            .map(|id| TaskOption {
                title: Task::load(&dir, &id).map(|t| t.title).unwrap_or_default(),
                id,
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("listing tasks: {e}")))
}

pub(super) async fn verification_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state.jobs.store.job(&id).await?.ok_or(ApiError::NotFound {
        what: "verification",
        id,
    })?;
    // The original its script is shown beside: none for a task without
    // one (`generic-reset`), or one no longer there.
    let prepared = match job.result.as_ref().and_then(|v| v.script.as_ref()) {
        Some(_) if !job.task.is_empty() => state.jobs.prepared_task(&job.task).await.ok(),
        _ => None,
    };
    let original = prepared.as_ref().map(|p| p.task.original_source.as_str());
    page(html::verification_page(&job_page(&job), original))
}

/// A batch page's query: the pass@k of its leaderboard, as the batch's
/// JSON takes them. Other parameters are let through (a page's link may
/// carry a browser's or a tracker's).
#[derive(Debug, Default, Deserialize)]
pub(super) struct BatchPageQuery {
    pass_at: Option<String>,
}

pub(super) async fn batch_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchPageQuery>,
) -> Result<Response, ApiError> {
    let pass_at = parse_pass_at(query.pass_at.as_deref())?;
    let batch = state
        .jobs
        .store
        .batch_with(&id, BatchDetail::Summary)
        .await?
        .ok_or(ApiError::NotFound { what: "batch", id })?;
    page(html::batch_page(&batch_page_of(&batch, &pass_at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskChoice;
    use crate::verify::Verification;
    use serde_json::json;

    /// The experiment's task (fixtures/tasks).
    const DEFAULT_TASK: &str = "reset-conversation";

    /// A verification's page as its route renders it.
    fn verification_html(job: &JobRecord) -> String {
        html::verification_page(&job_page(job), None).unwrap()
    }

    /// A batch's page as its route renders it.
    fn batch_html(batch: &BatchRecord) -> String {
        html::batch_page(&batch_page_of(batch, &[1])).unwrap()
    }

    /// A finished job as a worker would store it.
    fn finished_job(model: &str) -> JobRecord {
        let result: Verification = serde_json::from_value(json!({
            "model": model, "task": DEFAULT_TASK, "tier": 3, "label": "fail",
            "failure": "broken_after_reset", "reason": "the app no longer answers <after> the reset",
            "history_cleared": {"memory": true, "screen": true, "next_request": null},
            "unrequested_changes": [{"source": "static", "kind": "new_layout", "detail": "QHBoxLayout", "line": 2}],
            "missing": [{"kind": "method", "name": "ChatWindow.init_ui", "original_line": 40}],
            "steps": [
                {"name": "launch", "ok": true, "ms": 300.0, "detail": ""},
                {"name": "turn_3", "ok": false, "ms": 12.0, "detail": "TypeError"}
            ],
            "artifacts": [{"name": "before_reset.png", "media_type": "image/png", "size": 3}],
            "extraction": null, "static": null, "behaviour": null, "error": null,
            "sandbox": "docker", "run_id": "r1", "duration_ms": 1500,
            "script": "import sys\nprint('<b>')\n"
        }))
        .unwrap();
        JobRecord {
            id: "job-1".into(),
            batch_id: Some("batch-1".into()),
            task: DEFAULT_TASK.into(),
            model: model.into(),
            sample: None,
            metadata: None,
            status: Status::Done,
            result: Some(result),
            error: None,
            attempts: 1,
            created_at: 0,
            started_at: Some(1),
            finished_at: Some(2),
            callback: None,
            task_choice: Some(TaskChoice::given(DEFAULT_TASK)),
        }
    }

    #[test]
    fn a_verification_page_highlights_the_failing_step_and_escapes_the_answer() {
        let html = verification_html(&finished_job("<script>alert(1)</script>"));
        assert!(
            html.contains("<tr class=\"failed\"><td>turn_3</td>"),
            "{html}"
        );
        assert!(html.contains("<tr><td>launch</td>"), "{html}");
        assert!(!html.contains("<script>"), "the model name is escaped");
        assert!(html.contains("&lt;after&gt;"));
        assert!(html.contains("<code>new_layout</code>") && html.contains("<a href=\"#L2\">2</a>"));
        assert!(html.contains("<code>ChatWindow.init_ui</code>") && html.contains("<td>40</td>"));
        assert!(html.contains("src=\"/v1/verifications/job-1/artifacts/before_reset.png\""));
        assert!(
            html.contains("<span id=\"L2\">   2  print(&#39;&lt;b&gt;&#39;)</span>"),
            "{html}"
        );
    }

    #[test]
    fn a_verification_page_shows_its_script_beside_the_original_and_what_it_reruns() {
        let mut job = finished_job("m");
        job.metadata = Some(json!({"rerun_of": "job-0<x>"}));
        let html = html::verification_page(&job_page(&job), Some("import sys\n")).unwrap();
        assert!(
            html.contains("<table id=\"diff\" class=\"diff\">"),
            "{html}"
        );
        assert!(
            html.contains("<tr class=\"added\"><td class=\"n\"></td><td class=\"code\"></td><td class=\"n\">2</td><td class=\"code flagged\" id=\"D2\" title=\"unrequested change: new_layout\">print(&#39;&lt;b&gt;&#39;)</td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("re-run of <a href=\"/verifications/job-0&lt;x&gt;\">job-0&lt;x&gt;</a>"),
            "{html}"
        );
        assert!(html.contains("<form method=\"post\" action=\"/verifications/job-1/rerun\">"));
        // No original (`generic-reset`): no diff; the script is listed.
        let html = verification_html(&job);
        assert!(!html.contains("id=\"diff\"") && html.contains("id=\"script\""));
    }

    #[test]
    fn a_batch_page_is_the_experiments_table_with_counts_and_a_chart() {
        let mut unfinished = finished_job("b-model");
        unfinished.id = "job-2".into();
        unfinished.status = Status::Queued;
        unfinished.result = None;
        let batch = BatchRecord {
            id: "batch-1".into(),
            task: DEFAULT_TASK.into(),
            created_at: 0,
            jobs: vec![unfinished, finished_job("a-model")],
            callback: None,
        };
        let html = batch_html(&batch);
        assert!(html.contains("tier 3 fail: 1"), "{html}");
        assert!(html.contains("1 of 2 finished"));
        let a = html.find(">a-model</a>").unwrap();
        let b = html.find(">b-model</a>").unwrap();
        assert!(a < b, "rows sorted by model like `grade`");
        assert!(html.contains("<svg id=\"chart\"") && html.contains("fill=\"#c62828\""));
        assert!(html.contains("<table id=\"leaderboard\">"), "{html}");
        // The finished answer's model on the leaderboard: 0 of 1 passed.
        assert!(html.contains("<tr><td>a-model</td><td>1</td>"), "{html}");
    }

    #[test]
    fn a_batch_page_of_several_tasks_names_each_answers_task_and_its_pass_at() {
        let mut other = finished_job("a-model");
        other.id = "job-2".into();
        other.task = "temperature-control".into();
        let batch = BatchRecord {
            id: "batch-1".into(),
            task: format!("{DEFAULT_TASK}, temperature-control"),
            created_at: 0,
            jobs: vec![finished_job("a-model"), other],
            callback: None,
        };
        let html = html::batch_page(&batch_page_of(&batch, &[1, 5])).unwrap();
        assert!(
            html.contains("<tr><th>model</th><th>task</th><th>tier</th>"),
            "{html}"
        );
        assert!(
            html.contains("<td><code>temperature-control</code></td><td><span class=\"tier t3\""),
            "{html}"
        );
        assert!(html.contains("<th>pass@1</th><th>pass@5</th>"), "{html}");
        assert!(
            html.contains("?format=markdown&amp;pass_at=1,5\""),
            "{html}"
        );
        // One task: no task column, and the default pass@1 links bare.
        let html = batch_html(&BatchRecord {
            jobs: vec![finished_job("a-model")],
            ..batch
        });
        assert!(html.contains("<tr><th>model</th><th>tier</th>"), "{html}");
        assert!(html.contains("?format=markdown\""), "{html}");
    }
}
