//! The router: the v1 JSON API (`verifications`, `batches`, tasks), the
//! probes (healthz, metrics), the OpenAPI document and the pages with
//! their forms (an answer submitted, a verification re-run), behind
//! the token check and the request-head limits. Handlers turn requests
//! into jobs and jobs into JSON; they never run or unpack a verification.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::service::api_error::ApiError;
use crate::service::auth::require_token;
use crate::service::limits::{limit_request_head, BATCH_BODY_FACTOR};
use crate::service::metrics::Gauges;
use crate::service::openapi::openapi;
use crate::service::pages::{batch_page, index_page, page_headers, verification_page};
use crate::service::state::AppState;
use crate::task::Task;

mod batches;
mod forms;
mod submit;
#[cfg(test)]
mod tests;
mod verifications;

use batches::{compare_batches, create_batch, get_batch};
use forms::{rerun, submit_form};
use verifications::{create_verification, get_artifact, get_verification};

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
        .route("/batches/{id}/compare/{other}", get(compare_batches))
        .route("/tasks", get(list_tasks));
    let pages = Router::new()
        .route("/", get(index_page))
        .route(
            "/verifications",
            post(submit_form).layer(DefaultBodyLimit::max(verification_limit)),
        )
        .route("/verifications/{id}", get(verification_page))
        .route("/verifications/{id}/rerun", post(rerun))
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

/// Always 200: the body says whether the service can verify right now,
/// and whether its store answers (the queue's depth is then unknown).
async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (store, queue) = match state.jobs.store.depth().await {
        Ok(depth) => (
            json!({"reachable": true}),
            json!({"queued": depth.queued, "running": depth.running, "max": state.jobs.config.max_queue}),
        ),
        Err(e) => (
            json!({"reachable": false, "error": e.to_string()}),
            json!({"queued": null, "running": null, "max": state.jobs.config.max_queue}),
        ),
    };
    let engine = state.jobs.engine.health();
    let ok =
        engine.sandbox_ready && store["reachable"] == true && !state.jobs.stopping().is_cancelled();
    Ok(Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "engine": engine,
        "store": store,
        "queue": queue,
        "workers": state.jobs.config.workers,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // The counters are this process's: shown while the store is away too,
    // with `qtjudge_store_up 0` instead of the store's counts.
    let depth = state.jobs.store.depth().await;
    if let Err(e) = &depth {
        tracing::warn!(error = %e, "/metrics without the store's counts");
    }
    let gauges = Gauges::new(
        depth,
        state.jobs.store.is_shared(),
        state.jobs.running(),
        state.jobs.config.workers,
    );
    let mut text = state
        .jobs
        .metrics
        .render(&gauges, &state.jobs.engine.health());
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
