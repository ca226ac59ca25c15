//! The pages a person opens (server-rendered HTML, no script build): the
//! recent verifications and batches, one verification, one batch; and the
//! headers every page carries.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::report::Counts;
use crate::service::api_error::{ApiError, ApiPath};
use crate::service::state::AppState;
use crate::service::store::{BatchDetail, BatchRecord, JobRecord, Status};
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

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const PAGE_STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#1d2330}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #dde;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f8}a{color:#2449b8}code,pre{font:13px/1.35 ui-monospace,monospace}
pre{background:#f6f7f9;padding:.6rem;overflow:auto;max-height:40rem}
.tier{display:inline-block;padding:.05rem .5rem;border-radius:.8rem;font-weight:600;white-space:nowrap}
.t1{background:#d9f2df;color:#135c26}.t2{background:#fff0c2;color:#6b4d00}.t3{background:#fadbd8;color:#8c1d13}.terr,.tq{background:#e6e7ec;color:#444}
tr.failed td{background:#fdecea}tr.failed td:first-child{border-left:4px solid #c62828}
.shots{display:flex;gap:1rem;flex-wrap:wrap}.shots figure{margin:0;flex:1 1 45%}.shots img{max-width:100%;border:1px solid #ccd}
.muted{color:#667}.counts span{margin-right:1.2rem}
";

fn page(title: &str, refresh: bool, body: &str) -> Response {
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"2\">"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">{refresh}<title>{} · qtjudge</title><style>{PAGE_STYLE}</style></head><body><p class=\"muted\"><a href=\"/\">qtjudge</a></p>{body}</body></html>",
        esc(title)
    );
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response()
}

/// The tier badge of a job, whatever its state.
fn tier_badge(status: Status, result: Option<&Verification>) -> String {
    match (status, result) {
        (_, Some(v)) => match v.tier {
            Some(t) => format!("<span class=\"tier t{t}\">{t} {}</span>", v.label.as_str()),
            None => "<span class=\"tier terr\">not judged</span>".into(),
        },
        (Status::Error, None) => "<span class=\"tier terr\">error</span>".into(),
        (status, None) => format!("<span class=\"tier tq\">{}</span>", status.as_str()),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub(super) async fn index_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    use std::fmt::Write as _;
    let jobs = state.jobs.store.recent_jobs(50).await?;
    let batches = state.jobs.store.recent_batches(20).await?;
    let mut body = String::from("<h1>qtjudge verifier</h1><h2>Batches</h2>");
    if batches.is_empty() {
        body.push_str("<p class=\"muted\">none yet: POST /v1/batches</p>");
    } else {
        body.push_str(
            "<table><tr><th>batch</th><th>task</th><th>created</th><th>finished</th></tr>",
        );
        for (id, task, created, total, finished) in &batches {
            let _ = write!(
                body,
                "<tr><td><a href=\"/batches/{id}\">{}</a></td><td>{}</td><td>{}</td><td>{finished} / {total}</td></tr>",
                esc(short(id)),
                esc(task),
                rfc3339(*created),
                id = esc(id)
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Recent verifications</h2>");
    if jobs.is_empty() {
        body.push_str("<p class=\"muted\">none yet: POST /v1/verifications</p>");
    } else {
        body.push_str(
            "<table><tr><th>model</th><th>verdict</th><th>reason</th><th>created</th></tr>",
        );
        for job in &jobs {
            let reason = job
                .result
                .as_ref()
                .map(|v| v.reason.clone())
                .or_else(|| job.error.clone())
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td><a href=\"/verifications/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&job.id),
                esc(&job.model),
                tier_badge(job.status, job.result.as_ref()),
                esc(&reason),
                rfc3339(job.created_at)
            );
        }
        body.push_str("</table>");
    }
    let refresh = jobs.iter().any(|j| !j.status.is_finished());
    Ok(page("qtjudge", refresh, &body))
}

pub(super) async fn verification_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = state.jobs.store.job(&id).await?.ok_or(ApiError::NotFound {
        what: "verification",
        id,
    })?;
    Ok(page(
        &job.model,
        !job.status.is_finished(),
        &verification_html(&job),
    ))
}

fn verification_html(job: &JobRecord) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>{} {}</h1><p>task <code>{}</code> · {} · created {}{}</p>",
        esc(&job.model),
        tier_badge(job.status, job.result.as_ref()),
        esc(&job.task),
        job.status.as_str(),
        rfc3339(job.created_at),
        job.batch_id
            .as_ref()
            .map(|b| format!(
                " · <a href=\"/batches/{0}\">batch {1}</a>",
                esc(b),
                esc(short(b))
            ))
            .unwrap_or_default()
    );
    if let Some(error) = &job.error {
        let _ = write!(out, "<p><strong>error:</strong> {}</p>", esc(error));
    }
    if let Some(metadata) = &job.metadata {
        let _ = write!(
            out,
            "<p class=\"muted\">metadata <code>{}</code></p>",
            esc(&metadata.to_string())
        );
    }
    let Some(v) = &job.result else {
        out.push_str("<p class=\"muted\">No result yet; this page refreshes itself.</p>");
        return out;
    };
    let _ = write!(
        out,
        "<p><strong>reason:</strong> <span id=\"reason\">{}</span></p>",
        esc(&v.reason)
    );
    if let Some(failure) = &v.failure {
        let _ = write!(
            out,
            "<p><strong>failure:</strong> <code>{}</code></p>",
            esc(failure)
        );
    }
    if let Some(error) = &v.error {
        let _ = write!(out, "<p><strong>not judged:</strong> {}</p>", esc(error));
    }
    if let Some(p) = &v.history_cleared {
        let plane = |b: Option<bool>| match b {
            Some(true) => "cleared",
            Some(false) => "<strong>NOT cleared</strong>",
            None => "not reached",
        };
        let _ = write!(
            out,
            "<h2>History after the reset</h2><table><tr><th>memory</th><th>screen</th><th>next request</th></tr><tr><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            plane(p.memory),
            plane(p.screen),
            plane(p.next_request)
        );
    }
    if !v.steps.is_empty() {
        // The planes are judged by the host, after the steps: a history
        // left in place shows on the step that checked it.
        let host_found =
            v.failure.as_deref() == Some("history_not_cleared") && v.steps.iter().all(|s| s.ok);
        out.push_str("<h2>Steps</h2><table id=\"steps\"><tr><th>step</th><th>result</th><th>ms</th><th>detail</th></tr>");
        for step in &v.steps {
            let failed = !step.ok || (host_found && step.name == "check_cleared");
            let _ = write!(
                out,
                "<tr{}><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td></tr>",
                if failed { " class=\"failed\"" } else { "" },
                esc(&step.name),
                match (step.ok, failed) {
                    (false, _) => "<strong>FAILED</strong>",
                    (true, true) => "<strong>ok, but the host found history left</strong>",
                    (true, false) => "ok",
                },
                step.ms,
                esc(&step.detail)
            );
        }
        out.push_str("</table>");
    }
    if !v.unrequested_changes.is_empty() {
        out.push_str("<h2>Unrequested changes</h2><table id=\"changes\"><tr><th>seen in</th><th>kind</th><th>detail</th><th>line</th></tr>");
        for c in &v.unrequested_changes {
            let line = c
                .line
                .map(|l| format!("<a href=\"#L{l}\">{l}</a>"))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{line}</td></tr>",
                esc(&c.source),
                esc(&c.kind),
                esc(&c.detail)
            );
        }
        out.push_str("</table>");
    }
    if !v.missing.is_empty() {
        out.push_str("<h2>Missing from the original</h2><table id=\"missing\"><tr><th>kind</th><th>name</th><th>original line</th></tr>");
        for m in &v.missing {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&m.kind),
                esc(&m.name),
                m.original_line
            );
        }
        out.push_str("</table>");
    }
    if !v.artifacts.is_empty() {
        out.push_str("<h2>Screenshots</h2><div class=\"shots\">");
        for a in &v.artifacts {
            // The two attributes let a browser test see whether the image loaded.
            let _ = write!(
                out,
                "<figure><img src=\"/v1/verifications/{}/artifacts/{name}\" alt=\"{name}\" onload=\"{IMAGE_LOADED}\" onerror=\"{IMAGE_FAILED}\"><figcaption>{name}</figcaption></figure>",
                esc(&job.id),
                name = esc(&a.name)
            );
        }
        out.push_str("</div>");
    }
    if let Some(script) = &v.script {
        out.push_str("<h2>The extracted script</h2><details open><summary>as run</summary><pre id=\"script\">");
        for (n, line) in script.lines().enumerate() {
            let _ = writeln!(
                out,
                "<span id=\"L{0}\">{0:>4}  {1}</span>",
                n + 1,
                esc(line)
            );
        }
        out.push_str("</pre></details>");
    }
    let _ = write!(
        out,
        "<p class=\"muted\"><a href=\"{}\">this verification as JSON</a></p>",
        verification_link(&job.id)
    );
    out
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
    let status = batch_status(&batch);
    Ok(page(
        &format!("batch {}", short(&batch.id)),
        status != Status::Done,
        &batch_html(&batch),
    ))
}

fn batch_html(batch: &BatchRecord) -> String {
    use std::fmt::Write as _;
    let status = batch_status(batch);
    let results = batch_results(batch);
    let counts = Counts::of(&results);
    let finished = batch.jobs.iter().filter(|j| j.status.is_finished()).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>Batch {}</h1><p>task <code>{}</code> · {} · {finished} of {} finished · created {}</p>",
        esc(short(&batch.id)),
        esc(&batch_tasks(batch)),
        status.as_str(),
        batch.jobs.len(),
        rfc3339(batch.created_at)
    );
    let _ = write!(
        out,
        "<p class=\"counts\" id=\"counts\"><span class=\"tier t1\">tier 1 flawless: {}</span><span class=\"tier t2\">tier 2 unrequested changes: {}</span><span class=\"tier t3\">tier 3 fail: {}</span>{}</p>",
        counts.tier1,
        counts.tier2,
        counts.tier3,
        if counts.error > 0 {
            format!("<span class=\"tier terr\">not judged: {}</span>", counts.error)
        } else {
            String::new()
        }
    );
    let mut jobs: Vec<&JobRecord> = batch.jobs.iter().collect();
    jobs.sort_by(|a, b| a.model.cmp(&b.model));
    out.push_str(&tier_chart(&jobs));
    out.push_str(
        "<table id=\"results\"><tr><th>model</th><th>tier</th><th>failure</th><th>reason</th></tr>",
    );
    for job in &jobs {
        let v = job.result.as_ref();
        let _ = write!(
            out,
            "<tr><td><a href=\"/verifications/{}\">{}</a></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&job.id),
            esc(&job.model),
            tier_badge(job.status, v),
            esc(v.and_then(|v| v.failure.as_deref()).unwrap_or("")),
            esc(&v.map(|v| v.reason.clone()).or_else(|| job.error.clone()).unwrap_or_default())
        );
    }
    out.push_str("</table>");
    let _ = write!(
        out,
        "<p class=\"muted\">as <a href=\"/v1/batches/{0}\">JSON</a>, <a href=\"/v1/batches/{0}?format=markdown\">Markdown</a>, <a href=\"/v1/batches/{0}?format=junit\">JUnit</a></p>",
        esc(&batch.id)
    );
    out
}

