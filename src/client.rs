//! `qtjudge grade --server URL`: sends a benchmark stage's answers to a
//! running `qtjudge serve` and brings back the same results a local run
//! gives (JSON per answer, screenshots), so reports do not care where the
//! containers ran.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::cli::Answer;
use crate::verify::Verification;

/// Answers per batch request: well under the server's default `--max-batch`.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Bytes of answers per batch request: under the default body limit (32 MiB).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// How long the service may stay unreachable, overloaded or without its
/// engine before the client gives up (jobs it accepted stay on its disk).
const PATIENCE: Duration = Duration::from_secs(600);
const TOKEN_HINT: &str = " (pass the service's token with --token or QTJUDGE_TOKEN)";
const POLL_EVERY: Duration = Duration::from_millis(500);

/// A running `qtjudge serve`.
pub struct Service {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A batch the service accepted, and what the client knows of it.
struct Submitted {
    id: String,
    total: usize,
    finished: usize,
    view: Option<Value>,
}

impl Service {
    pub fn new(base: &str, token: Option<String>) -> Result<Service> {
        let parsed = reqwest::Url::parse(base).with_context(|| {
            format!("--server {base:?} is not a URL (e.g. http://127.0.0.1:8080)")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--server {base:?} must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Service {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorised(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request, waiting out 429 (as `Retry-After` says), 503 and
    /// connection failures for up to `PATIENCE`; any other answer is
    /// returned, and a 4xx becomes an error naming the service's message.
    async fn send(&self, what: &str, make: impl Fn() -> RequestBuilder) -> Result<Response> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(500);
        loop {
            let wait = match self.authorised(make()).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let after = retry_after(&response).unwrap_or(backoff);
                    tracing::info!(
                        what,
                        wait_s = after.as_secs_f64(),
                        "the service's queue is full; waiting"
                    );
                    after
                }
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    let message = error_message(response).await;
                    tracing::warn!(what, %message, "the service cannot run verifications now; waiting");
                    backoff
                }
                Ok(response) => {
                    let status = response.status();
                    let message = error_message(response).await;
                    let hint = match status {
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => TOKEN_HINT,
                        StatusCode::PAYLOAD_TOO_LARGE => " (lower --batch-size, or raise the service's --max-body-kb / --max-batch)",
                        _ => "",
                    };
                    bail!("{what}: the service answered {status}: {message}{hint}");
                }
                Err(e) => {
                    tracing::warn!(what, error = %e, "the service did not answer; retrying");
                    backoff
                }
            };
            if started.elapsed() + wait > PATIENCE {
                bail!(
                    "{what}: the service at {} was unreachable, full or without its Docker engine for {} s; \
                     accepted answers stay queued there, re-run with --resume to collect them",
                    self.base,
                    PATIENCE.as_secs()
                );
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(15));
        }
    }

    /// Checks the service is there and takes the token, before any work is
    /// sent; a wrong URL fails at once, not after the patience a busy
    /// service is given.
    pub async fn check_reachable(&self) -> Result<()> {
        self.tasks().await.map(|_| ())
    }

    /// As [`Service::check_reachable`], and the service knows `task`.
    pub async fn check_task(&self, task: &str) -> Result<()> {
        let tasks = self.tasks().await?;
        let known: Vec<&str> = tasks
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["id"].as_str())
            .collect();
        if !known.contains(&task) {
            bail!(
                "the service does not know the task {task:?}; it has: {}",
                known.join(", ")
            );
        }
        Ok(())
    }

    /// The service's task list (`GET /v1/tasks`).
    async fn tasks(&self) -> Result<Value> {
        let response = self
            .authorised(self.http.get(self.url("/v1/tasks")))
            .send()
            .await
            .with_context(|| {
                format!(
                    "no qtjudge service answers at {}: is `qtjudge serve` running there?",
                    self.base
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            let message = error_message(response).await;
            let hint = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                TOKEN_HINT
            } else {
                ""
            };
            bail!("listing the service's tasks: it answered {status}: {message}{hint}");
        }
        response
            .json()
            .await
            .context("the service's task list is not JSON: is --server a qtjudge service?")
    }

    /// Sends one batch; without `task` the service picks each answer's
    /// task as a local run does.
    async fn submit_batch(&self, task: Option<&str>, answers: &[Answer]) -> Result<Submitted> {
        let items = answers
            .iter()
            .map(batch_item)
            .collect::<Result<Vec<Value>>>()?;
        let body = serde_json::to_vec(&items)?;
        let accepted: Value = self
            .send("submitting a batch", || {
                let request = self.http.post(self.url("/v1/batches"));
                match task {
                    Some(task) => request.query(&[("task", task)]),
                    None => request,
                }
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
            })
            .await?
            .json()
            .await
            .context("the service's answer to a batch is not JSON")?;
        let id = accepted["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the service accepted a batch but gave no id: {accepted}"))?;
        Ok(Submitted {
            id: id.to_string(),
            total: answers.len(),
            finished: 0,
            view: None,
        })
    }

