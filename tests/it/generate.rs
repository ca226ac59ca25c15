//! `qtjudge generate` and `showdown` through the real binary, against a
//! model server of our own on loopback (real HTTP: Ollama's `/api/chat`
//! and an OpenAI-compatible `/v1/chat/completions`, streamed and whole)
//! that answers with the fixture answers, fails on demand (429 with
//! `Retry-After`, 500, 503, a stream cut off, an unknown model) and counts
//! the requests it gets; `showdown` end to end in the real sandbox.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::{docker, fixture, manifest, repo};

/// A failure the server makes of its next request.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// 429 with `Retry-After: <seconds>`.
    TooMany(u64),
    /// 500.
    ServerError,
    /// 200, then the body ends after the first piece of the answer.
    Cut,
}

/// One request as the server got it.
#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    body: Value,
    authorization: Option<String>,
}

#[derive(Default)]
struct ServerState {
    /// What each model answers (a fixture answer).
    answers: HashMap<String, String>,
    /// Models that answer 503 to every request.
    down: Vec<String>,
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<Recorded>>,
}

struct ModelServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl ModelServer {
    /// Serves `models` (name → fixture file) on a free loopback port.
    async fn start(models: &[(&str, &str)], down: &[&str]) -> ModelServer {
        let state = Arc::new(ServerState {
            answers: models
                .iter()
                .map(|(model, file)| (model.to_string(), fixture(file)))
                .collect(),
            down: down.iter().map(|m| m.to_string()).collect(),
            ..ServerState::default()
        });
        let app = axum::Router::new().fallback(chat).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ModelServer { addr, state }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn fail_next(&self, faults: &[Fault]) {
        self.state.faults.lock().unwrap().extend(faults);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    fn requests_for(&self, model: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.body["model"] == model)
            .count()
    }
}

/// The one handler: `/api/chat` answers as Ollama, `/v1/chat/completions`
/// as an OpenAI-compatible server.
async fn chat(
    axum::extract::State(state): axum::extract::State<Arc<ServerState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_string(),
        body: body.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string()),
    });
    let ollama = match uri.path() {
        "/api/chat" => true,
        "/v1/chat/completions" => false,
        _ => return (StatusCode::NOT_FOUND, "no such route").into_response(),
    };
    let error = |status: StatusCode, message: &str| {
        let body = if ollama {
            json!({"error": message})
        } else {
            json!({"error": {"message": message, "type": "server_error"}})
        };
        (status, axum::Json(body)).into_response()
    };
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"] == json!(true);
    let fault = state.faults.lock().unwrap().pop_front();
    match fault {
        Some(Fault::TooMany(seconds)) => {
            let mut refused = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
            refused
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
            return refused;
        }
        Some(Fault::ServerError) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the GPU fell over")
        }
        Some(Fault::Cut) | None => {}
    }
    if state.down.contains(&model) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    }
    let Some(output) = state.answers.get(&model) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("model \"{model}\" not found, try pulling it first"),
        );
    };
    let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
    let prompt_tokens = prompt.chars().count();
    let pieces = pieces(output);
    let completion_tokens = pieces.len();
    let mut events: Vec<String> = Vec::new();
    let content_type = if ollama {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    match (ollama, stream) {
        (true, false) => {
            return axum::Json(json!({
                "model": model, "message": {"role": "assistant", "content": output},
                "done": true, "done_reason": "stop",
                "prompt_eval_count": prompt_tokens, "eval_count": completion_tokens,
            }))
            .into_response()
        }
        (false, false) => {
            return axum::Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": output},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
            }))
            .into_response()
        }
        (true, true) => {
            for piece in &pieces {
                let chunk = json!({"model": model, "message": {"role": "assistant", "content": piece}, "done": false});
                events.push(format!("{chunk}\n"));
            }
            let last = json!({"model": model, "message": {"role": "assistant", "content": ""},
                              "done": true, "done_reason": "stop",
                              "prompt_eval_count": prompt_tokens, "eval_count": completion_tokens});
            events.push(format!("{last}\n"));
        }
        (false, true) => {
            for piece in &pieces {
                let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                   "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                events.push(format!("data: {chunk}\n\n"));
            }
            let stop = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            events.push(format!("data: {stop}\n\n"));
            if body["stream_options"]["include_usage"] == json!(true) {
                let usage = json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}});
                events.push(format!("data: {usage}\n\n"));
            }
            events.push("data: [DONE]\n\n".into());
        }
    }
    if matches!(fault, Some(Fault::Cut)) {
        events.truncate(1);
    }
    // Each event its own write, a little apart: a real stream, not one body.
    let body = futures_util::stream::iter(events).then(|event| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok::<_, std::convert::Infallible>(Bytes::from(event))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// The answer in pieces of about 64 bytes, split on character boundaries.
fn pieces(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for c in text.chars() {
        if out.last().unwrap().len() >= 64 {
            out.push(String::new());
        }
        out.last_mut().unwrap().push(c);
    }
    out
}

/// The real binary, run off the async threads (the server runs on them).
async fn qtjudge(args: Vec<String>, envs: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_qtjudge"));
        command
            .args(&args)
            .env("QTJUDGE_TASKS_DIR", repo().join("fixtures/tasks"))
            .env("QTJUDGE_LOG", "warn")
            .env_remove("QTJUDGE_API_KEY");
        for (key, value) in envs {
            command.env(key, value);
        }
        command.output().expect("qtjudge runs")
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The file's lines, each checked to be one whole JSON object.
fn lines_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "every line is whole: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The message the experiment sent: the prompt, then the whole original.
fn message() -> String {
    qtjudge::generate::message(&crate::support::task()).unwrap()
}

/// Each API, streamed and whole: every answer is the fixture answer to
/// the byte, keyed by (model, task, sample), with its metadata (seeds
/// counted from --seed, the temperature, latency, the server's token
/// counts, the API); the server got the prompt and the whole original, the
/// options in its API's words, and the key as a bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_streamed_and_whole_give_the_answers_and_their_metadata() {
    let server = ModelServer::start(
        &[("devstral", "devstral.md"), ("gpt-oss:20b", "gpt-oss.md")],
        &[],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let expected_tokens_prompt = message().chars().count() as u64;
    for (api, stream) in [
        ("ollama", true),
        ("ollama", false),
        ("openai", true),
        ("openai", false),
    ] {
        let out_file = dir.path().join(format!("{api}-{stream}.jsonl"));
        let mut list = args(&[
            "generate",
            "--task",
            "reset-conversation",
            "--endpoint",
            &server.endpoint(),
            "--api",
            api,
            "--models",
            "devstral,gpt-oss:20b",
            "--samples",
            "2",
            "--temperature",
            "0.7",
            "--seed",
            "42",
            "--max-tokens",
            "8000",
            "--out",
            out_file.to_str().unwrap(),
        ]);
        if !stream {
            list.push("--no-stream".into());
        }
        let before = server.requests().len();
        let out = qtjudge(list, vec![("QTJUDGE_API_KEY", "sk-test".into())]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{api} stream={stream}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("4 answer(s) written, 0 already in"),
            "{}",
            stderr(&out)
        );
        let requests = &server.requests()[before..];
        assert_eq!(requests.len(), 4, "one request an answer");
        for request in requests {
            let path = if api == "ollama" {
                "/api/chat"
            } else {
                "/v1/chat/completions"
            };
            assert_eq!(request.path, path);
            assert_eq!(request.body["messages"][0]["content"], message());
            assert_eq!(request.body["stream"], json!(stream));
            assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test"));
            let (temperature, seed, limit) = if api == "ollama" {
                let o = &request.body["options"];
                (&o["temperature"], &o["seed"], &o["num_predict"])
            } else {
                let b = &request.body;
                (&b["temperature"], &b["seed"], &b["max_tokens"])
            };
            assert_eq!((temperature, limit), (&json!(0.7), &json!(8000)));
            assert!(seed == &json!(42) || seed == &json!(43), "{seed}");
        }
        let mut lines = lines_of(&out_file);
        lines.sort_by_key(|l| (l["model"].to_string(), l["sample"].to_string()));
        let keys: Vec<(&str, &str, u64)> = lines
            .iter()
            .map(|l| {
                (
                    l["model"].as_str().unwrap(),
                    l["task"].as_str().unwrap(),
                    l["sample"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("devstral", "reset-conversation", 1),
                ("devstral", "reset-conversation", 2),
                ("gpt-oss:20b", "reset-conversation", 1),
                ("gpt-oss:20b", "reset-conversation", 2),
            ]
        );
        for line in &lines {
            let file = if line["model"] == "devstral" {
                "devstral.md"
            } else {
                "gpt-oss.md"
            };
            assert_eq!(line["output"], fixture(file), "{api} stream={stream}");
            let m = &line["metadata"];
            let sample = line["sample"].as_u64().unwrap();
            assert_eq!(m["seed"], json!(41 + sample), "sample n gets seed + n - 1");
            assert_eq!(m["temperature"], json!(0.7));
            assert_eq!(
                (m["api"].as_str(), m["stream"].as_bool()),
                (Some(api), Some(stream))
            );
            assert!(
                m["endpoint"]
                    .as_str()
                    .unwrap()
                    .starts_with(&server.endpoint()),
                "{m}"
            );
            assert!(m["latency_ms"].is_u64(), "{m}");
            assert_eq!(m["attempts"], json!(1));
            assert_eq!(m["tokens"]["prompt"], json!(expected_tokens_prompt));
            assert_eq!(
                m["tokens"]["completion"],
                json!(pieces(&fixture(file)).len()),
                "{m}"
            );
            assert_eq!(m["finish_reason"], "stop");
        }
    }
}

/// A 429 with `Retry-After: 1`, a 500 and a stream cut off mid-answer are
/// each asked again (the wait the server asked for honoured), and the
/// answer written once. A rerun with the same --out sends nothing; a torn
/// last line (a run stopped mid-write) is dropped and asked again, and
/// more samples ask only for the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_resume_asks_only_for_what_the_file_lacks() {
    let server = ModelServer::start(&[("qwen3-coder", "qwen3-coder.md")], &[]).await;
    server.fail_next(&[Fault::TooMany(1), Fault::ServerError, Fault::Cut]);
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("run/answers.jsonl");
    let command = |samples: &str| {
        args(&[
            "generate",
            "--task",
            "reset-conversation",
            "--endpoint",
            &server.endpoint(),
            "--api",
            "ollama",
            "--models",
            "qwen3-coder",
            "--samples",
            samples,
            "--concurrency",
            "1",
            "--out",
            out_file.to_str().unwrap(),
        ])
    };
    let started = Instant::now();
    let out = qtjudge(command("2"), vec![]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not waited out"
    );
    assert_eq!(server.requests().len(), 5, "3 failed attempts + 2 answers");
    let lines = lines_of(&out_file);
    let attempts: Vec<(u64, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["sample"].as_u64().unwrap(),
                l["metadata"]["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, 4), (2, 1)]);
    assert!(lines
        .iter()
        .all(|l| l["output"] == fixture("qwen3-coder.md")));

    // The same run again: nothing sent, nothing written.
    let before = std::fs::read(&out_file).unwrap();
    let out = qtjudge(command("2"), vec![]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("0 answer(s) written, 2 already in"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests().len(), 5, "a resumed run resent a request");
    assert_eq!(std::fs::read(&out_file).unwrap(), before);

    // A stop mid-write left half of sample 3's line: dropped, asked again.
    let mut torn = before.clone();
    torn.extend_from_slice(
        br#"{"model":"qwen3-coder","task":"reset-conversation","sample":3,"output":"```py"#,
    );
    std::fs::write(&out_file, &torn).unwrap();
    let out = qtjudge(command("4"), vec![]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 7, "only samples 3 and 4 asked");
    let lines = lines_of(&out_file);
    let samples: Vec<u64> = lines
        .iter()
        .map(|l| l["sample"].as_u64().unwrap())
        .collect();
    assert_eq!(samples, [1, 2, 3, 4]);
    assert!(std::fs::read(&out_file).unwrap().starts_with(&before));
}

/// A model the server does not have fails at once (no retry: asking again
/// cannot help) with what to do; one whose server stays down is asked
/// --attempts times; both are recorded as failed (`error`, no `output`)
/// without ending the run, the exit code says some are missing, and a
/// rerun asks for exactly those again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_that_cannot_be_had_is_recorded_as_failed() {
    let server = ModelServer::start(&[("devstral", "devstral.md")], &["down"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("answers.jsonl");
    let command = args(&[
        "generate",
        "--task",
        "reset-conversation",
        "--endpoint",
        &server.endpoint(),
        "--api",
        "openai",
        "--models",
        "ghost,down,devstral",
        "--attempts",
        "2",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    let out = qtjudge(command.clone(), vec![]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 answer(s) written, 0 already in"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        (
            server.requests_for("ghost"),
            server.requests_for("down"),
            server.requests_for("devstral")
        ),
        (1, 2, 1)
    );
    let lines = lines_of(&out_file);
    let by_model = |model: &str| lines.iter().find(|l| l["model"] == model).unwrap().clone();
    let ghost = by_model("ghost");
    let error = ghost["error"].as_str().unwrap();
    assert!(ghost["output"].is_null(), "{ghost}");
    assert!(
        error.contains("404")
            && error.contains("model \"ghost\" not found")
            && error.contains("--api openai"),
        "{error}"
    );
    assert_eq!(ghost["metadata"]["attempts"], json!(1));
    let down = by_model("down");
    let error = down["error"].as_str().unwrap();
    assert!(
        error.contains("gave up after 2 attempt(s)")
            && error.contains("503")
            && error.contains("overloaded"),
        "{error}"
    );
    assert_eq!(by_model("devstral")["output"], fixture("devstral.md"));

    let out = qtjudge(command, vec![]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds 2 failed answer(s); asking for them again"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        (
            server.requests_for("ghost"),
            server.requests_for("down"),
            server.requests_for("devstral")
        ),
        (2, 4, 1),
        "only the failed samples were asked again"
    );
}

/// `showdown` end to end: two models × two samples generated on the loopback
/// server (OpenAI's streamed API) into the run folder, judged in the real
/// sandbox, ending with the leaderboard, each model's row holding the tier
/// the fixtures' manifest gives its answer; rerun, it asks and runs nothing
/// again and gives the same leaderboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn showdown_generates_grades_and_ends_with_the_leaderboard() {
    if docker().await.is_none() {
        return;
    }
    let expected: Vec<(String, String, u8)> = manifest()
        .into_iter()
        .filter(|e| e.model == "devstral" || e.model == "gpt-oss")
        .map(|e| (e.model, e.file, e.tier))
        .collect();
    assert_eq!(
        expected.len(),
        2,
        "devstral and gpt-oss are in the manifest"
    );
    let models: Vec<(&str, &str)> = expected
        .iter()
        .map(|(m, f, _)| (m.as_str(), f.as_str()))
        .collect();
    let server = ModelServer::start(&models, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let command = args(&[
        "showdown",
        "--task",
        "reset-conversation",
        "--endpoint",
        &server.endpoint(),
        "--api",
        "openai",
        "--models",
        "devstral,gpt-oss",
        "--samples",
        "2",
        "--temperature",
        "0.6",
        "--seed",
        "7",
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--jobs",
        "2",
        "--format",
        "json",
        "--pass-at",
        "1,2",
    ]);
    let out = qtjudge(command.clone(), vec![]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(lines_of(&run_dir.join("answers.jsonl")).len(), 4);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        let sample: u64 = r["sample"].as_str().unwrap().parse().unwrap();
        assert_eq!(r["metadata"]["seed"], json!(6 + sample), "{}", r["model"]);
        assert_eq!(r["metadata"]["api"], "openai");
    }
    let rows = report["leaderboard"]["models"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (model, file, tier) in &expected {
        let row = rows
            .iter()
            .find(|r| r["model"] == model.as_str())
            .unwrap_or_else(|| panic!("no leaderboard row for {model}: {rows:?}"));
        let tier_key = format!("tier{tier}");
        assert_eq!(
            (row["n"].as_u64(), row[tier_key.as_str()].as_u64()),
            (Some(2), Some(2)),
            "{model} ({file}) must be tier {tier} twice: {row}"
        );
        assert_eq!(
            row["pass_at"][0]["value"],
            json!(if *tier <= 2 { 1.0 } else { 0.0 })
        );
    }
    let asked = server.requests().len();
    assert_eq!(asked, 4);

    let started = Instant::now();
    let again = qtjudge(command, vec![]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(server.requests().len(), asked, "a rerun asked again");
    let report_again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report_again["leaderboard"], report["leaderboard"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a rerun judged again: {:?}",
        started.elapsed()
    );
}