/// An inline SVG bar per model: tier 1 longest, tier 3 shortest, colour by tier.
fn tier_chart(jobs: &[&JobRecord]) -> String {
    use std::fmt::Write as _;
    let row = 22;
    let label_width = 230;
    let unit = 150;
    let height = row * jobs.len() + 8;
    let mut svg = format!(
        "<svg id=\"chart\" role=\"img\" aria-label=\"tier per model\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"system-ui,sans-serif\" font-size=\"13\">",
        label_width + 3 * unit + 140
    );
    for (i, job) in jobs.iter().enumerate() {
        let y = i * row + 4;
        let tier = job.result.as_ref().and_then(|v| v.tier);
        let (length, colour, label) = match tier {
            Some(1) => (3, "#2e7d32", "1 flawless".to_string()),
            Some(2) => (2, "#f9a825", "2 unrequested changes".to_string()),
            Some(3) => (1, "#c62828", "3 fail".to_string()),
            _ => (0, "#9e9e9e", job.status.as_str().to_string()),
        };
        let model: String = job.model.chars().take(32).collect();
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label_width}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"><title>{}</title></rect><text x=\"{}\" y=\"{}\">{}</text>",
            y + 14,
            esc(&model),
            length * unit,
            row - 6,
            esc(&label),
            label_width + length * unit + 6,
            y + 14,
            esc(&label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskChoice;
    use serde_json::json;

    /// The experiment's task (fixtures/tasks).
    const DEFAULT_TASK: &str = "reset-conversation";

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
}