    async fn batch_view(&self, id: &str) -> Result<Value> {
        self.send("reading a batch's progress", || {
            self.http.get(self.url(&format!("/v1/batches/{id}")))
        })
        .await?
        .json()
        .await
        .context("a batch's view is not JSON")
    }

    /// The finished batch's results, with screenshots fetched; an app's
    /// result says what the app was (a folder, a notebook), not the archive
    /// it travelled in.
    async fn results<'a>(
        &self,
        batch: &Submitted,
        answers: &'a [Answer],
    ) -> Result<Vec<(Verification, &'a Answer)>> {
        let jsonl = self
            .send("fetching a batch's results", || {
                self.http
                    .get(self.url(&format!("/v1/batches/{}", batch.id)))
                    .query(&[("format", crate::render::Format::Jsonl.name())])
            })
            .await?
            .text()
            .await?;
        // Keyed as the service keys them: (model, task, sample).
        let key = |model: &str, task: &str, sample: Option<&str>| {
            (
                model.to_string(),
                task.to_string(),
                sample.map(String::from),
            )
        };
        let mut by_key = std::collections::HashMap::new();
        for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
            let v: Verification = serde_json::from_str(line)
                .context("a result from the service is not a qtjudge result")?;
            by_key.insert(key(&v.model, &v.task, v.sample.as_deref()), v);
        }
        let view = batch.view.as_ref().expect("a finished batch has a view");
        let mut results = Vec::new();
        // The batch's verifications are in the order they were sent.
        let items = view["verifications"].as_array().into_iter().flatten();
        for (item, sent) in items.zip(answers) {
            let model = item["model"].as_str().unwrap_or("answer").to_string();
            let task = item["task"].as_str().unwrap_or("?");
            let job_id = item["id"].as_str().unwrap_or_default();
            let mut v = match by_key.remove(&key(&model, task, item["sample"].as_str())) {
                Some(v) => v,
                None => {
                    // The service could not judge it (its job ended in `error`).
                    let mut v = Verification::unjudged(&model, task, "remote");
                    let why = item["reason"]
                        .as_str()
                        .unwrap_or("the service gave no result");
                    v.reason = format!("not judged: {why}");
                    v.error = Some(why.to_string());
                    v
                }
            };
            (v.sample, v.metadata) = (sent.sample.clone(), sent.metadata.clone());
            if let (Some(summary), Some(app)) = (v.bundle.as_mut(), sent.bundle.as_ref()) {
                summary.origin = app.origin;
                summary.notes = app.notes.clone();
            }
            for artifact in &mut v.artifacts {
                let path = format!("/v1/verifications/{job_id}/artifacts/{}", artifact.name);
                match self
                    .send("fetching a screenshot", || self.http.get(self.url(&path)))
                    .await
                {
                    Ok(response) => artifact.data = response.bytes().await?.to_vec(),
                    Err(e) => tracing::warn!(error = %e, "a screenshot could not be fetched"),
                }
            }
            results.push((v, sent));
        }
        Ok(results)
    }

    /// Sends every answer, waits for all of them, and hands each result to
    /// `on_result` (with the answer it is of) as its batch finishes;
    /// `on_progress` gets (finished, total).
    pub async fn grade(
        &self,
        task: Option<&str>,
        answers: Vec<Answer>,
        batch_size: usize,
        mut on_progress: impl FnMut(usize, usize),
        mut on_result: impl FnMut(Verification, &Answer),
    ) -> Result<()> {
        let mut batches = Vec::new();
        // Everything is sent first, so the service's workers never idle
        // between batches; a full queue makes `send` wait politely.
        let chunks = chunks(&answers, batch_size.max(1));
        for chunk in &chunks {
            batches.push(self.submit_batch(task, chunk).await?);
        }
        let total = answers.len();
        tracing::info!(batches = batches.len(), answers = total, service = %self.base, "answers accepted");
        while batches.iter().any(|b| b.view.is_none()) {
            for (batch, sent) in batches
                .iter_mut()
                .zip(&chunks)
                .filter(|(b, _)| b.view.is_none())
            {
                let view = self.batch_view(&batch.id).await?;
                let progress = &view["progress"];
                batch.finished = (progress["done"].as_u64().unwrap_or(0)
                    + progress["error"].as_u64().unwrap_or(0))
                    as usize;
                if view["status"] == "done" {
                    batch.finished = batch.total;
                    batch.view = Some(view);
                    for (v, answer) in self.results(batch, sent).await? {
                        on_result(v, answer);
                    }
                }
            }
            on_progress(batches.iter().map(|b| b.finished).sum(), total);
            if batches.iter().any(|b| b.view.is_none()) {
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
        Ok(())
    }
}

/// One answer as a batch item: a raw answer as `output`; an app (a folder,
/// an archive, a notebook) as a `.tar.gz` of its files with its entry.
fn batch_item(answer: &Answer) -> Result<Value> {
    let mut item = json!({
        "model": answer.model,
        "task": answer.task,
        "sample": answer.sample,
        "metadata": answer.metadata,
    });
    if let Some(fields) = item.as_object_mut() {
        fields.retain(|_, value| !value.is_null());
    }
    match &answer.bundle {
        None => item["output"] = json!(answer.output),
        Some(app) => {
            let archive = app
                .to_tar_gz()
                .with_context(|| format!("cannot pack the app {}", answer.model))?;
            item["archive_base64"] = json!(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                archive
            ));
            item["archive_name"] = json!(format!("{}.tar.gz", answer.model));
            item["entry"] = json!(app.entry);
        }
    }
    Ok(item)
}

