//! The two APIs' readers and request bodies, one table of cases each:
//! every streamed body is read split at every byte (mid-character too),
//! and must give the same reply, or fail the same way, wherever it is cut.

use serde_json::{json, Value};

use super::client::Stream;
use super::{Api, Options, Reply, StreamError};

/// What reading a body must give.
enum Expect {
    Reply(Reply),
    /// The server's own message (`error` in the body or an event).
    Server(&'static str),
    Cut,
    Malformed,
}

fn reply(content: &str, thinking: &str, tokens: (u64, u64), finish: Option<&str>) -> Reply {
    Reply {
        content: content.into(),
        thinking: thinking.into(),
        prompt_tokens: Some(tokens.0),
        completion_tokens: Some(tokens.1),
        finish_reason: finish.map(String::from),
    }
}

fn check(what: &str, got: Result<Reply, StreamError>, expect: &Expect) {
    match (expect, &got) {
        (Expect::Reply(want), Ok(reply)) => assert_eq!(reply, want, "{what}"),
        (Expect::Server(want), Err(StreamError::Server(message))) => {
            assert_eq!(message, want, "{what}")
        }
        (Expect::Cut, Err(StreamError::Cut(_)))
        | (Expect::Malformed, Err(StreamError::Malformed(_))) => {}
        _ => panic!("{what}: got {got:?}"),
    }
}

/// The body pushed in two parts, then the end of the stream.
fn streamed(api: Api, parts: [&[u8]; 2]) -> Result<Reply, StreamError> {
    let mut stream = Stream::new(api);
    for part in parts {
        stream.push(part)?;
    }
    stream.finish()
}

const OLLAMA_STREAM: &str = concat!(
    r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"let me"},"done":false}"#,
    "\n",
    r#"{"model":"m","message":{"role":"assistant","content":"Here is ```py"},"done":false}"#,
    "\r\n\n",
    r#"{"model":"m","message":{"role":"assistant","content":"thön\n```"},"done":false}"#,
    "\n",
    r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":812,"eval_count":40}"#,
);

const OPENAI_STREAM: &str = concat!(
    ": keep-alive\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"hm\"}}]}\n\n",
    "event: message\r\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"```python\\nprint('é')\"}}]}\r\n\r\n",
    "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\n```\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":12}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn a_stream_split_anywhere_reads_as_the_whole_answer_or_fails_the_same_way() {
    let cases = [
        (
            "ollama: chunks, thinking, token counts",
            Api::Ollama,
            OLLAMA_STREAM.to_string(),
            Expect::Reply(reply(
                "Here is ```pythön\n```",
                "let me",
                (812, 40),
                Some("stop"),
            )),
        ),
        (
            "ollama: cut before `done`",
            Api::Ollama,
            "{\"message\":{\"content\":\"half\"},\"done\":false}\n".into(),
            Expect::Cut,
        ),
        (
            "ollama: the server failed",
            Api::Ollama,
            "{\"error\":\"model runner has unexpectedly stopped\"}\n".into(),
            Expect::Server("model runner has unexpectedly stopped"),
        ),
        (
            "ollama: not JSON",
            Api::Ollama,
            "<html>\n".into(),
            Expect::Malformed,
        ),
        (
            "openai: events, a comment, reasoning, usage",
            Api::Openai,
            OPENAI_STREAM.to_string(),
            Expect::Reply(reply(
                "```python\nprint('é')\n```",
                "hm",
                (900, 12),
                Some("stop"),
            )),
        ),
        (
            "openai: an event over several data lines is joined",
            Api::Openai,
            "data: {\"choices\":[{\"delta\":\ndata: {\"content\":\"x\"}}]}\n\ndata: [DONE]".into(),
            Expect::Reply(Reply {
                content: "x".into(),
                ..Reply::default()
            }),
        ),
        (
            "openai: cut before [DONE]",
            Api::Openai,
            OPENAI_STREAM.trim_end_matches("data: [DONE]\n\n").into(),
            Expect::Cut,
        ),
        (
            "openai: the server failed",
            Api::Openai,
            "data: {\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}\n\n"
                .into(),
            Expect::Server("out of memory"),
        ),
        (
            "openai: an event after [DONE]",
            Api::Openai,
            "data: [DONE]\n\ndata: {}\n\n".into(),
            Expect::Malformed,
        ),
    ];
    for (what, api, body, expect) in &cases {
        let bytes = body.as_bytes();
        for at in 0..=bytes.len() {
            let got = streamed(*api, [&bytes[..at], &bytes[at..]]);
            check(&format!("{what} (split at {at})"), got, expect);
        }
    }
}

#[test]
fn a_whole_answer_reads_as_its_reply_or_its_error() {
    let cases = [
        (
            "ollama",
            Api::Ollama,
            br#"{"message":{"role":"assistant","content":"full"},"done":true,"prompt_eval_count":5,"eval_count":2}"#.as_slice(),
            Expect::Reply(reply("full", "", (5, 2), None)),
        ),
        (
            "ollama: the server failed",
            Api::Ollama,
            br#"{"error":"model \"x\" not found"}"#,
            Expect::Server("model \"x\" not found"),
        ),
        (
            "openai",
            Api::Openai,
            br#"{"choices":[{"message":{"role":"assistant","content":"full"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            Expect::Reply(reply("full", "", (3, 4), Some("length"))),
        ),
        (
            "openai: the server failed",
            Api::Openai,
            br#"{"error":{"message":"The model `x` does not exist."}}"#,
            Expect::Server("The model `x` does not exist."),
        ),
        (
            "openai: no choices",
            Api::Openai,
            b"{}",
            Expect::Malformed,
        ),
    ];
    for (what, api, body, expect) in &cases {
        check(what, api.whole(body), expect);
    }
}

#[test]
fn each_api_asks_in_its_own_words() {
    let options = |temperature, seed, max_tokens| Options {
        temperature: Some(temperature),
        seed: Some(seed),
        max_tokens: Some(max_tokens),
    };
    let hi = json!([{"role": "user", "content": "hi"}]);
    let cases: [(Api, &str, Options, bool, Value); 4] = [
        (
            Api::Ollama,
            "qwen3:8b",
            options(0.7, 42, 4096),
            true,
            json!({"model": "qwen3:8b", "stream": true, "messages": hi,
                   "options": {"temperature": 0.7, "seed": 42, "num_predict": 4096}}),
        ),
        (
            Api::Ollama,
            "m",
            Options::default(),
            false,
            json!({"model": "m", "stream": false, "messages": hi, "options": {}}),
        ),
        (
            Api::Openai,
            "gpt-oss",
            options(0.2, 7, 100),
            true,
            json!({"model": "gpt-oss", "stream": true,
                   "stream_options": {"include_usage": true},
                   "messages": hi,
                   "temperature": 0.2, "seed": 7, "max_tokens": 100}),
        ),
        (
            Api::Openai,
            "m",
            Options::default(),
            false,
            json!({"model": "m", "stream": false, "messages": hi}),
        ),
    ];
    for (api, model, options, stream, want) in cases {
        assert_eq!(
            api.request(model, "hi", &options, stream),
            want,
            "{} {model}",
            api.name()
        );
    }
}
