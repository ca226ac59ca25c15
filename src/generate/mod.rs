//! Generation: answers asked of models on a model server (Ollama's API or
//! an OpenAI-compatible one), as the experiment asked them (the task's
//! prompt, then the full original script), written as the JSONL `grade`
//! reads. A file per concern: the client and its retries (`client`,
//! `backoff`), each API's request and answer (`ollama`, `openai`), the
//! resumable answers file (`answers_file`). Not part of the grading room:
//! this is all IO.

pub mod answers_file;
pub mod backoff;
pub mod client;
pub mod ollama;
pub mod openai;
#[cfg(test)]
mod stream_tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::task::Task;
use answers_file::{AnswersFile, Existing, Key};
use backoff::Backoff;
use client::ModelServer;

/// The model server's API.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Ollama's `POST /api/chat`.
    Ollama,
    /// An OpenAI-compatible `POST /v1/chat/completions`.
    Openai,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Ollama => "ollama",
            Api::Openai => "openai",
        }
    }

    /// The body of one chat request, in this API's words.
    pub fn request(self, model: &str, content: &str, options: &Options, stream: bool) -> Value {
        match self {
            Api::Ollama => ollama::request(model, content, options, stream),
            Api::Openai => openai::request(model, content, options, stream),
        }
    }

    /// The answer of a request that was not streamed.
    pub fn whole(self, body: &[u8]) -> Result<Reply, StreamError> {
        match self {
            Api::Ollama => ollama::whole(body),
            Api::Openai => openai::whole(body),
        }
    }
}

/// The sampling settings sent with a request (none: the server's default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Options {
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
    pub max_tokens: Option<u32>,
}

/// One answer as the server gave it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reply {
    pub content: String,
    /// Reasoning the server gave apart from the text (Ollama's `thinking`,
    /// `reasoning_content`); empty when it is in the text, as `<think>`.
    pub thinking: String,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub finish_reason: Option<String>,
}

impl Reply {
    /// The raw answer as a model that writes its reasoning inline gives
    /// it: reasoning given apart is put back as a `<think>` block, which
    /// extraction removes, so no code drafted there is taken for the answer.
    pub fn output(&self) -> String {
        if self.thinking.trim().is_empty() {
            self.content.clone()
        } else {
            format!("<think>\n{}\n</think>\n\n{}", self.thinking, self.content)
        }
    }
}

/// The bytes of a streamed body not yet read as lines: chunks may end
/// mid-line (mid-character even), so lines are split on bytes and handed
/// out whole, newline included. What was handed out is dropped at the
/// next push, not shifted out line by line.
#[derive(Default)]
pub(crate) struct LineBuffer {
    pending: Vec<u8>,
    read: usize,
}

impl LineBuffer {
    /// Each whole line now buffered, after `bytes`, is given to `line`.
    pub(crate) fn push<E>(
        &mut self,
        bytes: &[u8],
        mut line: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.pending.drain(..self.read);
        self.read = 0;
        self.pending.extend_from_slice(bytes);
        while let Some(at) = memchr::memchr(b'\n', &self.pending[self.read..]) {
            let end = self.read + at + 1;
            let start = std::mem::replace(&mut self.read, end);
            line(&self.pending[start..end])?;
        }
        Ok(())
    }

    /// What is left once the body ended: a last line without its newline.
    pub(crate) fn into_rest(mut self) -> Vec<u8> {
        self.pending.drain(..self.read);
        self.pending
    }
}

/// Why a streamed (or whole) answer could not be read.
#[derive(Debug)]
pub enum StreamError {
    /// The server said it failed (`error` in the body or an event).
    Server(String),
    /// The body ended before the API's last chunk.
    Cut(String),
    /// Not the API's shape at all.
    Malformed(String),
}

/// What one `generate` run asks for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's base URL (or its full chat URL).
    pub endpoint: String,
    pub api: Api,
    /// Sent as a bearer token when given.
    pub api_key: Option<String>,
    pub models: Vec<String>,
    /// Answers asked of each model, numbered 1..=samples.
    pub samples: u32,
    /// The temperature and token limit of every request; the seed of the
    /// first sample (sample n gets seed + n − 1, so that samples differ).
    pub options: Options,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub stream: bool,
    /// Longest wait for one whole answer.
    pub timeout: Duration,
    pub backoff: Backoff,
}

/// The message every model is sent: the task's prompt, then the full
/// original script, as the experiment pasted it.
pub fn message(task: &Task) -> Result<String> {
    if !task.has_original() {
        bail!(
            "task `{}` has no original script to send with its prompt; give a task folder with one (`qtjudge task list`)",
            task.id
        );
    }
    let script = task.original_source.trim_end();
    Ok(format!(
        "{}\n\n```python\n{script}\n```\n",
        task.prompt.trim()
    ))
}

/// Where a run stands, after each answer.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Answers asked in this run so far (written or failed).
    pub done: usize,
    /// Answers this run asks (those already in the file left out).
    pub total: usize,
    pub failed: usize,
    /// The answer just finished: `model #sample`.
    pub last: String,
    pub elapsed: Duration,
}

