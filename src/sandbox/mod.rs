//! Where a candidate runs: the `Sandbox` trait, and what goes in and comes out.
//!
//! A sandbox takes a harness job (the answer's script and the turns to
//! type), runs the in-container supervisor on it, and hands back the
//! supervisor's one result document. It judges nothing: `harness` does.
//! Which backend runs it, and the backend's lifecycle (prepare, health,
//! reap, shutdown), is chosen in one place: `backend`.

pub mod backend;
pub mod docker;
pub mod lib_volume;
pub mod local;
pub mod machine_load;
pub mod warm_pool;

pub use backend::{backend, open, Backend, BackendKind, SandboxConfig};

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::task::Limits;
use crate::timings::Phase;

/// A boxed future, so that `Sandbox` can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Seconds the supervisor's own deadline leaves before the host's wall
/// clock, so that a slow answer is reported with the step it hung in.
pub const INNER_DEADLINE_MARGIN_SECONDS: f64 = 4.0;

/// One run of the harness on one answer.
#[derive(Debug, Clone)]
pub struct SandboxRequest {
    /// Identifies the run in container names and labels.
    pub run_id: String,
    /// The harness job (see `harness::Job`), sent to the supervisor on stdin.
    pub job: serde_json::Value,
    pub limits: Limits,
}

/// What the sandbox brought back, before any judgement.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxOutcome {
    /// The supervisor's result document, when exactly one arrived intact.
    pub result: Option<serde_json::Value>,
    /// Why there is no result, when there is none.
    pub missing_result: Option<String>,
    /// Set with `missing_result` when the answer made the output more than
    /// the host accepts (the result line past its size cap, or nested past
    /// `MAX_RESULT_DEPTH`): says which. The answer's fault (tier 3
    /// `output_too_large`), not the engine's: never run again.
    #[serde(default)]
    pub output_too_large: Option<String>,
    /// The label (`qtjudge.run`) of the container that served the run.
    pub container_label: String,
    /// The host's wall clock ran out and the run was killed.
    pub host_timeout: bool,
    /// What a busy machine added to the host's wall clock before it
    /// killed a run that gave no result (`machine_load`), in ms.
    pub busy_allowance_ms: u64,
    /// The engine reports the container was killed for memory.
    pub oom_killed: bool,
    /// Read from the engine when no result came: the container had at
    /// least half its pids limit in use (see `pids_runaway`).
    #[serde(default)]
    pub pids_limit_hit: bool,
    /// Read from the engine when no result came: memory use ran into the
    /// limit (cgroup v1's failcnt).
    #[serde(default)]
    pub memory_limit_hit: bool,
    pub exit_code: Option<i64>,
    /// The supervisor's own stderr (not the candidate's), capped.
    pub supervisor_stderr: String,
    pub wall_ms: u64,
    /// Where the run's time went, from the start of `Sandbox::run`: the
    /// host's side (obtaining a container, writing the job, reading the
    /// result) and the supervisor's (see `timings::supervisor_phases`).
    #[serde(default)]
    pub phases: Vec<Phase>,
}

/// Could not run at all: never the answer's fault. Each says what failed
/// in words of no particular backend; what the engine itself said, and how
/// to mend it, comes from the backend (in the message or the remedy).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The engine the sandboxes run on does not answer (an outage).
    #[error("cannot reach the sandbox engine: {0}")]
    EngineUnreachable(String),
    /// The image the answers run in is missing and could not be made.
    #[error("the sandbox image is missing and could not be built: {0}")]
    ImageMissing(String),
    /// Building the image was asked for, and failed.
    #[error("the sandbox image could not be built: {0}")]
    ImageBuildFailed(String),
    /// The engine refused or dropped one of its calls, or the connection
    /// to it broke mid-run.
    #[error("the sandbox engine failed while {doing}: {message}")]
    EngineFailed {
        doing: &'static str,
        message: String,
    },
    /// The harness could not be run, for a reason of this host's (files,
    /// processes), not of an engine.
    #[error("the sandbox could not run the harness: {0}")]
    RunFailed(String),
    /// The isolation asked for is not one the engine has: no answer runs
    /// under less than asked.
    #[error("the sandbox engine has no runtime `{wanted}` (it has: {available}); {remedy}")]
    UnknownRuntime {
        wanted: String,
        available: String,
        remedy: &'static str,
    },
    /// A setting the chosen backend does not have.
    #[error("{setting} does not apply to the {backend} sandbox")]
    Unsupported {
        setting: &'static str,
        backend: &'static str,
    },
}

