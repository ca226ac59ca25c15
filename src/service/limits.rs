//! The limits of a request: its head (URI and headers, answered 414 and
//! 431 before routing), its wait, the size of a body, an answer and the
//! fields that travel with it, the pass@k a leaderboard may be asked for.

use std::time::Duration;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::service::api_error::ApiError;

/// The longest a request may hold for a result (`?wait=`).
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// A batch body may be this many times the per-answer limit.
pub const BATCH_BODY_FACTOR: usize = 32;

/// The longest request target, in bytes (answered 414).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes and headers of one request (answered 431). The
/// HTTP server closes a head past `http_server::MAX_HEAD_BYTES` itself.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADERS: usize = 64;

/// Refuses oversized request heads with a JSON error, as every other
/// refusal is.
pub(super) async fn limit_request_head(request: Request, next: Next) -> Result<Response, ApiError> {
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

/// The wait a client asked for: `?wait=N`, else `Prefer: wait=N` (RFC 7240).
pub(super) fn requested_wait(query: Option<u64>, headers: &HeaderMap) -> Duration {
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

pub(super) fn check_answer(output: &str, max_body: usize, which: &str) -> Result<(), ApiError> {
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
pub(super) fn check_fields(
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

/// A `sample` (or batch `id`) as text: a string or a whole number, at
/// most [`MAX_LABEL_CHARS`]; absent or blank is none.
pub(super) fn sample_text(sample: &Option<Value>, which: &str) -> Result<Option<String>, ApiError> {
    let text = match sample {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "{which}: `sample` must be a string or a whole number, not {other}"
            )))
        }
    };
    let chars = text.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(ApiError::Unprocessable {
            code: "field_too_long",
            message: format!(
                "{which}: `sample` is {chars} characters, over the limit of {MAX_LABEL_CHARS}"
            ),
        });
    }
    Ok(Some(text))
}

/// `?pass_at=1,5,10` (a batch's JSON and its page): whole numbers from 1
/// to 10000, at most 16 of them, comma-separated (default 1).
pub(super) fn parse_pass_at(text: Option<&str>) -> Result<Vec<usize>, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(vec![1]);
    };
    let ks: Vec<usize> = text
        .split(',')
        .map(|k| k.trim().parse::<usize>().ok().filter(|k| (1..=10_000).contains(k)))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`pass_at` is {text:?}: give the k of each pass@k as whole numbers from 1 to 10000, comma-separated (`1,5,10`)"
            ))
        })?;
    if ks.len() > 16 {
        return Err(ApiError::BadRequest(
            "`pass_at` names more than 16 values of k".into(),
        ));
    }
    Ok(ks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn waits_come_from_the_query_or_prefer_and_are_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested_wait(None, &headers), Duration::ZERO);
        headers.insert("prefer", HeaderValue::from_static("respond-async, wait=12"));
        assert_eq!(requested_wait(None, &headers), Duration::from_secs(12));
        assert_eq!(requested_wait(Some(3), &headers), Duration::from_secs(3));
        assert_eq!(requested_wait(Some(99_999), &headers), MAX_WAIT);
    }
}