impl Progress {
    /// Answers a minute, over this run's time.
    pub fn rate_per_minute(&self) -> f64 {
        let minutes = self.elapsed.as_secs_f64() / 60.0;
        if minutes > 0.0 {
            self.done as f64 / minutes
        } else {
            0.0
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    /// (model, task, sample) keys the settings ask for.
    pub wanted: usize,
    /// Already answered in the file: not asked again.
    pub skipped: usize,
    pub written: usize,
    /// The answers that could not be had, each with its error.
    pub failed: Vec<(Key, String)>,
    pub elapsed: Duration,
}

/// Asks every model for every sample not yet answered in `file`,
/// `concurrency` at a time (a model's samples in a row, so that a server
/// loading one model at a time does not swap models at every request),
/// appending each answer, or its failure, as it comes. Only the file
/// failing ends the run early.
pub async fn run(
    settings: &Settings,
    task: &Task,
    file: AnswersFile,
    existing: &Existing,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Summary> {
    let content = message(task)?;
    let server = ModelServer::new(
        &settings.endpoint,
        settings.api,
        settings.api_key.clone(),
        settings.stream,
        settings.timeout,
    )?;
    let mut wanted = 0;
    let mut todo = Vec::new();
    for model in &settings.models {
        for sample in 1..=settings.samples {
            wanted += 1;
            let key = (model.clone(), task.id.clone(), sample.to_string());
            if !existing.answered.contains(&key) {
                todo.push((model.clone(), sample));
            }
        }
    }
    let file = Arc::new(file);
    let started = Instant::now();
    let mut state = Progress {
        done: 0,
        total: todo.len(),
        failed: 0,
        last: String::new(),
        elapsed: Duration::ZERO,
    };
    progress(&state);
    let mut failed = Vec::new();
    let (server, content) = (&server, content.as_str());
    let mut answers = futures_util::stream::iter(todo.into_iter().map(|(model, sample)| {
        let file = file.clone();
        async move {
            let line = ask_one(server, settings, task, content, model, sample).await;
            tokio::task::spawn_blocking(move || file.append(&line).map(|()| line)).await?
        }
    }))
    .buffer_unordered(settings.concurrency.max(1));
    while let Some(line) = answers.next().await {
        let Line {
            model,
            sample,
            error,
            ..
        } = line?;
        state.last = format!("{model} #{sample}");
        if let Some(error) = error {
            tracing::debug!(%model, sample, %error, "no answer");
            failed.push(((model, task.id.clone(), sample.to_string()), error));
            state.failed += 1;
        }
        state.done += 1;
        state.elapsed = started.elapsed();
        progress(&state);
    }
    Ok(Summary {
        wanted,
        skipped: wanted - state.total,
        written: state.done - state.failed,
        failed,
        elapsed: started.elapsed(),
    })
}

/// One line of the answers file: the answer and its metadata, or its
/// error (then no `output`). Fields in this order, so that a person
/// reading the file sees whose answer a line is first.
#[derive(Debug, serde::Serialize)]
pub struct Line {
    pub model: String,
    pub task: String,
    pub sample: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub metadata: Value,
}

/// One answer asked for, as its line.
async fn ask_one(
    server: &ModelServer,
    settings: &Settings,
    task: &Task,
    content: &str,
    model: String,
    sample: u32,
) -> Line {
    let options = Options {
        seed: settings
            .options
            .seed
            .map(|seed| seed.wrapping_add(u64::from(sample) - 1)),
        ..settings.options
    };
    let mut metadata = json!({
        "api": settings.api.name(),
        "endpoint": server.url(),
        "stream": settings.stream,
        "temperature": options.temperature,
        "seed": options.seed,
        "max_tokens": options.max_tokens,
    });
    let mut line = Line {
        task: task.id.clone(),
        sample,
        output: None,
        error: None,
        metadata: Value::Null,
        model,
    };
    match server
        .ask(&line.model, content, &options, &settings.backoff)
        .await
    {
        Ok(answered) => {
            let reply = &answered.reply;
            metadata["latency_ms"] = json!(answered.latency.as_millis() as u64);
            metadata["attempts"] = json!(answered.attempts);
            metadata["tokens"] = json!({
                "prompt": reply.prompt_tokens,
                "completion": reply.completion_tokens,
            });
            metadata["finish_reason"] = json!(reply.finish_reason);
            line.output = Some(reply.output());
        }
        Err(failed) => {
            metadata["attempts"] = json!(failed.attempts);
            line.error = Some(failed.error);
        }
    }
    line.metadata = metadata;
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_given_apart_is_put_back_as_a_think_block() {
        let mut reply = Reply {
            content: "```python\nx = 1\n```".into(),
            ..Reply::default()
        };
        assert_eq!(reply.output(), reply.content);
        reply.thinking = "draft: ```python\ny = 2\n```".into();
        let output = reply.output();
        assert!(output.starts_with("<think>\ndraft"), "{output}");
        assert!(
            output.ends_with("</think>\n\n```python\nx = 1\n```"),
            "{output}"
        );
    }

    #[test]
    fn the_message_is_the_prompt_then_the_whole_original() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks");
        let task = Task::load(&dir, "reset-conversation").unwrap();
        let message = message(&task).unwrap();
        assert!(message.starts_with(&format!("{}\n\n```python\n", task.prompt)));
        assert!(message.contains(task.original_source.trim_end()));
        assert!(message.ends_with("\n```\n"));
        let generic = Task::load(&dir, "generic-reset").unwrap();
        let err = super::message(&generic).unwrap_err().to_string();
        assert!(err.contains("no original script"), "{err}");
    }
}
