//! The pages a person opens (server-rendered HTML, no script build): the
//! recent verifications and batches, one verification, one batch; and the
//! headers every page carries. The HTML is in `templates/` (askama:
//! checked at compile time, every value escaped unless marked safe).

use askama::Template;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::report::Counts;
use crate::service::api_error::{ApiError, ApiPath};
use crate::service::state::AppState;
use crate::service::store::{BatchDetail, BatchListing, BatchRecord, JobRecord, Status};
use crate::service::views::{batch_results, batch_status, batch_tasks, rfc3339, verification_link};
use crate::verify::Verification;

/// The only script a page holds: an image's two handlers, which let a
/// browser test see whether it loaded.
const IMAGE_LOADED: &str = "this.dataset.loaded='yes'";
const IMAGE_FAILED: &str = "this.dataset.loaded='no'";

/// Pages are HTML the service wrote: no other script may run in them (only
/// the two handlers above, by hash), and no other site may frame them.
pub(super) async fn page_headers(request: Request, next: Next) -> Response {
    static POLICY: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = |code: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(code))
        };
        let policy = format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
             script-src 'unsafe-hashes' 'sha256-{}' 'sha256-{}'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            hash(IMAGE_LOADED),
            hash(IMAGE_FAILED)
        );
        HeaderValue::from_str(&policy).expect("the policy is ASCII")
    });
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("content-security-policy", POLICY.clone());
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The pages' escaper: `&`, `<`, `>`, `"` and `'` as the named entities
/// (and `&#39;`) the pages have always written, for element content and
/// quoted attribute values alike (askama's own escaper writes numeric
/// entities). Named in `templates/askama.toml`.
#[derive(Clone, Copy)]
struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, text: &str) -> std::fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            dest.write_str(&rest[..at])?;
            dest.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        dest.write_str(rest)
    }
}

/// A page as the response; a page that cannot be rendered is a fault of
/// the service (logged once by `ApiError`).
fn html(page: impl Template) -> Result<Response, ApiError> {
    let html = page
        .render()
        .map_err(|e| ApiError::Internal(format!("rendering a page: {e}")))?;
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response())
}

/// The tier badge of a job, whatever its state.
#[derive(Template)]
#[template(path = "badge.html", config = "src/service/templates/askama.toml")]
struct Badge {
    /// `t1`, `t2`, `t3`; `terr` not judged; `tq` not finished.
    class: String,
    text: String,
}

impl Badge {
    fn of(status: Status, result: Option<&Verification>) -> Badge {
        let (class, text) = match (status, result) {
            (_, Some(v)) => match v.tier {
                Some(t) => (format!("t{t}"), format!("{t} {}", v.label.as_str())),
                None => ("terr".into(), "not judged".into()),
            },
            (Status::Error, None) => ("terr".into(), "error".into()),
            (status, None) => ("tq".into(), status.as_str().into()),
        };
        Badge { class, text }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A job in a listing: its badge, failure code and reason (or why it
/// could not be judged).
struct JobRow<'a> {
    job: &'a JobRecord,
    badge: Badge,
    failure: &'a str,
    reason: &'a str,
}

impl<'a> JobRow<'a> {
    fn of(job: &'a JobRecord) -> JobRow<'a> {
        let v = job.result.as_ref();
        JobRow {
            job,
            badge: Badge::of(job.status, v),
            failure: v.and_then(|v| v.failure.as_deref()).unwrap_or(""),
            reason: v
                .map(|v| v.reason.as_str())
                .or(job.error.as_deref())
                .unwrap_or(""),
        }
    }
}

#[derive(Template)]
#[template(path = "index.html", config = "src/service/templates/askama.toml")]
struct IndexPage<'a> {
    title: &'a str,
    refresh: bool,
    /// Newest first.
    batches: &'a [BatchListing],
    jobs: Vec<JobRow<'a>>,
}

pub(super) async fn index_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let jobs = state.jobs.store.recent_jobs(50).await?;
    let batches = state.jobs.store.recent_batches(20).await?;
    html(IndexPage {
        title: "qtjudge",
        refresh: jobs.iter().any(|j| !j.status.is_finished()),
        batches: &batches,
        jobs: jobs.iter().map(JobRow::of).collect(),
    })
}

#[derive(Template)]
#[template(
    path = "verification.html",
    config = "src/service/templates/askama.toml"
)]
struct VerificationPage<'a> {
    title: &'a str,
    refresh: bool,
    job: &'a JobRecord,
    badge: Badge,
}

