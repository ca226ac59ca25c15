//! The verifier service (`qtjudge serve`): the axum router, its JSON API,
//! the HTML pages, and start-up/shutdown. It turns requests into jobs and
//! jobs into JSON or HTML, and never runs a verification itself (`jobs`
//! does). `ApiError` is the one place that picks status codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bundle::{BundleError, InputKind, Upload};
use crate::report::{self, Counts, Format};
use crate::service::callbacks;
use crate::service::engine_watch::{self, Engine};
use crate::service::jobs::{self, Jobs};
use crate::service::store::{self, BatchRecord, JobRecord, JobsError, NewBatch, NewJob, Status};
use crate::task::{Task, TaskChoice, TaskError};
use crate::verify::Verification;

/// The longest a request may hold for a result (`?wait=`).
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// A batch body may be this many times the per-answer limit.
pub const BATCH_BODY_FACTOR: usize = 32;

/// Every error the API answers with, and the only place that picks a
/// status code. The body is always `{"error": code, "message": …}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("this service needs a bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("no {what} with id `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("no route {method} {path}; see /openapi.json")]
    NoRoute { method: Method, path: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    BodyTimeout(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    UnknownTask(String),
    /// Well-formed but unusable input (an empty answer, an empty batch).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    QueueFull { retry_after: u64, message: String },
    #[error(
        "the Docker engine is unreachable ({0}); new verifications are refused until it answers"
    )]
    EngineUnavailable(String),
    #[error("the service is shutting down; retry against its next start")]
    ShuttingDown,
    /// A fault of the service: logged once, answered with generic text.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound { .. } => "not_found",
            ApiError::NoRoute { .. } => "no_such_route",
            ApiError::TooLarge(_) => "too_large",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::UnknownTask(_) => "unknown_task",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::QueueFull { .. } => "queue_full",
            ApiError::EngineUnavailable(_) => "engine_unavailable",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UnknownTask(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::EngineUnavailable(_) | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error while answering a request");
                "internal error; the service's log has the details".to_string()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(json!({"error": self.code(), "message": message})),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                // Basic too, so that a browser asks for the token (as the password).
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"qtjudge\""),
                );
                headers.append(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"qtjudge\", charset=\"UTF-8\""),
                );
            }
            ApiError::QueueFull { retry_after, .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::EngineUnavailable(_) | ApiError::ShuttingDown => {
                headers.insert(RETRY_AFTER, HeaderValue::from(10u64));
            }
            _ => {}
        }
        response
    }
}

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> ApiError {
        match e {
            TaskError::Unknown { id, .. } => ApiError::UnknownTask(format!(
                "unknown task `{id}`; GET /v1/tasks lists the tasks"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The request body as bytes, with the route's size limit turned into 413
/// (instead of axum's plain-text rejection).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body, ApiError> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(
                    "the request body is over this service's limit (see --max-body-kb)".into(),
                ))
            }
            Err(rejection) if timed_out(&rejection) => Err(ApiError::BodyTimeout(
                "the request body did not arrive in time (see --body-timeout-secs); send it at once".into(),
            )),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// Whether reading a body failed because its deadline passed.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<crate::service::http_server::BodyTimedOut>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Query parameters, with axum's rejection turned into a JSON 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// Path parameters, with axum's rejection turned into a JSON 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiPath<T>, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!("the body is not the JSON this route takes: {e}"))
    })
}

/// What the API needs besides the jobs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Required on every `/v1` route when set.
    pub token: Option<String>,
    /// The largest answer (and single-verification body), in bytes.
    pub max_body: usize,
    /// The most answers one batch may carry.
    pub max_batch: usize,
    /// The most bytes a batch's apps may declare they unpack to.
    pub max_batch_unpacked: u64,
    pub tasks_dir: PathBuf,
}

#[derive(Clone)]
pub struct AppState {
    pub jobs: Arc<Jobs>,
    pub config: Arc<ApiConfig>,
    /// What the HTTP server's connections did (for `/metrics`).
    pub connections: Arc<crate::service::http_server::ConnectionStats>,
}

/// The whole HTTP surface, testable without a socket.
pub fn router(state: AppState) -> Router {
    // JSON escaping can double an answer's size, and metadata rides along.
    let verification_limit = state.config.max_body * 2 + 64 * 1024;
    let batch_limit = state.config.max_body.saturating_mul(BATCH_BODY_FACTOR);
    let v1 = Router::new()
        .route(
            "/verifications",
            post(create_verification).layer(DefaultBodyLimit::max(verification_limit)),
        )
        .route("/verifications/{id}", get(get_verification))
        .route("/verifications/{id}/artifacts/{name}", get(get_artifact))
        .route(
            "/batches",
            post(create_batch).layer(DefaultBodyLimit::max(batch_limit)),
        )
        .route("/batches/{id}", get(get_batch))
        .route("/tasks", get(list_tasks));
    let pages = Router::new()
        .route("/", get(index_page))
        .route("/verifications/{id}", get(verification_page))
        .route("/batches/{id}", get(batch_page))
        .layer(middleware::from_fn(page_headers));
    Router::new()
        .nest("/v1", v1)
        .merge(pages)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        // Before routing: a client without the token learns nothing of
        // the routes and methods, not even which exist.
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn(limit_request_head))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The longest request target, in bytes (answered 414).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes and headers of one request (answered 431). The
/// HTTP server closes a head past `http_server::MAX_HEAD_BYTES` itself.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADERS: usize = 64;