/// Bytes an answer adds to a batch (an app's files, base64-encoded).
fn answer_bytes(answer: &Answer) -> usize {
    let files: usize = answer
        .bundle
        .iter()
        .flat_map(|b| &b.files)
        .map(|f| f.data.len() * 4 / 3)
        .sum();
    let metadata = answer.metadata.as_ref().map_or(0, |m| m.to_string().len());
    answer.output.len() + answer.model.len() + metadata + files
}

/// Splits answers into batches bounded in count and bytes.
fn chunks(answers: &[Answer], size: usize) -> Vec<&[Answer]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, answer) in answers.iter().enumerate() {
        let len = answer_bytes(answer);
        if i > start && (i - start >= size || bytes + len > MAX_BATCH_BYTES) {
            out.push(&answers[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < answers.len() {
        out.push(&answers[start..]);
    }
    out
}

fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.clamp(1, 120)))
}

/// The service's `{"error", "message"}`, or the raw body when it is not one.
async fn error_message(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(body) if body["message"].is_string() => format!(
            "{} ({})",
            body["message"].as_str().unwrap_or_default(),
            body["error"].as_str().unwrap_or("error")
        ),
        _ => text.chars().take(300).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(model: &str, bytes: usize) -> Answer {
        Answer {
            task: None,
            sample: None,
            metadata: None,
            model: model.into(),
            output: "x".repeat(bytes),
            bundle: None,
        }
    }

    #[test]
    fn chunks_are_bounded_in_count_and_bytes_and_keep_every_answer_in_order() {
        let answers: Vec<Answer> = (0..7).map(|i| answer(&format!("m{i}"), 10)).collect();
        let sizes: Vec<usize> = chunks(&answers, 3).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![3, 3, 1]);

        let big: Vec<Answer> = (0..5).map(|i| answer(&format!("b{i}"), 3 << 20)).collect();
        let parts = chunks(&big, 100);
        assert_eq!(
            parts.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        let models: Vec<&str> = parts
            .iter()
            .flat_map(|c| c.iter().map(|a| a.model.as_str()))
            .collect();
        assert_eq!(models, vec!["b0", "b1", "b2", "b3", "b4"]);
    }

    #[test]
    fn one_answer_over_the_byte_bound_still_goes_alone() {
        let answers = vec![
            answer("a", 1),
            answer("huge", MAX_BATCH_BYTES + 5),
            answer("c", 1),
        ];
        let sizes: Vec<usize> = chunks(&answers, 100).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }

    #[test]
    fn a_server_url_must_be_http() {
        assert!(Service::new("ftp://x", None).is_err());
        assert!(Service::new("127.0.0.1:8080", None).is_err());
        let s = Service::new("http://127.0.0.1:8080/", Some(String::new())).unwrap();
        assert_eq!(s.url("/v1/tasks"), "http://127.0.0.1:8080/v1/tasks");
        assert!(s.token.is_none(), "an empty token is no token");
    }
}
