//! An OpenAI-compatible chat API (`POST /v1/chat/completions`: vLLM,
//! llama.cpp's server, LM Studio, Ollama's `/v1` …): the request, and its
//! answer read whole or as server-sent events (`data:` lines, the last
//! `data: [DONE]`).

use serde_json::{json, Value};

use super::{Options, Reply, StreamError};

/// The body of one chat request. A stream asks for its usage in a last
/// chunk (`stream_options`), so the token counts come either way.
pub fn request(model: &str, content: &str, options: &Options, stream: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = options.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(seed) = options.seed {
        body["seed"] = json!(seed);
    }
    if let Some(n) = options.max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

/// The answer of a non-streaming request.
pub fn whole(body: &[u8]) -> Result<Reply, StreamError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| StreamError::Malformed(format!("the answer is not JSON: {e}")))?;
    server_error(&value)?;
    let choice = &value["choices"][0];
    let Some(message) = choice["message"].as_object() else {
        return Err(StreamError::Malformed(
            "the answer has no `choices[0].message`".into(),
        ));
    };
    let mut reply = Reply::default();
    if let Some(text) = message.get("content").and_then(Value::as_str) {
        reply.content.push_str(text);
    }
    if let Some(text) = reasoning(message) {
        reply.thinking.push_str(text);
    }
    add_usage_and_finish(&mut reply, &value);
    Ok(reply)
}

/// Reads a streamed answer as its bytes come: server-sent events, each
/// `data:` a chunk of JSON whose `choices[0].delta` carries the text.
#[derive(Default)]
pub struct Sse {
    pending: super::LineBuffer,
    /// The `data:` lines of the event being read (an event may span several).
    data: Vec<String>,
    reply: Reply,
    done: bool,
}

impl Sse {
    /// Takes the next bytes of the body (a chunk may end mid-line, even
    /// mid-character: lines are split on bytes, decoded whole).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        let mut lines = std::mem::take(&mut self.pending);
        let read = lines.push(bytes, |line| self.line(line));
        self.pending = lines;
        read
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), StreamError> {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            // A blank line ends the event.
            return self.dispatch();
        }
        if line.starts_with(':') {
            return Ok(()); // a comment (keep-alive)
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        if field == "data" {
            self.data.push(value.to_string());
        }
        // `event:`, `id:` and `retry:` say nothing of the answer.
        Ok(())
    }

    fn dispatch(&mut self) -> Result<(), StreamError> {
        if self.data.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.data).join("\n");
        if self.done {
            return Err(StreamError::Malformed(
                "an event came after `data: [DONE]`".into(),
            ));
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let value: Value = serde_json::from_str(&data).map_err(|e| {
            StreamError::Malformed(format!(
                "an event's data is not JSON ({e}): {}",
                data.chars().take(200).collect::<String>()
            ))
        })?;
        server_error(&value)?;
        let choice = &value["choices"][0];
        if let Some(delta) = choice["delta"].as_object() {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                self.reply.content.push_str(text);
            }
            if let Some(text) = reasoning(delta) {
                self.reply.thinking.push_str(text);
            }
        }
        add_usage_and_finish(&mut self.reply, &value);
        Ok(())
    }

    /// The whole answer once the body ended; one that ended before
    /// `data: [DONE]` is an error (the connection dropped mid-answer).
    pub fn finish(mut self) -> Result<Reply, StreamError> {
        let rest = std::mem::take(&mut self.pending).into_rest();
        if !rest.is_empty() {
            self.line(&rest)?;
        }
        self.dispatch()?;
        if !self.done {
            return Err(StreamError::Cut(
                "the stream ended before `data: [DONE]`".into(),
            ));
        }
        Ok(self.reply)
    }
}

/// `{"error": {"message": …}}` (or a bare string), in a body or an event.
fn server_error(value: &Value) -> Result<(), StreamError> {
    let error = &value["error"];
    if error.is_null() {
        return Ok(());
    }
    let message = error["message"]
        .as_str()
        .or(error.as_str())
        .map(String::from)
        .unwrap_or_else(|| error.to_string());
    Err(StreamError::Server(message))
}

/// The reasoning some servers split out of the text (`reasoning_content`
/// in vLLM's and DeepSeek's, `reasoning` in others').
fn reasoning(message: &serde_json::Map<String, Value>) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|key| message.get(*key).and_then(Value::as_str))
}

fn add_usage_and_finish(reply: &mut Reply, value: &Value) {
    let usage = &value["usage"];
    if let Some(n) = usage["prompt_tokens"].as_u64() {
        reply.prompt_tokens = Some(n);
    }
    if let Some(n) = usage["completion_tokens"].as_u64() {
        reply.completion_tokens = Some(n);
    }
    if let Some(reason) = value["choices"][0]["finish_reason"].as_str() {
        reply.finish_reason = Some(reason.to_string());
    }
}
