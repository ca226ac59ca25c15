//! The pages' forms, which submit work as the API does (behind the same
//! token: a browser carries it as Basic's password, as for every page):
//! the index page's answer or app (`POST /verifications`) and a
//! verification's re-run (`POST /verifications/{id}/rerun`). Each answers
//! with a 303 to the new verification's page, or an HTML page saying why
//! nothing was submitted, with the API's status code.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use super::submit::{admit, submit, VerificationRequest};
use super::verifications::enqueue_one;
use crate::render::html::{self, RERUN_OF};
use crate::service::api_error::{ApiError, ApiPath, Body};
use crate::service::pages::page;
use crate::service::state::AppState;
use crate::service::store::NewJob;
use crate::task::TaskChoice;

/// `POST /verifications`: the index page's form (multipart: `task`,
/// `model`, `output` pasted, or `file`, and an app's `entry`).
pub(super) async fn submit_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    let submitted = async {
        same_site(&headers)?;
        let Body(body) = body?;
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (request, upload) = read_form(content_type, body).await?;
        let (id, _) = enqueue_one(&state, request, upload).await?;
        Ok::<_, ApiError>(id)
    };
    to_new_page(submitted.await)
}

/// `POST /verifications/{id}/rerun`: the same answer or app, against the
/// same task, as a new verification whose metadata names this one.
pub(super) async fn rerun(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let submitted = async {
        same_site(&headers)?;
        let not_found = || ApiError::NotFound {
            what: "verification",
            id: id.clone(),
        };
        let job = state.jobs.store.job(&id).await?.ok_or_else(not_found)?;
        let input = state
            .jobs
            .store
            .job_input(&id)
            .await?
            .ok_or_else(not_found)?;
        if input.output.is_empty() && input.upload.is_none() {
            // An app stored unpacked by a version before uploads were kept.
            return Err(ApiError::Unprocessable {
                code: "not_rerunnable",
                message: "this verification's answer is not kept in a form that can run again; submit it anew".into(),
            });
        }
        // Its task as chosen then (an app's is chosen by the worker, so
        // one never run yet has none and is chosen again).
        let choice = job
            .task_choice
            .clone()
            .or_else(|| (!job.task.is_empty()).then(|| TaskChoice::given(&job.task)));
        admit(
            &state,
            choice
                .as_ref()
                .map_or(crate::task::FALLBACK_TASK, |c| &c.task),
        )
        .await?;
        let new = NewJob {
            task: choice.as_ref().map(|c| c.task.clone()).unwrap_or_default(),
            task_choice: choice,
            model: job.model,
            sample: job.sample,
            output: input.output,
            upload: input.upload,
            metadata: rerun_metadata(job.metadata, &id),
            // Its submitter asked for news of the first run only.
            callback_url: None,
        };
        Ok::<_, ApiError>(submit(&state, vec![new], None).await?.remove(0))
    };
    to_new_page(submitted.await)
}

/// The original's metadata with `rerun_of` added; metadata that is not an
/// object is kept as it is (the page then cannot say what it re-runs).
fn rerun_metadata(metadata: Option<Value>, of: &str) -> Option<Value> {
    match metadata {
        None | Some(Value::Null) => Some(json!({RERUN_OF: of})),
        Some(Value::Object(mut fields)) => {
            fields.insert(RERUN_OF.into(), Value::String(of.into()));
            Some(Value::Object(fields))
        }
        other => other,
    }
}

/// A 303 to the new verification's page, or the page of the refusal.
fn to_new_page(submitted: Result<String, ApiError>) -> Response {
    match submitted {
        Ok(id) => Redirect::to(&format!("/verifications/{id}")).into_response(),
        Err(error) => refusal_page(error),
    }
}

/// The refusal as a page, with the API's status code and headers
/// (`Retry-After` …); a fault of the service is logged once, by
/// `ApiError`, and shown with generic text.
fn refusal_page(error: ApiError) -> Response {
    let message = match &error {
        ApiError::Internal(_) => "internal error; the service's log has the details".to_string(),
        other => other.to_string(),
    };
    let (mut parts, _) = error.into_response().into_parts();
    let status = parts.status;
    let rendered = html::error_page(
        &format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
        &message,
    );
    match page(rendered) {
        Ok(page) => {
            parts.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            Response::from_parts(parts, page.into_body())
        }
        Err(fault) => fault.into_response(),
    }
}

/// A form posted from another site is refused (cross-site request
/// forgery: a browser sends its Basic credentials with any site's form).
/// Browsers say where a form came from (`Sec-Fetch-Site`, `Origin`);
/// clients that say neither are not browsers, and bring the token.
fn same_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let refused = || {
        Err(ApiError::Unprocessable {
            code: "cross_site_form",
            message:
                "this form was posted from another site; submit it from this service's own page"
                    .into(),
        })
    };
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return refused();
        }
    }
    if let Some(origin) = header(ORIGIN.as_str()) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        // A proxy in front may give the service another Host.
        let ours = [header(HOST.as_str()), header("x-forwarded-host")];
        let same =
            authority.is_some_and(|a| ours.iter().flatten().any(|h| h.eq_ignore_ascii_case(a)));
        if !same {
            return refused();
        }
    }
    Ok(())
}

