//! `POST /v1/batches` (many answers: a JSON array or JSON Lines) and
//! `GET /v1/batches/{id}`: its progress, or once done its report in a
//! format of `render::Format`; `GET /v1/batches/{id}/compare/{other}`:
//! two finished batches compared (202 while either runs).

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::submit::{
    admit, check_callback_url, choose_tasks, request_input, submit, Input, VerificationRequest,
};
use crate::render::{self, Format};
use crate::service::api_error::{ApiError, ApiPath, ApiQuery, Body};
use crate::service::limits::{check_fields, parse_pass_at, requested_wait, sample_text};
use crate::service::pages::secure_page;
use crate::service::state::AppState;
use crate::service::store::{self, BatchRecord, NewBatch, NewJob, Status};
use crate::service::views::{batch_progress, batch_results, batch_status, batch_view_with};

/// One answer of a batch: a raw answer in `output`, or an app in
/// `archive_base64` (+ `archive_name`, `entry`), as `POST /v1/verifications` takes them;
/// its `task` (over the query's), and `sample` (or `id`): which of the
/// model's answers to the task it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    sample: Option<Value>,
    /// `sample`'s other name (a generator's id for the answer).
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    archive_base64: Option<String>,
    #[serde(default)]
    archive_name: Option<String>,
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

impl BatchItem {
    /// The answer or app it carries, checked as a verification's is; a
    /// refusal names the answer.
    fn input(self, max_body: usize, which: &str) -> Result<Input, ApiError> {
        let mut request = VerificationRequest {
            output: self.output,
            archive_base64: self.archive_base64,
            archive_name: self.archive_name,
            entry: self.entry,
            task: None,
            model: None,
            sample: None,
            metadata: None,
            callback_url: None,
        };
        request_input(&mut request, None, max_body).map_err(|e| match e {
            ApiError::Unprocessable { code, message } => ApiError::Unprocessable {
                code,
                message: format!("{which}: {message}"),
            },
            ApiError::TooLarge(message) => ApiError::TooLarge(format!("{which}: {message}")),
            other => other,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchQuery {
    task: Option<String>,
    /// Where the finished batch's view is POSTed (the body is the answers).
    callback_url: Option<String>,
}

/// A JSON array of answers, or JSON Lines of them.
fn parse_batch(body: &[u8]) -> Result<Vec<BatchItem>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body is not a JSON array of {{\"model\", \"output\"}}: {e}"
            ))
        });
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                ApiError::BadRequest(format!(
                    "JSONL line {}: not a {{\"model\", \"output\"}} object: {e}",
                    i + 1
                ))
            })
        })
        .collect()
}

pub(super) async fn create_batch(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BatchQuery>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let items = parse_batch(&body)?;
    if items.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "empty_batch",
            message: "the batch holds no answers".into(),
        });
    }
    if items.len() > state.config.max_batch {
        return Err(ApiError::TooLarge(format!(
            "the batch holds {} answers, over the limit of {} (see --max-batch)",
            items.len(),
            state.config.max_batch
        )));
    }
    let callback_url = check_callback_url(query.callback_url.as_deref())?;
    let mut jobs = Vec::with_capacity(items.len());
    let mut named = Vec::with_capacity(items.len());
    let mut unpacked = 0u64;
    for (i, item) in items.into_iter().enumerate() {
        let which = format!("answer {}", i + 1);
        check_fields(
            item.model.as_deref(),
            item.entry.as_deref(),
            item.archive_name.as_deref(),
            &item.metadata,
            &which,
        )?;
        let metadata = item.metadata.clone().filter(|m| !m.is_null());
        let sample = match sample_text(&item.sample, &which)? {
            Some(sample) => Some(sample),
            None => sample_text(&item.id, &which)?,
        };
        named.push(item.task.clone().filter(|t| !t.trim().is_empty()));
        let model = item
            .model
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("answer-{}", i + 1));
        let (output, upload, declared) = item.input(state.config.max_body, &which)?;
        unpacked = unpacked.saturating_add(declared);
        if unpacked > state.config.max_batch_unpacked {
            return Err(ApiError::TooLarge(format!(
                "the batch's apps unpack to more than {} MiB (at least {} MiB up to {which}), over the limit of {} MiB (see --max-batch-unpacked-mb)",
                state.config.max_batch_unpacked >> 20,
                unpacked >> 20,
                state.config.max_batch_unpacked >> 20
            )));
        }
        jobs.push(NewJob {
            task: String::new(),
            task_choice: None,
            model,
            sample,
            output,
            metadata,
            callback_url: None,
            upload,
        });
    }
    // Like `qtjudge grade`: a model's answers to a task are keyed by their
    // samples, numbered in order when not given (no more `name#2`).
    let keys: Vec<_> = jobs
        .iter()
        .zip(&named)
        .map(|(j, task)| (j.model.as_str(), task.as_deref(), j.sample.as_deref()))
        .collect();
    let samples =
        crate::grading::samples::number(&keys).map_err(|message| ApiError::Unprocessable {
            code: "duplicate_sample",
            message,
        })?;
    for (job, sample) in jobs.iter_mut().zip(samples) {
        job.sample = sample;
    }
    // An answer that names its task is not compared with the tasks' originals.
    let codes = jobs
        .iter()
        .zip(&named)
        .map(|(j, task)| (j.upload.is_none() && task.is_none()).then(|| j.output.clone()))
        .collect();
    let mut choices = choose_tasks(&state, query.task.as_deref(), codes).await?;
    for (choice, task) in choices.iter_mut().zip(&named) {
        if let Some(task) = task {
            *choice = Some(crate::task::TaskChoice::given(task));
        }
    }
    let mut tasks: Vec<String> = choices.iter().flatten().map(|c| c.task.clone()).collect();
    for (job, choice) in jobs.iter_mut().zip(choices) {
        job.task = choice.as_ref().map(|c| c.task.clone()).unwrap_or_default();
        job.task_choice = choice;
    }
    tasks.sort();
    tasks.dedup();
    if tasks.is_empty() {
        // Only apps, each task chosen when it runs.
        admit(&state, crate::task::FALLBACK_TASK).await?;
    }
    for task in &tasks {
        admit(&state, task).await?;
    }
    let id = store::new_id();
    let count = jobs.len();
    let batch = NewBatch {
        id: id.clone(),
        // The task given, else the one every answer resembled, else each
        // task chosen (every verification names its own).
        task: tasks.join(", "),
        callback_url,
    };
    submit(&state, jobs, Some(batch)).await?;
    let location = format!("/v1/batches/{id}");
    let body =
        json!({"id": id, "status": Status::Queued, "total": count, "links": {"self": location}});
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchViewQuery {
    format: Option<Format>,
    /// The k of each pass@k of the leaderboard, comma-separated (default 1).
    pass_at: Option<String>,
    wait: Option<u64>,
}