/// Refuses oversized request heads with a JSON error, as every other
/// refusal is.
async fn limit_request_head(request: Request, next: Next) -> Result<Response, ApiError> {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(format!(
            "the request target is {uri} bytes, over the limit of {MAX_URI_BYTES}"
        )));
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request has {} headers of {bytes} bytes, over the limit of {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes",
            headers.len()
        )));
    }
    Ok(next.run(request).await)
}

/// Paths open without the token: probes and the API's description.
const PUBLIC_PATHS: [&str; 3] = ["/healthz", "/metrics", "/openapi.json"];

/// The only script a page holds: an image's two handlers, which let a
/// browser test see whether it loaded.
const IMAGE_LOADED: &str = "this.dataset.loaded='yes'";
const IMAGE_FAILED: &str = "this.dataset.loaded='no'";

/// Pages are HTML the service wrote: no other script may run in them (only
/// the two handlers above, by hash), and no other site may frame them.
async fn page_headers(request: Request, next: Next) -> Response {
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

/// One log line per request (debug; warn for server faults).
async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::warn!(%method, path, status, ms, "request failed");
    } else {
        tracing::debug!(%method, path, status, ms, "request");
    }
    response
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method,
        path: uri.path().to_string(),
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let public = PUBLIC_PATHS.contains(&request.uri().path());
    if let Some(token) = state.config.token.as_ref().filter(|_| !public) {
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(presented_token);
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// The token in `Bearer <token>`, or the password of `Basic` (browsers).
fn presented_token(authorization: &str) -> Option<String> {
    use base64::Engine as _;
    // The scheme is case-insensitive (RFC 9110, 11.1).
    let (scheme, rest) = authorization.trim_start().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = rest;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (_user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some(password)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerificationRequest {
    /// The raw answer; or else an app in `archive_base64`.
    #[serde(default)]
    output: Option<String>,
    /// A `.zip`, `.tar.gz` or `.ipynb`, base64-encoded.
    #[serde(default)]
    archive_base64: Option<String>,
    /// Its file name (says its kind); sniffed from its bytes when absent.
    #[serde(default)]
    archive_name: Option<String>,
    /// The app's file run as `__main__` (default: the one with a guard).
    #[serde(default)]
    entry: Option<String>,
    /// Absent: the task whose original the answer resembles, else `generic-reset`.
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    callback_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    /// Seconds to hold the request for the result.
    wait: Option<u64>,
}

/// The wait a client asked for: `?wait=N`, else `Prefer: wait=N` (RFC 7240).
fn requested_wait(query: Option<u64>, headers: &HeaderMap) -> Duration {
    let from_header = || {
        headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|preference| preference.trim().strip_prefix("wait="))
            .find_map(|n| n.trim().parse::<u64>().ok())
    };
    Duration::from_secs(query.or_else(from_header).unwrap_or(0)).min(MAX_WAIT)
}

/// Checks what any submission needs: the service is taking work, the
/// engine answers, the task exists.
async fn admit(state: &AppState, task: &str) -> Result<(), ApiError> {
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

fn check_answer(output: &str, max_body: usize, which: &str) -> Result<(), ApiError> {
    if output.trim().is_empty() {
        return Err(ApiError::Unprocessable {
            code: "empty_output",
            message: format!("{which}: `output` is empty; send the model's raw answer"),
        });
    }
    if output.len() > max_body {
        return Err(ApiError::TooLarge(format!(
            "{which}: `output` is {} bytes, over the limit of {max_body} (see --max-body-kb)",
            output.len()
        )));
    }
    Ok(())
}

/// The most characters of `model`, `entry` and `archive_name`.
pub const MAX_LABEL_CHARS: usize = 256;
/// The most bytes of one answer's `metadata` (as compact JSON).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The fields that travel with an answer into every view and callback:
/// small, and `metadata` an object.
fn check_fields(
    model: Option<&str>,
    entry: Option<&str>,
    archive_name: Option<&str>,
    metadata: &Option<Value>,
    which: &str,
) -> Result<(), ApiError> {
    for (field, value) in [
        ("model", model),
        ("entry", entry),
        ("archive_name", archive_name),
    ] {
        let chars = value.map_or(0, |v| v.chars().count());
        if chars > MAX_LABEL_CHARS {
            return Err(ApiError::Unprocessable {
                code: "field_too_long",
                message: format!(
                    "{which}: `{field}` is {chars} characters, over the limit of {MAX_LABEL_CHARS}"
                ),
            });
        }
    }
    match metadata {
        None | Some(Value::Null) => Ok(()),
        Some(object @ Value::Object(_)) => {
            let bytes = serde_json::to_vec(object).map_or(usize::MAX, |v| v.len());
            if bytes > MAX_METADATA_BYTES {
                return Err(ApiError::TooLarge(format!(
                    "{which}: `metadata` is {bytes} bytes as JSON, over the limit of {MAX_METADATA_BYTES}; keep bulky data elsewhere and send its key"
                )));
            }
            Ok(())
        }
        Some(_) => Err(ApiError::BadRequest(format!(
            "{which}: `metadata` must be a JSON object"
        ))),
    }
}

fn check_callback_url(url: Option<&str>) -> Result<Option<String>, ApiError> {
    url.map(|url| {
        callbacks::check_url(url).map_err(|message| ApiError::Unprocessable {
            code: "invalid_callback_url",
            message,
        })
    })
    .transpose()
}

async fn submit(
    state: &AppState,
    jobs: Vec<NewJob>,
    batch: Option<NewBatch>,
) -> Result<Vec<String>, ApiError> {
    state.jobs.submit(jobs, batch).await.map_err(|e| match e {
        JobsError::QueueFull { queued, max } => {
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

impl From<BundleError> for ApiError {
    fn from(e: BundleError) -> ApiError {
        ApiError::Unprocessable {
            code: e.code(),
            message: e.to_string(),
        }
    }
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
async fn parse_multipart(
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
            "entry" | "task" | "model" | "callback_url" | "metadata" => {
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
                    "unknown multipart field `{other}`; send `file` and optionally entry, task, model, metadata, callback_url"
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
type Input = (String, Option<Upload>, u64);

fn request_input(
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

async fn create_verification(
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
    let (mut request, upload) = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        parse_multipart(&content_type, body).await?
    } else {
        (parse_json::<VerificationRequest>(&body)?, None)
    };
    let (output, upload, _declared) = request_input(&mut request, upload, state.config.max_body)?;
    check_fields(
        request.model.as_deref(),
        request.entry.as_deref(),
        request.archive_name.as_deref(),
        &request.metadata,
        "the request",
    )?;
    let callback_url = check_callback_url(request.callback_url.as_deref())?;
    let choice = choose_tasks(
        &state,
        request.task.as_deref(),
        vec![upload.is_none().then_some(output.clone())],
    )
    .await?
    .remove(0);
    admit(
        &state,
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
        output,
        metadata: request.metadata.filter(|m| !m.is_null()),
        callback_url,
        upload,
    };
    let id = submit(&state, vec![job], None).await?.remove(0);
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

/// The task of each answer whose code is in `codes`: the one `given`, else
/// the task whose original the answer resembles, else `generic-reset` (as
/// `qtjudge verify` and `grade` choose without `--task`). The task folders
/// are read once for all the answers. An uploaded app (no code: it is not
/// unpacked here) gets none: the worker chooses when it unpacks it.
async fn choose_tasks(
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

fn verification_link(id: &str) -> String {
    format!("/v1/verifications/{id}")
}

/// A result as `qtjudge grade --format json` gives it (no script).
fn public_result(v: &Verification) -> Value {
    let mut v = v.clone();
    v.script = None;
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A job as the API shows it.
fn verification_view(job: &JobRecord) -> Value {
    let link = verification_link(&job.id);
    let artifacts: serde_json::Map<String, Value> = job
        .result
        .iter()
        .flat_map(|v| &v.artifacts)
        .map(|a| {
            (
                a.name.clone(),
                Value::String(format!("{link}/artifacts/{}", a.name)),
            )
        })
        .collect();
    json!({
        "id": job.id,
        "status": job.status,
        "task": job.task,
        "task_choice": job.task_choice,
        "model": job.model,
        "metadata": job.metadata,
        "batch_id": job.batch_id,
        "created_at": rfc3339(job.created_at),
        "started_at": job.started_at.map(rfc3339),
        "finished_at": job.finished_at.map(rfc3339),
        "error": job.error,
        "attempts": job.attempts,
        "result": job.result.as_ref().map(public_result),
        "callback": job.callback,
        "links": {"self": link, "artifacts": artifacts, "page": format!("/verifications/{}", job.id)},
    })
}

async fn get_verification(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs.store.job(&id).await?.ok_or(ApiError::NotFound {
        what: "verification",
        id,
    })?;
    Ok(Json(verification_view(&job)))
}

async fn get_artifact(
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

/// One answer of a batch: a raw answer in `output`, or an app in
/// `archive_base64` (+ `archive_name`, `entry`), as `POST /v1/verifications` takes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    #[serde(default)]
    model: Option<String>,
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
struct BatchQuery {
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

async fn create_batch(
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
    let mut seen = std::collections::HashMap::new();
    let mut jobs = Vec::with_capacity(items.len());
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
        let mut model = item
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
        // Like `qtjudge grade`: a model named twice becomes `name#2`.
        let n = seen.entry(model.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            model = format!("{model}#{n}");
        }
        jobs.push(NewJob {
            task: String::new(),
            task_choice: None,
            model,
            output,
            metadata,
            callback_url: None,
            upload,
        });
    }
    let codes = jobs
        .iter()
        .map(|j| j.upload.is_none().then(|| j.output.clone()))
        .collect();
    let choices = choose_tasks(&state, query.task.as_deref(), codes).await?;
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

/// How a finished batch may be rendered (`report::render`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BatchFormat {
    Table,
    Markdown,
    Junit,
    Json,
    Jsonl,
}

impl BatchFormat {
    fn report(self) -> (Format, &'static str) {
        match self {
            BatchFormat::Table => (Format::Table, "text/plain; charset=utf-8"),
            BatchFormat::Markdown => (Format::Markdown, "text/markdown; charset=utf-8"),
            BatchFormat::Junit => (Format::Junit, "application/xml"),
            BatchFormat::Json => (Format::Json, "application/json"),
            BatchFormat::Jsonl => (Format::Jsonl, "application/jsonl"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchViewQuery {
    format: Option<BatchFormat>,
    wait: Option<u64>,
}

fn batch_status(batch: &BatchRecord) -> Status {
    if batch.jobs.iter().all(|j| j.status.is_finished()) {
        Status::Done
    } else if batch.jobs.iter().any(|j| j.status != Status::Queued) {
        Status::Running
    } else {
        Status::Queued
    }
}

/// The finished results of a batch, sorted by model as `grade` sorts them.
fn batch_results(batch: &BatchRecord) -> Vec<Verification> {
    let mut results: Vec<Verification> =
        batch.jobs.iter().filter_map(|j| j.result.clone()).collect();
    results.sort_by(|a, b| a.model.cmp(&b.model));
    results
}

/// The tasks a batch's answers are graded against, as chosen so far (an
/// uploaded app's when it runs; before any, what the batch was given).
fn batch_tasks(batch: &BatchRecord) -> String {
    let mut tasks: Vec<&str> = batch
        .jobs
        .iter()
        .map(|j| j.task.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    if tasks.is_empty() {
        batch.task.clone()
    } else {
        tasks.join(", ")
    }
}

fn batch_view(batch: &BatchRecord) -> Value {
    let count = |s: Status| batch.jobs.iter().filter(|j| j.status == s).count();
    let status = batch_status(batch);
    let results = batch_results(batch);
    let verifications: Vec<Value> = batch
        .jobs
        .iter()
        .map(|j| {
            let r = j.result.as_ref();
            json!({
                "id": j.id,
                "model": j.model,
                "task": j.task,
                "task_choice": j.task_choice,
                "status": j.status,
                "tier": r.and_then(|r| r.tier),
                "label": r.map(|r| r.label),
                "failure": r.and_then(|r| r.failure.clone()),
                "reason": r.map(|r| r.reason.clone()).or_else(|| j.error.clone()),
                "links": {"self": verification_link(&j.id)},
            })
        })
        .collect();
    json!({
        "id": batch.id,
        "task": batch_tasks(batch),
        "status": status,
        "created_at": rfc3339(batch.created_at),
        "total": batch.jobs.len(),
        "progress": {
            "queued": count(Status::Queued),
            "running": count(Status::Running),
            "done": count(Status::Done),
            "error": count(Status::Error),
        },
        "counts": Counts::of(&results),
        "verifications": verifications,
        "table": (status == Status::Done).then(|| report::render(&results, Format::Table)),
        "callback": batch.callback,
        "links": {"self": format!("/v1/batches/{}", batch.id), "page": format!("/batches/{}", batch.id)},
    })
}

async fn get_batch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BatchViewQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
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
            let (format, media_type) = format.report();
            let rendered = report::render(&batch_results(&batch), format);
            Ok((
                [(CONTENT_TYPE, HeaderValue::from_static(media_type))],
                rendered,
            )
                .into_response())
        }
        // Not finished: the progress, as 202, like a verification not yet done.
        Some(_) => Ok((StatusCode::ACCEPTED, Json(batch_view(&batch))).into_response()),
        None => Ok(Json(batch_view(&batch)).into_response()),
    }
}

async fn list_tasks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let dir = state.config.tasks_dir.clone();
    let tasks = tokio::task::spawn_blocking(move || {
        Task::list(&dir)
            .into_iter()
            .filter_map(|id| Task::load(&dir, &id).ok())
            .map(|t| json!({"id": t.id, "title": t.title, "prompt": t.prompt, "limits": t.limits}))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("listing tasks: {e}")))?;
    Ok(Json(Value::Array(tasks)))
}

/// Always 200: the body says whether the service can verify right now.
async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let depth = state.jobs.store.depth().await?;
    let engine = state.jobs.engine.health();
    let ok = engine.sandbox_ready && !state.jobs.stopping().is_cancelled();
    Ok(Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "engine": engine,
        "queue": {"queued": depth.queued, "running": depth.running, "max": state.jobs.config.max_queue},
        "workers": state.jobs.config.workers,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let depth = state.jobs.store.depth().await?;
    let mut text = state.jobs.metrics.render(
        depth,
        state.jobs.config.workers,
        &state.jobs.engine.health(),
    );
    text.push_str(&state.connections.render());
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2025-01-31T12:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The OpenAPI 3 description of `router`'s routes (a test checks that
/// every path here is routed).
pub fn openapi_document() -> Value {
    let mut document = hand_written_openapi();
    // The result, with every type inside it, is generated from the Rust
    // types it is serialised from, so the document cannot drift from them.
    let mut generator = schemars::gen::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<Verification>();
    for (name, schema) in generator.take_definitions() {
        document["components"]["schemas"][name] = serde_json::to_value(schema).unwrap_or_default();
    }
    document
}

/// The routes, parameters, errors and job views; `Result` is added from the types.
fn hand_written_openapi() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let error_response = |description: &str| json!({"description": description, "content": {"application/json": {"schema": error}}});
    let id_param =
        json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let wait_param = json!({"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}, "description": format!("seconds to hold the request for the result, capped at {} (also `Prefer: wait=N`)", MAX_WAIT.as_secs())});
    let common_errors = json!({
        "400": error_response("malformed JSON or wrong types"),
        "401": error_response("missing or wrong bearer token (when the service has one)"),
        "408": error_response("the body did not arrive within --body-timeout-secs"),
        "414": error_response("the request target is over 8 KiB"),
        "431": error_response("more than 64 headers or 32 KiB of them"),
    });
    let with = |mut responses: Value, extra: Value| {
        for (k, v) in extra.as_object().into_iter().flatten() {
            responses[k] = v.clone();
        }
        for (k, v) in common_errors.as_object().into_iter().flatten() {
            responses[k] = v.clone();
        }
        responses
    };
    // What the service POSTs to a `callback_url` (OpenAPI's callbacks).
    let callback = |event: &str, schema: &str| {
        let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "schema": {"type": "string"}, "description": description});
        json!({"post": {
            "summary": format!("`{event}`: once finished, the same JSON as the GET of it"),
            "parameters": [
                header("X-Qtjudge-Event", event),
                header("X-Qtjudge-Delivery", "the delivery's id, the same on every attempt (dedupe on it)"),
                header("X-Qtjudge-Timestamp", "Unix seconds of this attempt"),
                {"name": "X-Qtjudge-Signature", "in": "header", "required": false, "schema": {"type": "string"},
                 "description": "with --callback-secret: `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>`"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
            "responses": {"2XX": {"description": "delivered. 408, 429, 5xx or no answer within 10 s: retried with backoff (1 s, 2 s, 4 s … 5 min, --callback-attempts); any other status: given up"}}}})
    };
    json!({
        "openapi": "3.0.3",
        "info": {"title": "qtjudge verifier service", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Verifies LLM-written refactorings of a PyQt5 app by running them in a locked-down sandbox, and grades them into three tiers."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string", "enum": ["bad_request", "unauthorized", "not_found", "no_such_route", "too_large", "unknown_task", "empty_output", "empty_batch", "invalid_callback_url", "queue_full", "engine_unavailable", "shutting_down", "internal",
                        "output_and_archive", "entry_without_archive", "unsafe_archive_path", "archive_special_file", "archive_too_many_files", "archive_too_large", "bad_archive", "bad_notebook", "no_python_file", "entry_not_found", "no_entry_point", "ambiguous_entry_point", "unreadable_input"]},
                    "message": {"type": "string"}}},
                "VerificationRequest": {"type": "object", "additionalProperties": false,
                    "description": "exactly one of `output` (a raw answer) and `archive_base64` (an app)",
                    "properties": {
                    "output": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "the model's raw answer (not blank)"},
                    "archive_base64": {"type": "string", "description": "an app: a .zip, .tar.gz or .ipynb, base64-encoded (at most --max-body-kb decoded; 256 files and 8 MiB unpacked; no `..`, absolute names, links or devices)"},
                    "archive_name": {"type": "string", "description": "the archive's file name (`app.zip`, `app.tar.gz`, `chat.ipynb`); its kind is sniffed when absent"},
                    "entry": {"type": "string", "description": "the app's file run as `__main__`; default: the one with an `if __name__ == \"__main__\":` guard"},
                    "task": {"type": "string", "description": "default: the task whose original the answer resembles, else `generic-reset`"},
                    "model": {"type": "string", "description": "a label for reports"},
                    "metadata": {"type": "object", "description": "echoed back"},
                    "callback_url": {"type": "string", "format": "uri", "description": "absolute http(s) URL; the finished verification is POSTed there"}}},
                "Callback": {"type": "object", "description": "the delivery to the `callback_url` (pending until the receiver took it)", "properties": {
                    "url": {"type": "string"}, "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                    "attempts": {"type": "integer"}, "last_error": {"type": "string", "nullable": true}}},
                "BatchItem": {"type": "object", "additionalProperties": false,
                    "description": "exactly one of `output` (a raw answer) and `archive_base64` (an app), checked as in a VerificationRequest",
                    "properties": {
                    "model": {"type": "string"}, "output": {"type": "string", "minLength": 1, "pattern": "\\S"},
                    "archive_base64": {"type": "string", "description": "an app: a .zip, .tar.gz or .ipynb, base64-encoded (limits as in a VerificationRequest)"},
                    "archive_name": {"type": "string", "description": "the archive's file name; its kind is sniffed when absent"},
                    "entry": {"type": "string", "description": "the app's file run as `__main__`; default: the one with a `__main__` guard"},
                    "metadata": {"type": "object"}}},
                "Accepted": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"type": "string"}, "total": {"type": "integer"},
                    "links": {"type": "object", "properties": {"self": {"type": "string"}}}}},
                "Status": {"type": "string", "enum": ["queued", "running", "done", "error"]},
                "Verification": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "task": {"type": "string"}, "model": {"type": "string"},
                    "task_choice": {"allOf": [{"$ref": "#/components/schemas/TaskChoice"}], "nullable": true, "description": "why `task` was chosen: given, or the answer resembled its original, or the default `generic-reset`"},
                    "metadata": {"type": "object", "nullable": true}, "batch_id": {"type": "string", "nullable": true},
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": {"type": "string", "format": "date-time", "nullable": true},
                    "finished_at": {"type": "string", "format": "date-time", "nullable": true},
                    "error": {"type": "string", "nullable": true},
                    "attempts": {"type": "integer", "description": "times a worker started it (a graceful stop that interrupts it does not count); after 3 runs the engine failed or a crash cut short, it ends as error"},
                    "result": {"allOf": [{"$ref": "#/components/schemas/Result"}], "nullable": true},
                    "callback": {"allOf": [{"$ref": "#/components/schemas/Callback"}], "nullable": true},
                    "links": {"type": "object"}}},
                "Batch": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                    "task": {"type": "string", "description": "the task given, else the tasks chosen for its answers (comma-separated; each verification names its own)"},
                    "total": {"type": "integer"}, "progress": {"type": "object"},
                    "counts": {"type": "object", "properties": {"tier1": {"type": "integer"}, "tier2": {"type": "integer"}, "tier3": {"type": "integer"}, "error": {"type": "integer"}}},
                    "verifications": {"type": "array", "items": {"type": "object", "description": "id, model, task, task_choice, status, tier, label, failure, reason, links"}},
                    "table": {"type": "string", "nullable": true},
                    "callback": {"allOf": [{"$ref": "#/components/schemas/Callback"}], "nullable": true},
                    "links": {"type": "object"}}}
            }
        },
        "paths": {
            "/v1/verifications": {"post": {
                "summary": "verify one answer", "security": [{"bearer": []}],
                "parameters": [wait_param],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/VerificationRequest"}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary", "description": "a raw answer (.py, .md, .txt) or an app (.zip, .tar.gz, .ipynb), told apart by the file name"},
                        "entry": {"type": "string"}, "task": {"type": "string"}, "model": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object"}, "callback_url": {"type": "string"}}}}}},
                "responses": with(json!({
                    "200": {"description": "finished within the wait", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verification"}}}},
                    "202": {"description": "accepted (on disk); poll the Location", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                }), json!({
                    "413": error_response("the body, the answer or `metadata` (64 KiB) is over the limit"),
                    "422": error_response("unknown task, empty answer, `model`/`entry`/`archive_name` over 256 characters (`field_too_long`), an app refused (unsafe or unreadable archive, no or ambiguous entry point: see `error`) or a `callback_url` that is not an absolute http(s) URL"),
                    "429": error_response("the queue is full; see Retry-After"),
                    "503": error_response("the Docker engine is unreachable, or the service is stopping"),
                })),
                "callbacks": {"finished": {"{$request.body#/callback_url}": callback(callbacks::VERIFICATION_FINISHED, "Verification")}}}},
            "/v1/verifications/{id}": {"get": {
                "summary": "a verification's status and result", "security": [{"bearer": []}],
                "parameters": [id_param],
                "responses": with(json!({"200": {"description": "the verification", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verification"}}}}}),
                    json!({"404": error_response("unknown id")}))}},
            "/v1/verifications/{id}/artifacts/{name}": {"get": {
                "summary": "a screenshot of the run, read from outside the app (before_reset.png, after_reset.png, final.png)", "security": [{"bearer": []}],
                "parameters": [id_param, {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with(json!({"200": {"description": "the file", "content": {"image/png": {}}}}),
                    json!({"404": error_response("unknown id or artifact")}))}},
            "/v1/batches": {"post": {
                "summary": "verify many answers", "security": [{"bearer": []}],
                "parameters": [{"name": "task", "in": "query", "required": false, "schema": {"type": "string"},
                     "description": "the task of every answer; default: each answer's own, the task whose original it resembles, else `generic-reset` (each verification's `task_choice` says which and why)"},
                    {"name": "callback_url", "in": "query", "required": false, "schema": {"type": "string", "format": "uri"},
                     "description": "absolute http(s) URL; the batch is POSTed there once all its answers are finished"}],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/BatchItem"}}},
                    "application/jsonl": {"schema": {"$ref": "#/components/schemas/BatchItem"}}}},
                "responses": with(json!({"202": {"description": "accepted (on disk)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}}),
                    json!({
                        "413": error_response("the body, an answer, an answer's `metadata`, the number of answers or what the apps declare they unpack to (--max-batch-unpacked-mb) is over the limit"),
                        "422": error_response("unknown task, empty batch, an empty answer, an app refused (the same codes as POST /v1/verifications; the message names the answer) or a `callback_url` that is not an absolute http(s) URL"),
                        "429": error_response("the queue has no room for the batch; see Retry-After"),
                        "503": error_response("the Docker engine is unreachable, or the service is stopping"),
                    })),
                "callbacks": {"finished": {"{$request.query.callback_url}": callback(callbacks::BATCH_FINISHED, "Batch")}}}},
            "/v1/batches/{id}": {"get": {
                "summary": "a batch's progress and, when done, its table", "security": [{"bearer": []}],
                "parameters": [id_param, wait_param,
                    {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["table", "markdown", "junit", "json", "jsonl"]}}],
                "responses": with(json!({
                    "200": {"description": "the batch (JSON), or its report in `format` once done (`json`: the array of results)", "content": {
                        "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Batch"}, {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}]}},
                        "application/jsonl": {}, "text/plain": {}, "text/markdown": {}, "application/xml": {}}},
                    "202": {"description": "`format` asked for but the batch is not done: its progress", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
                }), json!({"404": error_response("unknown id")}))}},
            "/v1/tasks": {"get": {
                "summary": "the tasks answers can be verified against", "security": [{"bearer": []}],
                "responses": with(json!({"200": {"description": "tasks", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}}), json!({}))}},
            "/": {"get": {"summary": "HTML: recent verifications and batches (Basic auth: any user, the token as password)",
                "responses": {"200": {"description": "page", "content": {"text/html": {}}}}}},
            "/verifications/{id}": {"get": {"summary": "HTML: one verification: steps, changes, missing pieces, screenshots, script",
                "parameters": [id_param],
                "responses": {"200": {"description": "page", "content": {"text/html": {}}}, "404": error_response("unknown id")}}},
            "/batches/{id}": {"get": {"summary": "HTML: a batch as the experiment's table, with counts and a chart per tier",
                "parameters": [id_param],
                "responses": {"200": {"description": "page", "content": {"text/html": {}}}, "404": error_response("unknown id")}}},
            "/healthz": {"get": {"summary": "engine reachable, image ready, queue depth (always 200)",
                "responses": {"200": {"description": "health", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "this document",
                "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {}}}}}}
        }
    })
}

// ---- The pages a person opens (server-rendered HTML, no script build) ----

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

async fn index_page(State(state): State<AppState>) -> Result<Response, ApiError> {
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

async fn verification_page(
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

async fn batch_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let batch = state
        .jobs
        .store
        .batch_with(&id, store::BatchDetail::Summary)
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

/// `qtjudge serve`'s validated settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub workers: usize,
    pub token: Option<String>,
    pub max_queue: usize,
    pub max_body: usize,
    pub max_batch: usize,
    /// The most bytes a batch's apps may declare they unpack to.
    pub max_batch_unpacked: u64,
    pub retention: Option<Duration>,
    pub grace: Duration,
    pub tasks_dir: PathBuf,
    /// Signs callbacks (`X-Qtjudge-Signature`) when set.
    pub callback_secret: Option<String>,
    /// Attempts per callback delivery.
    pub callback_attempts: u32,
    /// The engine's OCI runtime for sandbox containers (e.g. `runsc`).
    pub runtime: Option<String>,
    /// Open client connections at most (kept below the file limit).
    pub max_connections: usize,
    /// Time a client has to send a request head (also the keep-alive
    /// idle timeout).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its head came.
    pub body_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without a token: set --token or QTJUDGE_TOKEN, or listen on 127.0.0.1")]
    NoToken(SocketAddr),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("cannot listen on {addr}: {source} (is the port taken? pick another with --listen)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Jobs(#[from] JobsError),
    #[error(transparent)]
    DataDirLocked(#[from] crate::service::data_dir_lock::LockError),
    #[error("the HTTP server stopped: {0}")]
    Server(std::io::Error),
    #[error("cannot set up the HTTP client for callbacks: {0}")]
    CallbackClient(reqwest::Error),
}

impl ServeConfig {
    /// Refuses settings that would be unsafe or useless.
    pub fn validate(self) -> Result<ServeConfig, ServeError> {
        if !self.listen.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ServeError::NoToken(self.listen));
        }
        for (name, value) in [
            ("--workers", self.workers),
            ("--max-queue", self.max_queue),
            ("--max-body-kb", self.max_body),
            ("--max-batch", self.max_batch),
            ("--callback-attempts", self.callback_attempts as usize),
            ("--max-connections", self.max_connections),
            (
                "--header-timeout-secs",
                self.header_timeout.as_secs() as usize,
            ),
            ("--body-timeout-secs", self.body_timeout.as_secs() as usize),
        ] {
            if value == 0 {
                return Err(ServeError::Zero(name));
            }
        }
        Ok(self)
    }
}

/// Runs the service until SIGTERM or Ctrl-C: recovers interrupted jobs,
/// connects to Docker in the background, serves HTTP, then shuts down
/// gracefully (running verifications get `grace` to finish; the rest stay
/// queued on disk).
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let config = config.validate()?;
    // Before the store: recovery would requeue another service's jobs.
    let _lock = crate::service::data_dir_lock::DataDirLock::acquire(&config.data_dir)?;
    let store = store::Store::open(&config.data_dir)?;
    let recovered = store.recover().await?;
    if recovered.requeued + recovered.given_up > 0 {
        tracing::warn!(
            requeued = recovered.requeued,
            given_up = recovered.given_up,
            "jobs interrupted by an earlier stop were found"
        );
    }
    let engine = Arc::new(Engine::pending(Some(engine_watch::docker_probe())));
    let watcher_stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(engine_watch::watch_docker(
        engine.clone(),
        watcher_stop.clone(),
        config.workers,
        config.runtime.clone(),
    ));
    let jobs = Jobs::new(
        store,
        jobs::JobsConfig {
            workers: config.workers,
            max_queue: config.max_queue,
            tasks_dir: config.tasks_dir.clone(),
            cache_dir: Some(config.data_dir.join("cache")),
            retention: config.retention,
        },
        engine,
    );
    let pool = jobs.start();
    let callbacks = callbacks::Callbacks::start(
        jobs.clone(),
        callbacks::CallbackConfig {
            secret: config.callback_secret.clone(),
            max_attempts: config.callback_attempts,
        },
        callbacks::Views {
            verification: verification_view,
            batch: batch_view,
        },
    )
    .map_err(ServeError::CallbackClient)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(ServeError::Server)?;
    tracing::info!(%address, data = %config.data_dir.display(), workers = config.workers, token = config.token.is_some(), "qtjudge serve is listening");
    // One line on stdout, so that scripts (and tests with port 0) learn the address.
    println!("listening on http://{address}");
    let connections = Arc::new(crate::service::http_server::ConnectionStats::default());
    let state = AppState {
        jobs: jobs.clone(),
        config: Arc::new(ApiConfig {
            token: config.token.clone(),
            max_body: config.max_body,
            max_batch: config.max_batch,
            max_batch_unpacked: config.max_batch_unpacked,
            tasks_dir: config.tasks_dir.clone(),
        }),
        connections: connections.clone(),
    };
    let stopping = jobs.stopping().clone();
    let limits = crate::service::http_server::ConnectionLimits {
        max_connections: crate::service::http_server::connection_cap(
            config.max_connections,
            crate::service::http_server::raise_file_limit(),
        ),
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        drain: config.grace,
    };
    if limits.max_connections < config.max_connections {
        tracing::warn!(
            asked = config.max_connections,
            cap = limits.max_connections,
            "--max-connections lowered to stay below the open-file limit (raise it with ulimit -n)"
        );
    }
    crate::service::http_server::serve(listener, router(state), limits, connections, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new work; running verifications may finish");
        // Ends long polls and stops the workers claiming more.
        stopping.cancel();
    })
    .await;
    pool.shutdown(config.grace).await;
    // After the pool: callbacks of verifications finishing in the grace
    // period still go out while it lasts.
    callbacks.shutdown().await;
    watcher_stop.cancel();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The experiment's task (fixtures/tasks).
    const DEFAULT_TASK: &str = "reset-conversation";

    /// The result schema comes from the Rust types, and every `$ref` in
    /// the document points at a schema it defines.
    #[test]
    fn the_openapi_result_schema_is_generated_and_every_ref_resolves() {
        let document = openapi_document();
        let schemas = &document["components"]["schemas"];
        let result = &schemas["Result"]["properties"];
        for field in [
            "tier",
            "label",
            "failure",
            "history_cleared",
            "steps",
            "artifacts",
            "behaviour",
            "static",
        ] {
            assert!(
                result.get(field).is_some(),
                "Result lacks {field}: {result}"
            );
        }
        assert!(schemas["Behaviour"]["properties"]
            .get("screen_check")
            .is_some());
        fn refs(value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        found.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 10);
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a local ref");
            assert!(schemas.get(name).is_some(), "dangling $ref {r}");
        }
    }
    use crate::sandbox::{BoxFuture, Sandbox, SandboxError, SandboxOutcome, SandboxRequest};
    use crate::service::jobs::JobsConfig;
    use crate::service::store::Store;
    use axum::body::Body as HttpBody;
    use tower::ServiceExt;

    struct UnusedSandbox;

    impl Sandbox for UnusedSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async {
                Err(SandboxError::Local(
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
            Store::open(dir.path()).unwrap(),
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
        let app = crate::bundle::Bundle::script(
            "main.py",
            "if __name__ == \"__main__\":\n    print(1)\n",
        );
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
        let jsonl =
            "{\"model\": \"a\", \"output\": \"x\"}\n\n{\"model\": \"a\", \"output\": \"y\"}\n";
        let (status, headers, body) = post(&f.state, "/v1/batches", jsonl).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let location = headers[LOCATION].to_str().unwrap().to_string();
        let (_, _, batch) = call(&f.state, "GET", &location, "", &[]).await;
        assert_eq!(batch["total"], 2);
        assert_eq!(batch["status"], "queued");
        assert_eq!(batch["progress"]["queued"], 2);
        let models: Vec<&str> = batch["verifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["model"].as_str().unwrap())
            .collect();
        assert_eq!(models, ["a", "a#2"]);
        assert!(batch["table"].is_null(), "no table before the end");
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
            "qtjudge_verification_duration_seconds_count 0",
            "qtjudge_engine_up 1",
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
                let uri = path.replace("{id}", "unknown").replace("{name}", "x.png");
                let (status, _, body) =
                    call(&f.state, &method.to_uppercase(), &uri, "{}", &[]).await;
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

    #[test]
    fn waits_come_from_the_query_or_prefer_and_are_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested_wait(None, &headers), Duration::ZERO);
        headers.insert("prefer", HeaderValue::from_static("respond-async, wait=12"));
        assert_eq!(requested_wait(None, &headers), Duration::from_secs(12));
        assert_eq!(requested_wait(Some(3), &headers), Duration::from_secs(3));
        assert_eq!(requested_wait(Some(99_999), &headers), MAX_WAIT);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_public_address_needs_a_token() {
        let config = ServeConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            data_dir: PathBuf::from("d"),
            workers: 1,
            token: None,
            max_queue: 1,
            max_body: 1,
            max_batch: 1,
            max_batch_unpacked: 1,
            retention: None,
            grace: Duration::from_secs(1),
            tasks_dir: PathBuf::from("t"),
            callback_secret: None,
            callback_attempts: 8,
            runtime: None,
            max_connections: 16,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
        };
        assert!(matches!(
            config.clone().validate(),
            Err(ServeError::NoToken(_))
        ));
        assert!(ServeConfig {
            token: Some("t".into()),
            ..config.clone()
        }
        .validate()
        .is_ok());
        assert!(ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        }
        .validate()
        .is_ok());
    }
}
