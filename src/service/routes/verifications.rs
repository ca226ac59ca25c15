//! `POST /v1/verifications` (one answer or app, optionally waiting for its
//! result), `GET /v1/verifications/{id}` and its screenshots.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::submit::{
    admit, check_callback_url, choose_tasks, parse_multipart, request_input, submit,
    VerificationRequest,
};
use crate::render::{self, Format};
use crate::service::api_error::{parse_json, ApiError, ApiPath, ApiQuery, Body};
use crate::service::limits::{check_fields, requested_wait, sample_text};
use crate::service::pages::secure_page;
use crate::service::state::AppState;
use crate::service::store::{NewJob, Status};
use crate::service::views::{job_report, verification_link, verification_view};
use crate::task::TaskChoice;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WaitQuery {
    /// Seconds to hold the request for the result.
    wait: Option<u64>,
}

pub(super) async fn create_verification(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (request, upload) = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        parse_multipart(&content_type, body).await?
    } else {
        (parse_json::<VerificationRequest>(&body)?, None)
    };
    let (id, choice) = enqueue_one(&state, request, upload).await?;
    let wait = requested_wait(query.wait, &headers);
    if !wait.is_zero() {
        if let Some(job) = state.jobs.wait_for_job(&id, wait).await? {
            if job.status.is_finished() {
                return Ok((StatusCode::OK, Json(verification_view(&job))).into_response());
            }
        }
    }
    let location = verification_link(&id);
    let body = json!({"id": id, "status": Status::Queued, "task_choice": choice, "links": {"self": location}});
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

/// One answer or app checked, its task chosen, admitted and enqueued (the
/// API's submission and the index page's form): its id and task choice.
pub(super) async fn enqueue_one(
    state: &AppState,
    mut request: VerificationRequest,
    upload: Option<(String, Bytes)>,
) -> Result<(String, Option<TaskChoice>), ApiError> {
    let (output, upload, _declared) = request_input(&mut request, upload, state.config.max_body)?;
    check_fields(
        request.model.as_deref(),
        request.entry.as_deref(),
        request.archive_name.as_deref(),
        &request.metadata,
        "the request",
    )?;
    let sample = sample_text(&request.sample, "the request")?;
    let callback_url = check_callback_url(request.callback_url.as_deref())?;
    let choice = choose_tasks(
        state,
        request.task.as_deref(),
        vec![upload.is_none().then_some(output.clone())],
    )
    .await?
    .remove(0);
    admit(
        state,
        choice
            .as_ref()
            .map_or(crate::task::FALLBACK_TASK, |c| &c.task),
    )
    .await?;
    let job = NewJob {
        task: choice.as_ref().map(|c| c.task.clone()).unwrap_or_default(),
        task_choice: choice.clone(),
        model: request
            .model
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "answer".into()),
        sample,
        output,
        metadata: request.metadata.filter(|m| !m.is_null()),
        callback_url,
        upload,
    };
    let id = submit(state, vec![job], None).await?.remove(0);
    Ok((id, choice))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerificationViewQuery {
    /// The result as a report in this format, as a batch's are.
    format: Option<Format>,
}

pub(super) async fn get_verification(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<VerificationViewQuery>,
) -> Result<Response, ApiError> {
    let job = state.jobs.store.job(&id).await?.ok_or(ApiError::NotFound {
        what: "verification",
        id,
    })?;
    let Some(format) = query.format else {
        return Ok(Json(verification_view(&job)).into_response());
    };
    match job_report(&job) {
        Some(result) => {
            let mut response = (
                [(CONTENT_TYPE, HeaderValue::from_static(format.media_type()))],
                render::one(&result, format),
            )
                .into_response();
            if format == Format::Html {
                secure_page(response.headers_mut());
            }
            Ok(response)
        }
        // Not finished: its status, as 202, like a batch not yet done. One
        // that ended without a result (not judged) has only its view.
        None if matches!(job.status, Status::Queued | Status::Running) => {
            Ok((StatusCode::ACCEPTED, Json(verification_view(&job))).into_response())
        }
        None => Ok(Json(verification_view(&job)).into_response()),
    }
}

pub(super) async fn get_artifact(
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (media_type, data) =
        state
            .jobs
            .store
            .artifact(&id, &name)
            .await?
            .ok_or(ApiError::NotFound {
                what: "artifact",
                id: format!("{id}/{name}"),
            })?;
    let media_type = HeaderValue::from_str(&media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(([(CONTENT_TYPE, media_type)], data).into_response())
}
