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
    pending: Vec<u8>,
    reply: Reply,
    done: bool,
}

impl Ndjson {
    /// Takes the next bytes of the body (a chunk may end mid-line).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.pending.extend_from_slice(bytes);
        while let Some(at) = memchr::memchr(b'\n', &self.pending) {
            let line: Vec<u8> = self.pending.drain(..=at).collect();
            self.line(&line)?;
        }
        Ok(())
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
        let rest = std::mem::take(&mut self.pending);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_split_anywhere_reads_as_the_whole_answer() {
        let body = concat!(
            r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"let me"},"done":false}"#,
            "\n",
            r#"{"model":"m","message":{"role":"assistant","content":"Here is ```py"},"done":false}"#,
            "\r\n\n",
            r#"{"model":"m","message":{"role":"assistant","content":"thön\n```"},"done":false}"#,
            "\n",
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":812,"eval_count":40}"#,
        );
        // Every split point, the non-ASCII letter's bytes included.
        for at in 0..body.len() {
            let mut stream = Ndjson::default();
            stream.push(&body.as_bytes()[..at]).unwrap();
            stream.push(&body.as_bytes()[at..]).unwrap();
            let reply = stream.finish().unwrap();
            assert_eq!(reply.content, "Here is ```pythön\n```");
            assert_eq!(reply.thinking, "let me");
            assert_eq!(
                (reply.prompt_tokens, reply.completion_tokens),
                (Some(812), Some(40))
            );
            assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
        }
    }

    #[test]
    fn a_cut_or_failed_stream_is_an_error() {
        let mut cut = Ndjson::default();
        cut.push(b"{\"message\":{\"content\":\"half\"},\"done\":false}\n")
            .unwrap();
        assert!(matches!(cut.finish(), Err(StreamError::Cut(_))));

        let mut failed = Ndjson::default();
        let err = failed
            .push(b"{\"error\":\"model runner has unexpectedly stopped\"}\n")
            .unwrap_err();
        assert!(
            matches!(&err, StreamError::Server(m) if m.contains("unexpectedly")),
            "{err:?}"
        );

        let mut garbage = Ndjson::default();
        assert!(matches!(
            garbage.push(b"<html>\n"),
            Err(StreamError::Malformed(_))
        ));
    }

    #[test]
    fn a_whole_answer_and_the_request_body() {
        let reply = whole(
            br#"{"message":{"role":"assistant","content":"full"},"done":true,"prompt_eval_count":5,"eval_count":2}"#,
        )
        .unwrap();
        assert_eq!(
            (reply.content.as_str(), reply.completion_tokens),
            ("full", Some(2))
        );
        assert!(whole(br#"{"error":"model \"x\" not found"}"#).is_err());

        let options = Options {
            temperature: Some(0.7),
            seed: Some(42),
            max_tokens: Some(4096),
        };
        let body = request("qwen3:8b", "hi", &options, true);
        assert_eq!(
            body,
            json!({"model": "qwen3:8b", "stream": true,
                   "messages": [{"role": "user", "content": "hi"}],
                   "options": {"temperature": 0.7, "seed": 42, "num_predict": 4096}})
        );
        let bare = request("m", "hi", &Options::default(), false);
        assert_eq!(bare["options"], json!({}));
    }
}