pub(super) async fn get_batch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchViewQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pass_at = parse_pass_at(query.pass_at.as_deref())?;
    let wait = requested_wait(query.wait, &headers);
    // A report in a format carries every result whole; the view does not.
    let detail = match query.format {
        Some(_) => store::BatchDetail::Full,
        None => store::BatchDetail::Summary,
    };
    let batch = if wait.is_zero() {
        state.jobs.store.batch_with(&id, detail).await?
    } else {
        state.jobs.wait_for_batch(&id, wait, detail).await?
    };
    let batch = batch.ok_or(ApiError::NotFound { what: "batch", id })?;
    let done = batch_status(&batch) == Status::Done;
    match query.format {
        Some(format) if done => {
            let rendered = render::report(&batch_results(&batch), format, &pass_at);
            let mut response = (
                [(CONTENT_TYPE, HeaderValue::from_static(format.media_type()))],
                rendered,
            )
                .into_response();
            if format == Format::Html {
                secure_page(response.headers_mut());
            }
            Ok(response)
        }
        // Not finished: the progress, as 202, like a verification not yet done.
        Some(_) => Ok((
            StatusCode::ACCEPTED,
            Json(batch_view_with(&batch, &pass_at)),
        )
            .into_response()),
        None => Ok(Json(batch_view_with(&batch, &pass_at)).into_response()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CompareQuery {
    format: Option<render::CompareFormat>,
}

/// `GET /v1/batches/{id}/compare/{other}`: batch `id` (A) against batch
/// `other` (B), as `qtjudge compare` compares two run folders, once both
/// are finished. JSON unless `?format=` says otherwise. While either runs:
/// 202 with how far each got and a Retry-After (a comparison of half a
/// batch would read as a regression).
pub(super) async fn compare_batches(
    State(state): State<AppState>,
    ApiPath((a, b)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<CompareQuery>,
) -> Result<Response, ApiError> {
    let mut batches = Vec::with_capacity(2);
    for id in [a.clone(), b.clone()] {
        let batch = state
            .jobs
            .store
            .batch_with(&id, store::BatchDetail::Full)
            .await?
            .ok_or(ApiError::NotFound { what: "batch", id })?;
        batches.push(batch);
    }
    if batches.iter().any(|b| batch_status(b) != Status::Done) {
        return Ok(comparison_pending(&state, &batches[0], &batches[1]));
    }
    let runs: Vec<_> = batches.iter().map(batch_results).collect();
    let format = query.format.unwrap_or(render::CompareFormat::Json);
    let comparison = render::comparison(&runs[0], &runs[1]);
    let rendered = render::compare(
        &comparison,
        &format!("batch {a}"),
        &format!("batch {b}"),
        format,
    );
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static(format.media_type()))],
        rendered,
    )
        .into_response())
}

/// The 202 of a comparison asked for too early: which batch is still
/// running, how many of its answers are finished, and when to look again
/// (about one verification's time: each one finished changes the answer).
fn comparison_pending(state: &AppState, a: &BatchRecord, b: &BatchRecord) -> Response {
    let mut running: Vec<&BatchRecord> = [a, b]
        .into_iter()
        .filter(|batch| batch_status(batch) != Status::Done)
        .collect();
    // A batch compared with itself is named once.
    running.dedup_by(|x, y| x.id == y.id);
    let retry_after = state
        .jobs
        .metrics
        .mean_seconds()
        .unwrap_or(2.0)
        .ceil()
        .clamp(1.0, 60.0) as u64;
    let waiting: Vec<String> = running
        .iter()
        .map(|batch| {
            let progress = batch_progress(batch);
            format!(
                "batch {} ({} of {} answers finished)",
                batch.id, progress["finished"], progress["total"]
            )
        })
        .collect();
    let body = json!({
        "status": if running.iter().any(|b| batch_status(b) == Status::Running) {
            Status::Running
        } else {
            Status::Queued
        },
        "running": running.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        "a": batch_progress(a),
        "b": batch_progress(b),
        "message": format!(
            "{} still running; the comparison is made once both batches are finished: retry in {retry_after} s",
            waiting.join(" and ")
        ),
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}
