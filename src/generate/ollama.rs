//! Ollama's chat API (`POST /api/chat`): the request, and its answer read
//! whole (`stream: false`) or as newline-delimited JSON chunks, the last
//! one `done: true` with the token counts.

use serde_json::{json, Value};

use super::{Options, Reply, StreamError};

/// The body of one chat request.
pub fn request(model: &str, content: &str, options: &Options, stream: bool) -> Value {
    let mut settings = serde_json::Map::new();
    if let Some(t) = options.temperature {
        settings.insert("temperature".into(), json!(t));
    }
    if let Some(seed) = options.seed {
        settings.insert("seed".into(), json!(seed));
    }
    if let Some(n) = options.max_tokens {
        settings.insert("num_predict".into(), json!(n));
    }
    json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
        "options": settings,
    })
}

/// The answer of a `stream: false` request.
pub fn whole(body: &[u8]) -> Result<Reply, StreamError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| StreamError::Malformed(format!("the answer is not JSON: {e}")))?;
    let mut reply = Reply::default();
    add_chunk(&mut reply, &value)?;
    if value["done"] != json!(true) {
        return Err(StreamError::Malformed(
            "the answer does not say `done: true`".into(),
        ));
    }
    Ok(reply)
}

/// Reads a streamed answer as its bytes come: one JSON object a line.
#[derive(Default)]
pub struct Ndjson {
    pending: super::LineBuffer,
    reply: Reply,
    done: bool,
}

impl Ndjson {
    /// Takes the next bytes of the body (a chunk may end mid-line).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        let mut lines = std::mem::take(&mut self.pending);
        let read = lines.push(bytes, |line| self.line(line));
        self.pending = lines;
        read
    }

    fn line(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        if self.done {
            return Err(StreamError::Malformed(
                "a chunk came after the one marked `done`".into(),
            ));
        }
        let value: Value = serde_json::from_slice(line).map_err(|e| {
            StreamError::Malformed(format!(
                "a streamed line is not JSON ({e}): {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ))
        })?;
        add_chunk(&mut self.reply, &value)?;
        self.done = value["done"] == json!(true);
        Ok(())
    }

    /// The whole answer once the body ended; one cut off before its
    /// `done` chunk is an error (the connection dropped mid-answer).
    pub fn finish(mut self) -> Result<Reply, StreamError> {
        let rest = std::mem::take(&mut self.pending).into_rest();
        self.line(&rest)?;
        if !self.done {
            return Err(StreamError::Cut(
                "the stream ended before its `done: true` chunk".into(),
            ));
        }
        Ok(self.reply)
    }
}

/// Adds one chunk (or the whole answer) to the reply: its text, its
/// reasoning (`thinking`, when the server splits it out), and on the last
/// one the token counts and why it stopped.
fn add_chunk(reply: &mut Reply, value: &Value) -> Result<(), StreamError> {
    if let Some(error) = value["error"].as_str() {
        return Err(StreamError::Server(error.to_string()));
    }
    if !value.is_object() {
        return Err(StreamError::Malformed(format!(
            "expected a JSON object, got {value}"
        )));
    }
    let message = &value["message"];
    if let Some(text) = message["content"].as_str() {
        reply.content.push_str(text);
    }
    if let Some(text) = message["thinking"].as_str() {
        reply.thinking.push_str(text);
    }
    if let Some(n) = value["prompt_eval_count"].as_u64() {
        reply.prompt_tokens = Some(n);
    }
    if let Some(n) = value["eval_count"].as_u64() {
        reply.completion_tokens = Some(n);
    }
    if let Some(reason) = value["done_reason"].as_str() {
        reply.finish_reason = Some(reason.to_string());
    }
    Ok(())
}