/// The index page's form as a submission: a pasted answer, or a file (an
/// answer, or an app by its name), not both. A browser sends the file
/// field empty, without a name, when no file was chosen.
async fn read_form(
    content_type: &str,
    body: Bytes,
) -> Result<(VerificationRequest, Option<(String, Bytes)>), ApiError> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err(ApiError::BadRequest(
            "the form is sent as multipart/form-data (the index page's form); API clients POST /v1/verifications".into(),
        ));
    }
    let request = Request::builder()
        .header(CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("not a form: {}", e.body_text())))?;
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("unreadable form: {}", e.body_text()))
    };
    let (mut text, mut file) = (std::collections::HashMap::new(), None);
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("").to_string();
            let bytes = field.bytes().await.map_err(bad)?;
            if !filename.is_empty() || !bytes.is_empty() {
                file = Some((filename, bytes));
            }
        } else if matches!(name.as_str(), "task" | "model" | "output" | "entry") {
            text.insert(name, field.text().await.map_err(bad)?);
        }
        // Anything else (a browser extension's field) is not ours.
    }
    let mut field = |name: &str| text.remove(name).filter(|v| !v.trim().is_empty());
    // A browser sends a textarea's line breaks as CRLF whatever was typed
    // or pasted: the answer as the person gave it has LF.
    let output = field("output").map(|o| o.replace("\r\n", "\n"));
    let file = match (file, &output) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Unprocessable {
                code: "output_and_archive",
                message: "paste an answer or choose a file, not both".into(),
            })
        }
        (None, None) => {
            return Err(ApiError::Unprocessable {
                code: "empty_output",
                message: "paste an answer or choose a file (.py, .md, .zip, .tar.gz, .ipynb)"
                    .into(),
            })
        }
        // A file without a name is read as an answer, as the API reads it.
        (Some((name, bytes)), None) if name.is_empty() => Some(("answer.py".into(), bytes)),
        (file, _) => file,
    };
    let request = VerificationRequest {
        output,
        archive_base64: None,
        archive_name: None,
        entry: field("entry"),
        task: field("task"),
        model: field("model"),
        sample: None,
        metadata: None,
        callback_url: None,
    };
    Ok((request, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn a_form_from_another_site_is_refused_and_one_from_here_or_no_browser_is_not() {
        let ok = [
            headers(&[]),
            headers(&[("host", "127.0.0.1:8080")]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ]),
            headers(&[
                ("host", "judge:80"),
                ("x-forwarded-host", "judge.example"),
                ("origin", "https://judge.example"),
            ]),
        ];
        for h in ok {
            assert!(same_site(&h).is_ok(), "{h:?}");
        }
        let refused = [
            headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
            headers(&[("origin", "http://127.0.0.1:8080")]),
        ];
        for h in refused {
            assert!(same_site(&h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn a_reruns_metadata_names_what_it_runs_again() {
        assert_eq!(rerun_metadata(None, "a"), Some(json!({"rerun_of": "a"})));
        assert_eq!(
            rerun_metadata(Some(json!({"run": 7, "rerun_of": "old"})), "b"),
            Some(json!({"run": 7, "rerun_of": "b"}))
        );
        assert_eq!(rerun_metadata(Some(json!([1])), "c"), Some(json!([1])));
    }

    /// A multipart body as a browser sends the index page's form.
    fn form(fields: &[(&str, Option<&str>, &str)]) -> (String, Bytes) {
        let mut body = String::new();
        for (name, filename, value) in fields {
            body.push_str("--XyZ\r\nContent-Disposition: form-data; name=\"");
            body.push_str(name);
            body.push('"');
            if let Some(f) = filename {
                body.push_str(&format!(
                    "; filename=\"{f}\"\r\nContent-Type: application/octet-stream"
                ));
            }
            body.push_str("\r\n\r\n");
            body.push_str(value);
            body.push_str("\r\n");
        }
        body.push_str("--XyZ--\r\n");
        (
            "multipart/form-data; boundary=XyZ".into(),
            Bytes::from(body),
        )
    }

    #[tokio::test]
    async fn the_form_takes_a_pasted_answer_or_a_file_but_not_both_nor_neither() {
        let (ct, body) = form(&[
            ("task", None, "reset-conversation"),
            ("model", None, ""),
            ("output", None, "import sys\r\nprint(1)"),
            ("file", Some(""), ""),
            ("entry", None, ""),
        ]);
        let (request, file) = read_form(&ct, body).await.unwrap();
        assert_eq!(request.output.as_deref(), Some("import sys\nprint(1)"));
        assert_eq!(request.task.as_deref(), Some("reset-conversation"));
        assert_eq!((request.model, request.entry, file), (None, None, None));

        let (ct, body) = form(&[
            ("task", None, ""),
            ("output", None, " "),
            ("file", Some("app.zip"), "PK.."),
        ]);
        let (request, file) = read_form(&ct, body).await.unwrap();
        assert_eq!((request.output, request.task), (None, None));
        assert_eq!(file, Some(("app.zip".to_string(), Bytes::from("PK.."))));

        let (ct, body) = form(&[("output", None, "x"), ("file", Some("a.py"), "y")]);
        let both = read_form(&ct, body).await.unwrap_err();
        assert!(
            matches!(
                both,
                ApiError::Unprocessable {
                    code: "output_and_archive",
                    ..
                }
            ),
            "{both:?}"
        );
        let (ct, body) = form(&[("output", None, ""), ("file", Some(""), "")]);
        let neither = read_form(&ct, body).await.unwrap_err();
        assert!(
            matches!(
                neither,
                ApiError::Unprocessable {
                    code: "empty_output",
                    ..
                }
            ),
            "{neither:?}"
        );
        let not_a_form = read_form("application/json", Bytes::from("{}"))
            .await
            .unwrap_err();
        assert!(
            matches!(not_a_form, ApiError::BadRequest(_)),
            "{not_a_form:?}"
        );
    }

    #[test]
    fn a_refusal_is_a_page_with_the_apis_status_and_headers() {
        let response = refusal_page(ApiError::QueueFull {
            retry_after: 7,
            message: "the queue is full <now>".into(),
        });
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "7");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    }
}
