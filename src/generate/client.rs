//! One model server over HTTP (reqwest): a chat request sent, its answer
//! read whole or streamed, and the request sent again on what may pass
//! (a refused connection, a timeout, 408, 429, 5xx, a stream cut off),
//! waiting as `backoff` says, until its attempts run out.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use reqwest::StatusCode;

use super::backoff::{jitter_unit, parse_retry_after, Backoff};
use super::{ollama, openai, Api, Options, Reply, StreamError};

/// The most bytes an answer may take (a model looping with no token limit
/// would otherwise grow it until the server's context ends).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// A model server's chat endpoint.
pub struct ModelServer {
    http: reqwest::Client,
    url: String,
    api: Api,
    api_key: Option<String>,
    stream: bool,
    timeout: Duration,
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug)]
enum Failure {
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    Final(String),
}

/// A successful answer and what it took.
#[derive(Debug)]
pub struct Answered {
    pub reply: Reply,
    /// From the request of the attempt that succeeded to its answer's end.
    pub latency: Duration,
    pub attempts: u32,
}

/// An answer that could not be had, after `attempts` requests.
#[derive(Debug)]
pub struct Failed {
    pub error: String,
    pub attempts: u32,
}

impl ModelServer {
    /// A client of `endpoint` (the server's base URL, or its full chat URL).
    pub fn new(
        endpoint: &str,
        api: Api,
        api_key: Option<String>,
        stream: bool,
        timeout: Duration,
    ) -> Result<ModelServer> {
        let url = chat_url(endpoint, api);
        reqwest::Url::parse(&url).with_context(|| {
            format!("--endpoint {endpoint:?} is not a URL (e.g. http://localhost:11434)")
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(ModelServer {
            http,
            url,
            api,
            api_key: api_key.filter(|k| !k.is_empty()),
            stream,
            timeout,
        })
    }

    /// The chat URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks `model` for one answer to `content`, retrying as `backoff` says.
    pub async fn ask(
        &self,
        model: &str,
        content: &str,
        options: &Options,
        backoff: &Backoff,
    ) -> Result<Answered, Failed> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let started = Instant::now();
            let failure = match self.once(model, content, options).await {
                Ok(reply) => {
                    return Ok(Answered {
                        reply,
                        latency: started.elapsed(),
                        attempts,
                    })
                }
                Err(failure) => failure,
            };
            let (message, retry_after) = match failure {
                Failure::Final(error) => return Err(Failed { error, attempts }),
                Failure::Retry {
                    message,
                    retry_after,
                } => (message, retry_after),
            };
            if attempts >= backoff.attempts.max(1) {
                return Err(Failed {
                    error: format!(
                        "gave up after {attempts} attempt(s); the last: {message} \
                         (rerun with the same --out to ask again, or raise --attempts)"
                    ),
                    attempts,
                });
            }
            let wait = backoff.wait(attempts, retry_after, jitter_unit());
            tracing::warn!(
                model,
                attempt = attempts,
                wait_s = wait.as_secs_f64(),
                %message,
                "the model server failed; asking again"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One request and its answer.
    async fn once(&self, model: &str, content: &str, options: &Options) -> Result<Reply, Failure> {
        let body = self.api.request(model, content, options, self.stream);
        let mut request = self.http.post(&self.url).json(&body).timeout(self.timeout);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refused(model, response).await);
        }
        let mut received = 0usize;
        let parsed = if self.stream {
            let mut stream = Stream::new(self.api);
            while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
                received += chunk.len();
                too_big(received)?;
                stream.push(&chunk).map_err(|e| self.stream_failure(e))?;
            }
            stream.finish()
        } else {
            let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
            too_big(bytes.len())?;
            self.api.whole(&bytes)
        };
        parsed.map_err(|e| self.stream_failure(e))
    }

    /// A failure to connect or to read: worth another attempt, unless the
    /// request could not even be built.
    fn transport(&self, e: reqwest::Error) -> Failure {
        let message = if e.is_timeout() {
            format!(
                "no complete answer from {} within {} s (--timeout-secs)",
                self.url,
                self.timeout.as_secs()
            )
        } else {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            chain
        };
        if e.is_builder() {
            Failure::Final(message)
        } else {
            Failure::Retry {
                message,
                retry_after: None,
            }
        }
    }

