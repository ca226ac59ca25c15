//! What any submission goes through: the answer or app a request carries
//! (JSON, base64 or multipart; an app checked from its directory and
//! headers only, kept compressed), the task chosen for each answer, the
//! service admitting work, and the jobs enqueued.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::Value;

use crate::bundle::{InputKind, Upload};
use crate::service::api_error::ApiError;
use crate::service::callbacks;
use crate::service::limits::check_answer;
use crate::service::state::AppState;
use crate::service::store::{NewBatch, NewJob, StoreError};
use crate::task::TaskChoice;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerificationRequest {
    /// The raw answer; or else an app in `archive_base64`.
    #[serde(default)]
    pub(super) output: Option<String>,
    /// A `.zip`, `.tar.gz` or `.ipynb`, base64-encoded.
    #[serde(default)]
    pub(super) archive_base64: Option<String>,
    /// Its file name (says its kind); sniffed from its bytes when absent.
    #[serde(default)]
    pub(super) archive_name: Option<String>,
    /// The app's file run as `__main__` (default: the one with a guard).
    #[serde(default)]
    pub(super) entry: Option<String>,
    /// Absent: the task whose original the answer resembles, else `generic-reset`.
    #[serde(default)]
    pub(super) task: Option<String>,
    #[serde(default)]
    pub(super) model: Option<String>,
    /// Which of the model's answers to the task this is (a string or a number).
    #[serde(default)]
    pub(super) sample: Option<Value>,
    #[serde(default)]
    pub(super) metadata: Option<Value>,
    #[serde(default)]
    pub(super) callback_url: Option<String>,
}

/// Checks what any submission needs: the service is taking work, the
/// engine answers, the task exists.
pub(super) async fn admit(state: &AppState, task: &str) -> Result<(), ApiError> {
    if state.jobs.stopping().is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    state.jobs.prepared_task(task).await?;
    let engine = state.jobs.engine.health();
    if !engine.reachable {
        return Err(ApiError::EngineUnavailable(
            engine.problem.unwrap_or_else(|| "no answer".into()),
        ));
    }
    Ok(())
}

pub(super) fn check_callback_url(url: Option<&str>) -> Result<Option<String>, ApiError> {
    url.map(|url| {
        callbacks::check_url(url).map_err(|message| ApiError::Unprocessable {
            code: "invalid_callback_url",
            message,
        })
    })
    .transpose()
}

pub(super) async fn submit(
    state: &AppState,
    jobs: Vec<NewJob>,
    batch: Option<NewBatch>,
) -> Result<Vec<String>, ApiError> {
    state.jobs.submit(jobs, batch).await.map_err(|e| match e {
        StoreError::QueueFull { queued, max } => {
            // About when a worker will have taken a few jobs off the queue.
            let mean = state.jobs.metrics.mean_seconds().unwrap_or(2.0);
            let retry_after = (mean * 2.0).ceil().clamp(1.0, 600.0) as u64;
            ApiError::QueueFull {
                retry_after,
                message: format!(
                    "the queue is full ({queued} waiting, at most {max}); retry in {retry_after} s"
                ),
            }
        }
        other => other.into(),
    })
}

/// The kind of an archive sent without a name, from its first bytes.
fn sniff_kind(bytes: &[u8]) -> InputKind {
    if bytes.starts_with(b"PK") {
        InputKind::Zip
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        InputKind::TarGz
    } else {
        InputKind::Notebook
    }
}

/// A multipart upload as a [`VerificationRequest`]: the `file` part (its
/// name says what it is) and text fields of the same names as the JSON's.
pub(super) async fn parse_multipart(
    content_type: &str,
    body: Bytes,
) -> Result<(VerificationRequest, Option<(String, Bytes)>), ApiError> {
    let request = Request::builder()
        .header(CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut multipart = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| {
            ApiError::BadRequest(format!("not a multipart/form-data body: {}", e.body_text()))
        })?;
    let mut file = None;
    let mut fields = serde_json::Map::new();
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("unreadable multipart body: {}", e.body_text()))
    };
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or("answer.py").to_string();
                file = Some((filename, field.bytes().await.map_err(bad)?));
            }
            "entry" | "task" | "model" | "sample" | "callback_url" | "metadata" => {
                let text = field.text().await.map_err(bad)?;
                let value = if name == "metadata" {
                    serde_json::from_str(&text).map_err(|e| {
                        ApiError::BadRequest(format!("the `metadata` field is not JSON: {e}"))
                    })?
                } else {
                    Value::String(text)
                };
                fields.insert(name, value);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown multipart field `{other}`; send `file` and optionally entry, task, model, sample, metadata, callback_url"
                )))
            }
        }
    }
    if file.is_none() {
        return Err(ApiError::Unprocessable {
            code: "empty_output",
            message: "the upload has no `file` part: send the answer or the app (.py, .md, .zip, .tar.gz, .ipynb) as `file`".into(),
        });
    }
    let request: VerificationRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::BadRequest(format!("the upload's fields: {e}")))?;
    Ok((request, file))
}

