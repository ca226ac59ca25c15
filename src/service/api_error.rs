//! `ApiError`: every refusal and fault the API answers with, and the only
//! place that picks a status code; and the extractors whose rejections
//! become one (a JSON error, never axum's plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::bundle::BundleError;
use crate::service::store::StoreError;
use crate::task::TaskError;

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
        "the sandbox engine is unreachable ({0}); new verifications are refused until it answers"
    )]
    EngineUnavailable(String),
    #[error("{0}; retry once it is back (GET /healthz says when)")]
    StoreUnavailable(String),
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
            ApiError::StoreUnavailable(_) => "store_unavailable",
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
            ApiError::EngineUnavailable(_)
            | ApiError::StoreUnavailable(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
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
            ApiError::EngineUnavailable(_)
            | ApiError::StoreUnavailable(_)
            | ApiError::ShuttingDown => {
                headers.insert(RETRY_AFTER, HeaderValue::from(10u64));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            // Not a fault of this service: the client retries.
            StoreError::Unavailable { .. } => ApiError::StoreUnavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
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

impl From<BundleError> for ApiError {
    fn from(e: BundleError) -> ApiError {
        ApiError::Unprocessable {
            code: e.code().as_str(),
            message: e.to_string(),
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

pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!("the body is not the JSON this route takes: {e}"))
    })
}