impl<'a> VerificationPage<'a> {
    fn of(job: &'a JobRecord) -> VerificationPage<'a> {
        VerificationPage {
            title: &job.model,
            refresh: !job.status.is_finished(),
            job,
            badge: Badge::of(job.status, job.result.as_ref()),
        }
    }

    /// Whether a step's row shows as failed. The planes are judged by the
    /// host, after the steps: a history left in place shows on the step
    /// that checked it.
    fn failed(&self, step: &crate::harness::Step) -> bool {
        let host_found = self.job.result.as_ref().is_some_and(|v| {
            v.failure.as_deref() == Some("history_not_cleared") && v.steps.iter().all(|s| s.ok)
        });
        !step.ok || (host_found && step.name == "check_cleared")
    }
}

pub(super) async fn verification_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state.jobs.store.job(&id).await?.ok_or(ApiError::NotFound {
        what: "verification",
        id,
    })?;
    html(VerificationPage::of(&job))
}

#[derive(Template)]
#[template(path = "batch.html", config = "src/service/templates/askama.toml")]
struct BatchPage<'a> {
    title: String,
    refresh: bool,
    batch: &'a BatchRecord,
    status: Status,
    finished: usize,
    counts: Counts,
    chart: Chart,
    /// Sorted by model, as `grade` sorts them.
    jobs: Vec<JobRow<'a>>,
}

impl<'a> BatchPage<'a> {
    fn of(batch: &'a BatchRecord) -> BatchPage<'a> {
        let status = batch_status(batch);
        let mut jobs: Vec<&JobRecord> = batch.jobs.iter().collect();
        jobs.sort_by(|a, b| a.model.cmp(&b.model));
        BatchPage {
            title: format!("batch {}", short(&batch.id)),
            refresh: status != Status::Done,
            batch,
            status,
            finished: batch.jobs.iter().filter(|j| j.status.is_finished()).count(),
            counts: Counts::of(&batch_results(batch)),
            chart: Chart::of(&jobs),
            jobs: jobs.into_iter().map(JobRow::of).collect(),
        }
    }
}

/// An inline SVG bar per model: tier 1 longest, tier 3 shortest, colour
/// by tier.
struct Chart {
    width: usize,
    height: usize,
    label_width: usize,
    bar_height: usize,
    bars: Vec<Bar>,
}

struct Bar {
    /// The first 32 characters of the model's name.
    model: String,
    y: usize,
    text_y: usize,
    width: usize,
    label_x: usize,
    colour: &'static str,
    label: String,
}

impl Chart {
    fn of(jobs: &[&JobRecord]) -> Chart {
        let row = 22;
        let label_width = 230;
        let unit = 150;
        let bars = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| {
                let y = i * row + 4;
                let (length, colour, label) = match job.result.as_ref().and_then(|v| v.tier) {
                    Some(1) => (3, "#2e7d32", "1 flawless".to_string()),
                    Some(2) => (2, "#f9a825", "2 unrequested changes".to_string()),
                    Some(3) => (1, "#c62828", "3 fail".to_string()),
                    _ => (0, "#9e9e9e", job.status.as_str().to_string()),
                };
                Bar {
                    model: job.model.chars().take(32).collect(),
                    y,
                    text_y: y + 14,
                    width: length * unit,
                    label_x: label_width + length * unit + 6,
                    colour,
                    label,
                }
            })
            .collect();
        Chart {
            width: label_width + 3 * unit + 140,
            height: row * jobs.len() + 8,
            label_width,
            bar_height: row - 6,
            bars,
        }
    }
}

pub(super) async fn batch_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let batch = state
        .jobs
        .store
        .batch_with(&id, BatchDetail::Summary)
        .await?
        .ok_or(ApiError::NotFound { what: "batch", id })?;
    html(BatchPage::of(&batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskChoice;
    use serde_json::json;

    /// The experiment's task (fixtures/tasks).
    const DEFAULT_TASK: &str = "reset-conversation";

    /// A verification's page as its route renders it.
    fn verification_html(job: &JobRecord) -> String {
        VerificationPage::of(job).render().unwrap()
    }

    /// A batch's page as its route renders it.
    fn batch_html(batch: &BatchRecord) -> String {
        BatchPage::of(batch).render().unwrap()
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
    }

    /// The five characters as the pages have always written them, the
    /// rest (multi-byte text included) as it is.
    #[test]
    fn the_escaper_writes_named_entities() {
        let mut out = String::new();
        askama::filters::Escaper::write_escaped_str(&Html, &mut out, "a<b>&\"c\"'d' été").unwrap();
        assert_eq!(out, "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39; été");
    }
}
