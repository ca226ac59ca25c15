//! The token check, before routing: every route but the probes and the
//! API's description needs `Authorization: Bearer <token>` (or the token as
//! the password of `Basic`, for browsers) when the service has a token.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use crate::service::api_error::ApiError;
use crate::service::state::AppState;

/// Paths open without the token: probes and the API's description.
const PUBLIC_PATHS: [&str; 3] = ["/healthz", "/metrics", "/openapi.json"];

/// Compares without an early exit, so timing does not reveal the token.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(super) async fn require_token(
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