/// The answer or app a request carries: (raw answer, app).
/// The raw answer, or the app uploaded with the size it declares
/// unpacked (0 for an answer).
pub(super) type Input = (String, Option<Upload>, u64);

pub(super) fn request_input(
    request: &mut VerificationRequest,
    upload: Option<(String, Bytes)>,
    max_body: usize,
) -> Result<Input, ApiError> {
    let entry = request.entry.clone().filter(|e| !e.trim().is_empty());
    let archive: Option<(InputKind, String, Vec<u8>)> =
        match (upload, request.archive_base64.take()) {
            (Some((name, bytes)), _) => match InputKind::of_name(&name) {
                InputKind::Answer => {
                    request.output = Some(String::from_utf8_lossy(&bytes).into_owned());
                    None
                }
                kind => Some((kind, name, bytes.to_vec())),
            },
            (None, Some(encoded)) => {
                if request.output.is_some() {
                    return Err(ApiError::Unprocessable {
                        code: "output_and_archive",
                        message:
                            "send `output` (a raw answer) or `archive_base64` (an app), not both"
                                .into(),
                    });
                }
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    encoded.trim(),
                )
                .map_err(|e| ApiError::Unprocessable {
                    code: "bad_archive",
                    message: format!("`archive_base64` is not base64: {e}"),
                })?;
                if bytes.len() > max_body {
                    return Err(ApiError::TooLarge(format!(
                        "the archive is {} bytes, over the limit of {max_body} (see --max-body-kb)",
                        bytes.len()
                    )));
                }
                let name = request.archive_name.clone().unwrap_or_default();
                let kind = match InputKind::of_name(&name) {
                    InputKind::Answer => sniff_kind(&bytes),
                    kind => kind,
                };
                Some((kind, name, bytes))
            }
            (None, None) => None,
        };
    match archive {
        Some((kind, name, bytes)) => {
            let upload = Upload {
                kind,
                name,
                entry,
                bytes,
            };
            // Only what the archive's directory and headers say: it is
            // unpacked by the worker that runs it, never here.
            let declared = upload.check()?;
            Ok((String::new(), Some(upload), declared))
        }
        None => {
            if entry.is_some() {
                return Err(ApiError::Unprocessable {
                    code: "entry_without_archive",
                    message: "`entry` applies to an app (archive_base64, or a .zip/.tar.gz/.ipynb upload), not to a raw answer".into(),
                });
            }
            let output = request.output.take().unwrap_or_default();
            check_answer(&output, max_body, "the answer")?;
            Ok((output, None, 0))
        }
    }
}

/// The task of each answer whose code is in `codes`: the one `given`, else
/// the task whose original the answer resembles, else `generic-reset` (as
/// `qtjudge verify` and `grade` choose without `--task`). The task folders
/// are read once for all the answers. An uploaded app (no code: it is not
/// unpacked here) gets none: the worker chooses when it unpacks it.
pub(super) async fn choose_tasks(
    state: &AppState,
    given: Option<&str>,
    codes: Vec<Option<String>>,
) -> Result<Vec<Option<TaskChoice>>, ApiError> {
    if let Some(task) = given.filter(|t| !t.is_empty()) {
        return Ok(codes
            .iter()
            .map(|_| Some(TaskChoice::given(task)))
            .collect());
    }
    if codes.iter().all(Option::is_none) {
        return Ok(codes.iter().map(|_| None).collect());
    }
    let dir = state.config.tasks_dir.clone();
    // Reading the task folders is blocking IO, and choosing reads every answer.
    tokio::task::spawn_blocking(move || {
        let tasks = crate::task::load_with_originals(&dir);
        codes
            .iter()
            .map(|code| code.as_ref().map(|code| crate::task::choose(&tasks, code)))
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}