impl SandboxError {
    /// The engine, or the connection to it, failed the run: trying the same
    /// answer again later may well succeed.
    pub fn is_engine_fault(&self) -> bool {
        matches!(
            self,
            SandboxError::EngineUnreachable(_) | SandboxError::EngineFailed { .. }
        )
    }
}

/// Runs the harness on one job somewhere isolated (or not: see `local`).
/// Made ready by its backend (`backend::Backend::prepare`, or
/// `backend::open`); what it keeps between runs goes with `shutdown`.
pub trait Sandbox: Send + Sync {
    /// A short name for reports: `docker` or `local`.
    fn name(&self) -> &'static str;
    fn run(&self, request: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>>;
    /// What the answers run in (an image), when the backend has one: shown
    /// by the service's health route.
    fn image_tag(&self) -> Option<&str> {
        None
    }
    /// Releases what the sandbox keeps between runs (its warm pool, stopped
    /// and emptied) and whatever else of its own is left; call before
    /// exiting.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// The engine answers again after an outage: drops what the outage
    /// may have broken (warm containers whose streams died) and removes
    /// what could not be removed while it was away.
    fn after_outage(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Whether a run stopped by the wall clock with `current` of its `limit`
/// pids in use was a process explosion: a fork bomb forks at whatever pace
/// the host's load allows, so whether it reaches the limit before the
/// deadline is luck; an app has a few dozen processes and threads.
pub fn pids_runaway(current: u64, limit: u64) -> bool {
    limit > 0 && current * 2 >= limit
}

/// Deepest nesting of arrays and objects a result may have. A widget tree
/// takes about three levels per nested widget, so real apps stay far below
/// it; serde_json refuses past 128, and a refusal there would read as a
/// broken result instead of the answer's doing.
pub const MAX_RESULT_DEPTH: usize = 64;

/// Why a run's output holds no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoResult {
    /// No result line, several, or one cut short before its newline: a
    /// harness or engine matter, not the answer's.
    #[error("{0}")]
    Missing(String),
    /// The result is more than the host accepts (size, nesting, or a whole
    /// result line that is not strict JSON): the answer's doing (see
    /// `SandboxOutcome::output_too_large`).
    #[error("{0}")]
    TooLarge(String),
}

/// Finds the supervisor's result line: `<nonce> <json>`. Exactly one line
/// may carry the nonce; anything else is reported as missing.
pub fn parse_result(stdout: &[u8], nonce: &str) -> Result<serde_json::Value, String> {
    read_result(stdout, nonce).map_err(|e| e.to_string())
}

/// `parse_result`, telling a result too deeply nested (the answer's doing)
/// from a missing one.
pub fn read_result(stdout: &[u8], nonce: &str) -> Result<serde_json::Value, NoResult> {
    let prefix = format!("{nonce} ");
    let mut found = None;
    // Whether the line found ended with its newline: only a whole line is
    // the supervisor's last word (one cut short was cut on the way).
    let mut whole = false;
    let mut lines = stdout.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix(prefix.as_bytes()) {
            if found.is_some() {
                return Err(NoResult::Missing(
                    "more than one result line carried the run's nonce".into(),
                ));
            }
            found = Some(rest);
            whole = lines.peek().is_some();
        }
    }
    let body = found.ok_or_else(|| {
        NoResult::Missing(
            "the supervisor printed no result (it died or was killed before the end)".into(),
        )
    })?;
    // Measured before parsing, so that serde_json's own limit is never what
    // refuses it.
    if nesting_exceeds(body, MAX_RESULT_DEPTH) {
        return Err(NoResult::TooLarge(format!(
            "the result is nested more than {MAX_RESULT_DEPTH} levels deep (arrays and objects), \
             past what the host reads; an app's widgets or its requests to the model made it so"
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        if whole {
            // The supervisor writes strict JSON whatever the candidate sent
            // or reported; a whole line the host cannot read is the
            // answer's doing (it put in what the host refuses), never an
            // engine fault to run again.
            NoResult::TooLarge(format!(
                "the result line is not JSON the host accepts ({e}); the app's requests or \
                 reports put into it what the host refuses"
            ))
        } else {
            NoResult::Missing(format!("the result line was cut short: {e}"))
        }
    })
}

/// Whether JSON text nests arrays and objects more than `limit` deep
/// (brackets inside strings do not count). Malformed text is left to the
/// parser: this only measures.
fn nesting_exceeds(json: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Starts the supervisor's readiness line, printed once before it reads a
/// job: `qtjudge-ready {"harness_ready": true, …}`. A nonce is 32 hex
/// digits, so this line can never be taken for a result.
pub const READY_PREFIX: &str = "qtjudge-ready ";

/// What a container's readiness line says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Readiness {
    /// The warm harness started and said it is ready.
    pub harness_ready: bool,
    /// The binding the warm harness imported.
    #[serde(default)]
    pub binding: String,
    /// ms from the supervisor's start to its harness's readiness.
    #[serde(default)]
    pub ready_ms: u64,
}

/// Reads a readiness line (without its newline).
pub fn parse_ready(line: &[u8]) -> Result<Readiness, String> {
    let body = line.strip_prefix(READY_PREFIX.as_bytes()).ok_or_else(|| {
        format!(
            "the container's first line is not its readiness line: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        )
    })?;
    serde_json::from_slice(body).map_err(|e| format!("the readiness line is not valid JSON: {e}"))
}

/// A fresh random nonce for one run.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_result_line_with_the_nonce_is_read() {
        let out = b"noise\nabc {\"schema\":1}\n";
        assert_eq!(parse_result(out, "abc").unwrap()["schema"], 1);
    }

    #[test]
    fn a_whole_result_line_that_is_not_strict_json_is_the_answers_fault() {
        // What Python's json.dumps writes by default for NaN and a lone surrogate.
        for body in [
            r#"{"schema":1,"t":NaN}"#,
            r#"{"schema":1,"s":"\ud800"}"#,
            r#"{"schema":1,"t":Infinity}"#,
        ] {
            let out = format!("abc {body}\n");
            match read_result(out.as_bytes(), "abc") {
                Err(NoResult::TooLarge(why)) => assert!(why.contains("not JSON"), "{why}"),
                other => panic!("{body}: {other:?}"),
            }
            // Cut before its newline: lost on the way, not the answer's.
            let cut = format!("abc {}", &body[..body.len() - 3]);
            assert!(matches!(
                read_result(cut.as_bytes(), "abc"),
                Err(NoResult::Missing(_))
            ));
        }
    }

    #[test]
    fn a_second_result_line_is_refused() {
        let out = b"abc {\"schema\":1}\nabc {\"schema\":1}\n";
        assert!(parse_result(out, "abc").is_err());
    }

    #[test]
    fn the_readiness_line_is_read_and_never_taken_for_a_result() {
        let line = br#"qtjudge-ready {"harness_ready": true, "binding": "PyQt5", "ready_ms": 412}"#;
        assert_eq!(
            parse_ready(line).unwrap(),
            Readiness {
                harness_ready: true,
                binding: "PyQt5".into(),
                ready_ms: 412
            }
        );
        let unready = br#"qtjudge-ready {"harness_ready": false}"#;
        assert!(!parse_ready(unready).unwrap().harness_ready);
        assert!(parse_ready(b"abc {\"schema\":1}").is_err());
        assert!(parse_ready(b"qtjudge-ready not json").is_err());
        // Before the result in one output: the result is still the one line.
        let mut out = line.to_vec();
        out.extend_from_slice(b"\n");
        let nonce = new_nonce();
        assert!(parse_result(&out, &nonce).is_err(), "no result yet");
        out.extend_from_slice(format!("{nonce} {{\"schema\":1}}\n").as_bytes());
        assert_eq!(parse_result(&out, &nonce).unwrap()["schema"], 1);
        // No nonce the host makes can be the readiness prefix.
        assert!(!READY_PREFIX.starts_with(&nonce));
        assert!(nonce.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn a_result_nested_past_the_limit_is_too_large_and_one_at_it_is_read() {
        let at_limit = format!("abc {{\"tree\":{}}}\n", nested(MAX_RESULT_DEPTH - 1));
        assert!(read_result(at_limit.as_bytes(), "abc").is_ok());
        // Past serde_json's own limit of 128, too: refused as too deep, not as broken JSON.
        for depth in [MAX_RESULT_DEPTH, 129, 100_000] {
            let deep = format!("abc {{\"tree\":{}}}\n", nested(depth));
            match read_result(deep.as_bytes(), "abc") {
                Err(NoResult::TooLarge(why)) => assert!(why.contains("64 levels"), "{why}"),
                other => panic!("depth {depth}: {other:?}"),
            }
        }
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let text = format!(
            "abc {{\"title\":\"{}\\\"{}\",\"n\":[1]}}\n",
            "[".repeat(500),
            "{".repeat(500)
        );
        let result = read_result(text.as_bytes(), "abc").unwrap();
        assert_eq!(result["n"][0], 1);
        assert!(!nesting_exceeds(br#"["\\", "[[[["]"#, 1));
        assert!(nesting_exceeds(br#"[["\\"]]"#, 1));
    }

    #[test]
    fn an_output_too_large_is_judged_the_answers_failure_even_at_the_wall_clock() {
        let why = "the result is nested more than 64 levels deep".to_string();
        for host_timeout in [false, true] {
            let outcome = SandboxOutcome {
                missing_result: Some(why.clone()),
                output_too_large: Some(why.clone()),
                host_timeout,
                ..Default::default()
            };
            let behaviour = crate::harness::judge(&outcome, &[], 30).expect("judged");
            assert_eq!(
                behaviour.failure,
                Some(crate::grading::FailureCode::OutputTooLarge)
            );
            assert_eq!(behaviour.failure_detail.as_deref(), Some(why.as_str()));
            assert!(!behaviour.passed);
        }
        // Without the answer to blame, a missing result is still not judged.
        let missing = SandboxOutcome {
            missing_result: Some("the supervisor printed no result".into()),
            ..Default::default()
        };
        assert!(crate::harness::judge(&missing, &[], 30).is_err());
    }

    #[test]
    fn broken_json_cut_short_is_missing_and_a_whole_broken_line_the_answers() {
        // The supervisor writes its line in one go, strict JSON whatever
        // the candidate did: only one cut before its newline was lost on
        // the way.
        assert!(matches!(
            read_result(b"abc {\"schema\":", "abc"),
            Err(NoResult::Missing(_))
        ));
        assert!(matches!(
            read_result(b"abc {\"schema\":\n", "abc"),
            Err(NoResult::TooLarge(_))
        ));
    }

    #[test]
    fn a_line_without_the_nonce_is_not_a_result() {
        assert!(parse_result(b"xyz {\"schema\":1}\n", "abc").is_err());
        assert!(parse_result(b"", "abc").is_err());
    }
}