    /// An answer that is not a success: 408, 429 and 5xx may pass on a
    /// later attempt; anything else is said with what to do.
    async fn refused(&self, model: &str, response: reqwest::Response) -> Failure {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = response.text().await.unwrap_or_default();
        let said = server_message(&body);
        let message = format!("{} answered {status}: {said}", self.url);
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Failure::Retry {
                message,
                retry_after,
            };
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                " (give the server's key with --api-key or QTJUDGE_API_KEY)".to_string()
            }
            StatusCode::NOT_FOUND => format!(
                " (is the model `{model}` there (`ollama pull {model}` for Ollama), and is --api {} the server's API?)",
                self.api.name()
            ),
            _ => String::new(),
        };
        Failure::Final(format!("{message}{hint}"))
    }

    fn stream_failure(&self, e: StreamError) -> Failure {
        match e {
            StreamError::Server(message) => Failure::Retry {
                message: format!("the server reported an error mid-answer: {message}"),
                retry_after: None,
            },
            StreamError::Cut(message) => Failure::Retry {
                message,
                retry_after: None,
            },
            StreamError::Malformed(message) => Failure::Final(format!(
                "{}: {message} (is --api {} the server's API?)",
                self.url,
                self.api.name()
            )),
        }
    }
}

fn too_big(bytes: usize) -> Result<(), Failure> {
    if bytes > MAX_ANSWER_BYTES {
        return Err(Failure::Final(format!(
            "the answer passed {} MiB; set --max-tokens",
            MAX_ANSWER_BYTES >> 20
        )));
    }
    Ok(())
}

/// The streamed answer's reader for the API.
pub(super) enum Stream {
    Ollama(ollama::Ndjson),
    Openai(openai::Sse),
}

impl Stream {
    pub(super) fn new(api: Api) -> Stream {
        match api {
            Api::Ollama => Stream::Ollama(Default::default()),
            Api::Openai => Stream::Openai(Default::default()),
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        match self {
            Stream::Ollama(s) => s.push(bytes),
            Stream::Openai(s) => s.push(bytes),
        }
    }

    pub(super) fn finish(self) -> Result<Reply, StreamError> {
        match self {
            Stream::Ollama(s) => s.finish(),
            Stream::Openai(s) => s.finish(),
        }
    }
}

/// The chat URL of a server: its base URL with the API's path, unless it
/// is given already (`http://host:8000/v1` is an OpenAI base too).
pub fn chat_url(endpoint: &str, api: Api) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    match api {
        Api::Ollama if base.ends_with("/api/chat") => base.to_string(),
        Api::Ollama => format!("{base}/api/chat"),
        Api::Openai if base.ends_with("/chat/completions") => base.to_string(),
        Api::Openai if base.ends_with("/v1") => format!("{base}/chat/completions"),
        Api::Openai => format!("{base}/v1/chat/completions"),
    }
}

/// What a refusal's body says: Ollama's `{"error": "…"}`, OpenAI's
/// `{"error": {"message": …}}`, else the start of the body.
fn server_message(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let error = &value["error"];
    if let Some(text) = error["message"].as_str().or(error.as_str()) {
        return text.to_string();
    }
    let trimmed: String = body.trim().chars().take(300).collect();
    if trimmed.is_empty() {
        "(no body)".into()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_url_is_the_base_with_the_apis_path() {
        let cases = [
            (
                "http://localhost:11434",
                Api::Ollama,
                "http://localhost:11434/api/chat",
            ),
            (
                "http://localhost:11434/",
                Api::Ollama,
                "http://localhost:11434/api/chat",
            ),
            ("http://h/api/chat", Api::Ollama, "http://h/api/chat"),
            (
                "http://h:8000",
                Api::Openai,
                "http://h:8000/v1/chat/completions",
            ),
            (
                "http://h:8000/v1/",
                Api::Openai,
                "http://h:8000/v1/chat/completions",
            ),
            (
                "https://h/v1/chat/completions",
                Api::Openai,
                "https://h/v1/chat/completions",
            ),
        ];
        for (endpoint, api, url) in cases {
            assert_eq!(chat_url(endpoint, api), url, "{endpoint}");
        }
    }

    #[test]
    fn a_refusals_message_is_the_servers_own() {
        assert_eq!(
            server_message(r#"{"error":"model \"x\" not found"}"#),
            "model \"x\" not found"
        );
        assert_eq!(
            server_message(r#"{"error":{"message":"Rate limit","type":"rate"}}"#),
            "Rate limit"
        );
        assert_eq!(server_message("  Bad Gateway\n"), "Bad Gateway");
        assert_eq!(server_message(""), "(no body)");
    }
}
