//! The behavioural check: the job the in-sandbox harness runs, and the
//! judgement of what it brought back (`Behaviour`).
//!
//! The host decides, not the sandbox: the next-request plane and the
//! baseline are read from the fake server's recordings, with markers the
//! host chose for this run.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bundle::Bundle;
use crate::sandbox::{SandboxOutcome, INNER_DEADLINE_MARGIN_SECONDS};
use crate::screen::ScreenCheck;
use crate::task::Task;

/// Why a behavioural run failed; one primary code per run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    SyntaxError,
    LaunchFailed,
    HistoryBroken,
    NoResetControl,
    ResetRaised,
    HistoryNotCleared,
    BrokenAfterReset,
    Timeout,
    ResourceLimit,
    Crashed,
    /// The app imports a module the sandbox image does not have.
    MissingDependency,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::SyntaxError => "syntax_error",
            Failure::LaunchFailed => "launch_failed",
            Failure::HistoryBroken => "history_broken",
            Failure::NoResetControl => "no_reset_control",
            Failure::ResetRaised => "reset_raised",
            Failure::HistoryNotCleared => "history_not_cleared",
            Failure::BrokenAfterReset => "broken_after_reset",
            Failure::Timeout => "timeout",
            Failure::ResourceLimit => "resource_limit",
            Failure::Crashed => "crashed",
            Failure::MissingDependency => "missing_dependency",
        }
    }
}

/// One typed-in turn: the prompt and the reply the fake server sends back,
/// each carrying a marker unique to this run.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Turn {
    pub prompt: String,
    pub prompt_marker: String,
    pub reply: String,
    pub reply_marker: String,
}

/// Makes the three turns of a run with a fresh token.
pub fn new_turns() -> Vec<Turn> {
    let token = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let texts = [
        (
            "Hello! My name is Ada. Please remember the code word",
            "Nice to meet you, Ada. I will remember the code word",
        ),
        (
            "Which code word did I give you? Here is another one",
            "You gave me a code word earlier. Noted as well",
        ),
        (
            "Let us start over. What is two plus two? Marker",
            "Two plus two is four. Marker",
        ),
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, (prompt, reply))| {
            let prompt_marker = format!("qtj-p{}-{token}", i + 1);
            let reply_marker = format!("qtj-r{}-{token}", i + 1);
            Turn {
                prompt: format!("{prompt} {prompt_marker}."),
                reply: format!("{reply} {reply_marker}. {}", crate::screen::REPLY_BAR),
                prompt_marker,
                reply_marker,
            }
        })
        .collect()
}

/// The Qt bindings the sandbox image carries. The warm harness imports the
/// first; an app that imports another gets a harness started cold with it
/// (two bindings cannot share a process).
pub const BINDINGS: [&str; 4] = ["PyQt5", "PyQt6", "PySide2", "PySide6"];

/// The binding an app's sources import: the first `import`/`from` line (in
/// file order, then line order) that names one. An app that tries one
/// binding and falls back on another (`try: from PyQt6 … except
/// ImportError: from PyQt5 …`) runs with the one it tries first. PyQt5 when
/// none is named (the app may import Qt through a wrapper).
pub fn detect_binding<'a>(sources: impl IntoIterator<Item = &'a str>) -> &'static str {
    for source in sources {
        for line in source.lines() {
            let line = line.trim_start();
            let modules = if let Some(rest) = line.strip_prefix("from ") {
                rest.split_whitespace().next().unwrap_or("")
            } else if let Some(rest) = line.strip_prefix("import ") {
                rest.split('#').next().unwrap_or("")
            } else {
                continue;
            };
            // `import os, PySide6.QtWidgets as W`: each comma-separated name.
            for module in modules.split(',') {
                let root = module.trim().split(['.', ' ']).next().unwrap_or("");
                if let Some(binding) = BINDINGS.iter().find(|b| **b == root) {
                    return binding;
                }
            }
        }
    }
    BINDINGS[0]
}

/// The job the supervisor receives on stdin (the sandbox adds the nonce):
/// the app's files (base64, under `files`), the one run as `__main__`
/// (`entry`), the turns and what the task names.
pub fn job(task: &Task, bundle: &Bundle, turns: &[Turn]) -> Value {
    let wall = task.limits.wall_seconds as f64;
    // The entry first, then the app's other Python files.
    let sources: Vec<String> = bundle.python_sources();
    json!({
        "files": bundle.files,
        "entry": bundle.entry,
        "binding": detect_binding(sources.iter().map(String::as_str)),
        "turns": turns,
        "app": {
            "window_class": task.app.window_class,
            "prompt_entry": task.app.prompt_entry,
            "submit_control": task.app.submit_control,
            "history_attributes": task.app.history_attributes,
            "history_display": task.app.history_display,
            "reset_control": task.reset_control.attribute,
        },
        "reset_pattern": task.reset_control.text_pattern,
        "deadline_seconds": (wall - INNER_DEADLINE_MARGIN_SECONDS).max(1.0),
        "turn_timeout_seconds": (wall / 4.0).clamp(2.0, 10.0),
        "window_size": [1000, 700],
    })
}

/// Whether history was cleared, per plane; `None` where not reached.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Planes {
    pub memory: Option<bool>,
    pub screen: Option<bool>,
    pub next_request: Option<bool>,
}

impl Planes {
    pub fn all_cleared(&self) -> bool {
        self.memory == Some(true) && self.screen == Some(true) && self.next_request == Some(true)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub ms: f64,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub evidence: Value,
}

/// A file the run produced (a screenshot); the bytes travel beside the JSON.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub media_type: String,
    pub size: usize,
    /// Where it was saved, once saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// The behavioural result: the JSON contract of `qtjudge verify`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Behaviour {
    pub passed: bool,
    pub failure: Option<Failure>,
    pub failure_detail: Option<String>,
    pub history_cleared: Option<Planes>,
    pub steps: Vec<Step>,
    pub artifacts: Vec<Artifact>,
    /// The host's reading of the screenshots (see `screen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_check: Option<ScreenCheck>,
    /// The widget tree right after launch, for the layout comparison.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub widget_tree: Value,
    /// Summaries of the requests the app sent to the fake server.
    pub requests: Vec<RequestSummary>,
    #[serde(default)]
    pub exceptions: Vec<Value>,
    #[serde(default)]
    pub dialogs: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    #[serde(default)]
    pub resources: Value,
    pub duration_ms: u64,
    /// What the harness found to drive, and how (named by the task or
    /// discovered). Reported by the harness, so descriptive only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<Discovered>,
}

/// The parts of the app the harness drove and read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
pub struct Discovered {
    /// The Qt binding the app ran with, and its versions (`PyQt6 6.4.2,
    /// Qt 6.4.2`).
    pub binding: Option<String>,
    pub prompt_input: Option<Control>,
    /// A button, or `key`: `Return` / `Ctrl+Return` typed into the input.
    pub send: Option<Control>,
    /// The visible widgets that showed the turns before the reset.
    pub display: Vec<Control>,
    pub reset: Option<Control>,
    /// Places reachable from the window that held a turn before the reset
    /// (`self.messages`, `self.client.history`, `module.HISTORY`).
    pub memory: Vec<String>,
    /// The places the task names (`history_attributes`), checked as well.
    pub memory_configured: Vec<String>,
}

/// One control or widget, as a person would name it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
pub struct Control {
    /// `button`, `action`, `key`, `widget`.
    pub kind: String,
    pub class: String,
    /// The window attribute holding it, if any (`input_box`).
    pub attribute: Option<String>,
    pub object_name: Option<String>,
    /// Its text, tooltip or key.
    pub text: Option<String>,
    /// `configured` (named by the task) or `discovered`.
    pub how: String,
}

impl Discovered {
    /// Reads the harness's report; anything malformed is dropped, and
    /// every string is capped (the candidate's process wrote it).
    fn from_report(report: &Value) -> Option<Discovered> {
        let mut d: Discovered = serde_json::from_value(report.clone()).ok()?;
        let cap = |s: &mut String| {
            if s.chars().count() > 120 {
                *s = s.chars().take(120).collect::<String>() + "…";
            }
        };
        d.display.truncate(12);
        d.memory.truncate(20);
        d.memory.iter_mut().for_each(cap);
        d.binding.iter_mut().for_each(cap);
        let controls = d
            .prompt_input
            .iter_mut()
            .chain(d.send.iter_mut())
            .chain(d.reset.iter_mut())
            .chain(d.display.iter_mut());
        for c in controls {
            for s in [&mut c.kind, &mut c.class, &mut c.how] {
                cap(s);
            }
            for s in [&mut c.attribute, &mut c.object_name, &mut c.text]
                .into_iter()
                .flatten()
            {
                cap(s);
            }
        }
        Some(d)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct RequestSummary {
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// Which turn's prompt this request carried as its newest message.
    pub turn: Option<usize>,
    /// Markers of earlier turns found anywhere in the body.
    pub carries: Vec<String>,
}

/// The run could not be judged: an infrastructure fault, not the answer's.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("the harness could not judge this run: {0}")]
pub struct NotJudged(pub String);

/// Judges a sandbox outcome against the turns the host chose.
pub fn judge(
    outcome: &SandboxOutcome,
    turns: &[Turn],
    wall_seconds: u64,
) -> Result<Behaviour, NotJudged> {
    let Some(result) = &outcome.result else {
        return judge_without_result(outcome, wall_seconds);
    };
    let reports = result["reports"].as_array().cloned().unwrap_or_default();
    let mut behaviour = Behaviour {
        passed: false,
        failure: None,
        failure_detail: None,
        history_cleared: None,
        steps: Vec::new(),
        artifacts: Vec::new(),
        screen_check: None,
        widget_tree: Value::Null,
        requests: summarise_requests(&result["requests"], turns),
        exceptions: Vec::new(),
        dialogs: Vec::new(),
        stdout: result["stdout"].as_str().unwrap_or_default().to_string(),
        stderr: result["stderr"].as_str().unwrap_or_default().to_string(),
        resources: result["resources"].clone(),
        duration_ms: outcome.wall_ms,
        discovered: None,
    };
    let mut started_step: Option<String> = None;
    let mut done = false;
    let mut planes_seen: Option<(bool, bool)> = None;
    for report in &reports {
        match report["type"].as_str().unwrap_or_default() {
            "step_start" => started_step = report["name"].as_str().map(String::from),
            "step" => {
                if report["harness_error"].as_bool() == Some(true) {
                    return Err(NotJudged(format!(
                        "harness error in step {}: {}",
                        report["name"].as_str().unwrap_or("?"),
                        report["detail"].as_str().unwrap_or("?")
                    )));
                }
                if let Ok(step) = serde_json::from_value::<Step>(report.clone()) {
                    started_step = None;
                    behaviour.steps.push(step);
                }
            }
            "planes" => {
                planes_seen = Some((
                    report["memory"].as_bool().unwrap_or(false),
                    report["screen"].as_bool().unwrap_or(false),
                ));
            }
            "artifact" => {
                if let Some(artifact) = decode_artifact(report) {
                    behaviour.artifacts.push(artifact);
                }
            }
            "widget_tree" => behaviour.widget_tree = report["tree"].clone(),
            "discovered" => behaviour.discovered = Discovered::from_report(report),
            "exceptions" => {
                behaviour.exceptions = report["items"].as_array().cloned().unwrap_or_default();
                behaviour.dialogs = report["dialogs"].as_array().cloned().unwrap_or_default();
            }
            "done" => done = true,
            _ => {}
        }
    }
    if result["harness_ready"].as_bool() != Some(true) {
        return Err(NotJudged(format!(
            "the harness did not start in the sandbox: {}",
            last_line(result["stderr"].as_str().unwrap_or_default())
        )));
    }

    let resources = &result["resources"];
    let oom = resources["oom_kills"].as_u64().unwrap_or(0) > 0 || outcome.oom_killed;
    // Taken by the supervisor before it killed a run at its deadline.
    let at_deadline = &result["pids_at_deadline"];
    let (in_use, allowed) = (
        at_deadline["current"].as_u64().unwrap_or(0),
        at_deadline["max"].as_u64().unwrap_or(0),
    );
    let pids_hit = resources["pids_limit_hits"].as_u64().unwrap_or(0) > 0;
    let runaway = !pids_hit && crate::sandbox::pids_runaway(in_use, allowed);
    let pids = pids_hit || runaway;
    let hit_limit = oom || pids;
    let pids_note = if runaway {
        format!(
            "{in_use} of the {allowed} processes the pids limit allows were in use at the deadline"
        )
    } else {
        "the process (pids) limit was hit".to_string()
    };
    let limit_note = match (oom, pids) {
        (true, true) => format!("the memory limit was hit and {pids_note}; "),
        (true, false) => "the memory limit was hit; ".to_string(),
        (false, true) => format!("{pids_note}; "),
        (false, false) => String::new(),
    };
    let timed_out = result["timed_out"].as_bool() == Some(true) || outcome.host_timeout;
    let failed_step = behaviour.steps.iter().find(|s| !s.ok).cloned();

    let fail = |b: &mut Behaviour, failure: Failure, detail: String| {
        b.failure = Some(failure);
        b.failure_detail = Some(detail);
    };

    // The baseline, from the recordings: turn 2's request must carry turn 1.
    let baseline_broken = baseline_problem(&behaviour.requests, turns, &behaviour.steps);
    let next_request = next_request_cleared(&behaviour.requests, &behaviour.steps);
    behaviour.screen_check = screen_check(&behaviour.artifacts);
    let pixels_overrule = |screen: bool| {
        screen
            && behaviour
                .screen_check
                .is_some_and(|c| c.cleared() == Some(false))
    };
    let screen_overruled = planes_seen.is_some_and(|(_, screen)| pixels_overrule(screen));
    if let Some((memory, screen)) = planes_seen {
        // The pixels can only overrule a "cleared": a reply still drawn
        // after the reset is on screen, whatever the widgets report.
        let screen = screen && !screen_overruled;
        behaviour.history_cleared = Some(Planes {
            memory: Some(memory),
            screen: Some(screen),
            next_request,
        });
    }

    if let Some(step) = &failed_step {
        let failure = match step.name.as_str() {
            "compile" => Failure::SyntaxError,
            "launch" | "find_window" => Failure::LaunchFailed,
            "turn_1" | "turn_2" => Failure::HistoryBroken,
            "find_reset" => Failure::NoResetControl,
            "click_reset" => Failure::ResetRaised,
            "turn_3" => Failure::BrokenAfterReset,
            other => return Err(NotJudged(format!("unexpected failed step `{other}`"))),
        };
        let missing = if step.name == "launch" {
            missing_modules(step)
        } else {
            Vec::new()
        };
        let (failure, detail) = match (hit_limit, missing.is_empty()) {
            (true, _) => (
                Failure::ResourceLimit,
                format!("{limit_note}{}: {}", step.name, step.detail),
            ),
            (false, false) => {
                let names: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
                let (them, has) = if names.len() == 1 {
                    ("its Debian package", "does")
                } else {
                    ("a Debian package for each", "do")
                };
                (
                    Failure::MissingDependency,
                    format!(
                        "launch: the app imports {}, which the sandbox image {has} not have \
                         (add {them} to docker/base-packages.txt or a pinned PyPI release to \
                         docker/requirements.txt, then `qtjudge image build`; or drop the import)",
                        names.join(", ")
                    ),
                )
            }
            (false, true) => (failure, format!("{}: {}", step.name, step.detail)),
        };
        fail(&mut behaviour, failure, detail);
    } else if timed_out {
        let at = started_step.as_deref().unwrap_or("start-up");
        let failure = if hit_limit {
            Failure::ResourceLimit
        } else {
            Failure::Timeout
        };
        fail(
            &mut behaviour,
            failure,
            format!(
                "{limit_note}no result within the {wall_seconds} s limit: it hung in step `{at}`"
            ),
        );
    } else if !done {
        let at = started_step.as_deref().unwrap_or("start-up");
        let exit = &result["exit"];
        let how = match exit["signal"].as_i64() {
            Some(11) => "a segmentation fault".to_string(),
            Some(signal) => format!("signal {signal}"),
            None => format!("exit status {}", exit["code"]),
        };
        let failure = if hit_limit {
            Failure::ResourceLimit
        } else {
            Failure::Crashed
        };
        fail(
            &mut behaviour,
            failure,
            format!("{limit_note}the app process ended with {how} during step `{at}`"),
        );
    }

    // Baseline first: a reset cannot be judged in an app that keeps no history.
    if let Some(problem) = baseline_broken {
        if behaviour.failure.is_none() || behaviour.failure.map(is_after_baseline).unwrap_or(false)
        {
            fail(&mut behaviour, Failure::HistoryBroken, problem);
            // Planes "cleared" of a memory that never was would read as a
            // pass of the reset: there was nothing to clear.
            behaviour.history_cleared = None;
        }
    }
    if behaviour.failure.is_none() || behaviour.failure == Some(Failure::BrokenAfterReset) {
        if let Some(planes) = behaviour.history_cleared {
            let mut uncleared = Vec::new();
            if planes.memory == Some(false) {
                uncleared.push("memory");
            }
            if planes.screen == Some(false) {
                uncleared.push("screen");
            }
            if planes.next_request == Some(false) {
                uncleared.push("next request");
            }
            if !uncleared.is_empty() {
                let mut detail = format!(
                    "after the reset, earlier turns were still in: {}",
                    uncleared.join(", ")
                );
                if let (true, Some(check)) = (screen_overruled, behaviour.screen_check) {
                    detail.push_str(&format!(
                        " (the after-reset screenshot still shows {} reply bar(s), though the widgets read as cleared)",
                        check.after
                    ));
                }
                fail(&mut behaviour, Failure::HistoryNotCleared, detail);
            } else if behaviour.failure.is_none() && planes.next_request.is_none() {
                fail(
                    &mut behaviour,
                    Failure::BrokenAfterReset,
                    "turn 3 seemed to work but no request carrying it reached the model API".into(),
                );
            }
        }
    }
    behaviour.passed = behaviour.failure.is_none()
        && behaviour
            .history_cleared
            .map(|p| p.all_cleared())
            .unwrap_or(false)
        && behaviour.steps.iter().any(|s| s.name == "turn_3" && s.ok);
    if behaviour.failure.is_none() && !behaviour.passed {
        return Err(NotJudged(
            "the harness finished without reaching every step".into(),
        ));
    }
    Ok(behaviour)
}

/// The modules a launch that failed with `ModuleNotFoundError` lacks: the
/// harness lists every import of the app's files it could not find
/// (`missing_modules`); else the one the error names. Names that are not
/// plain dotted identifiers (the candidate controls this text) are dropped.
fn missing_modules(step: &Step) -> Vec<String> {
    let Some(first) = missing_module(&step.detail) else {
        return Vec::new();
    };
    let mut names = vec![first];
    if let Some(listed) = step.evidence["missing_modules"].as_array() {
        for name in listed.iter().filter_map(Value::as_str).take(20) {
            if is_module_name(name) && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The module a `ModuleNotFoundError` at start-up names, as the harness
/// words it: `the script raised ModuleNotFoundError while starting: No
/// module named 'x.y'`.
fn missing_module(detail: &str) -> Option<String> {
    let rest = detail
        .split_once("ModuleNotFoundError")?
        .1
        .split_once("No module named '")?
        .1;
    let name = rest.split('\'').next()?;
    is_module_name(name).then(|| name.to_string())
}

/// The host's reading of the before/after-reset screenshots, if both came.
fn screen_check(artifacts: &[Artifact]) -> Option<ScreenCheck> {
    let png = |name: &str| {
        artifacts
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.data.as_slice())
    };
    ScreenCheck::of(png("before_reset.png")?, png("after_reset.png")?)
}

fn is_after_baseline(failure: Failure) -> bool {
    matches!(
        failure,
        Failure::NoResetControl
            | Failure::ResetRaised
            | Failure::HistoryNotCleared
            | Failure::BrokenAfterReset
    )
}

fn judge_without_result(
    outcome: &SandboxOutcome,
    wall_seconds: u64,
) -> Result<Behaviour, NotJudged> {
    // The engine's counters, read before the container went, and the
    // supervisor's note of its own deadline: a bomb that kept the
    // supervisor from printing its result before the wall clock ended the
    // run is still stopped by its limit, not a hang.
    let noted = DeadlineNote::find(&outcome.supervisor_stderr);
    let limit = match (
        outcome.oom_killed || outcome.memory_limit_hit || noted.memory,
        outcome.pids_limit_hit || noted.pids,
    ) {
        (true, true) => Some("it at its memory limit with at least half its pids limit in use"),
        (true, false) => Some("it at its memory limit"),
        (false, true) => Some("at least half its pids limit in use"),
        (false, false) => None,
    };
    let (failure, detail) = if let (true, Some(limit)) = (outcome.host_timeout, limit) {
        (
            Failure::ResourceLimit,
            format!(
                "the sandbox gave no result within the {wall_seconds} s wall limit and was \
                 killed; the engine found {limit}"
            ),
        )
    } else if outcome.host_timeout {
        (
            Failure::Timeout,
            format!(
                "the sandbox gave no result within the {wall_seconds} s wall limit and was killed"
            ),
        )
    } else if outcome.oom_killed {
        (
            Failure::ResourceLimit,
            "the sandbox was killed for exceeding its memory limit".to_string(),
        )
    } else {
        return Err(NotJudged(format!(
            "{} (supervisor stderr: {})",
            outcome.missing_result.clone().unwrap_or_default(),
            last_line(&outcome.supervisor_stderr)
        )));
    };
    Ok(Behaviour {
        passed: false,
        failure: Some(failure),
        failure_detail: Some(detail),
        history_cleared: None,
        steps: Vec::new(),
        artifacts: Vec::new(),
        screen_check: None,
        widget_tree: Value::Null,
        requests: Vec::new(),
        exceptions: Vec::new(),
        dialogs: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        resources: Value::Null,
        duration_ms: outcome.wall_ms,
        discovered: None,
    })
}

/// What the supervisor said on its stderr the moment its deadline came,
/// before killing the run: killing hundreds of niced processes can take
/// seconds under load, and if the host's wall clock ends the run first,
/// this line is all that says which limit the run was up against (the
/// engine's counters, read after the kill, no longer show it). Only the
/// supervisor writes to the container's stderr; and a forged line could
/// only turn a run into a failure, never into a pass.
#[derive(Debug, Default, PartialEq)]
struct DeadlineNote {
    pids: bool,
    memory: bool,
}

impl DeadlineNote {
    const PREFIX: &'static str = "qtjudge-deadline ";

    fn find(stderr: &str) -> DeadlineNote {
        let Some(note) = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(Self::PREFIX))
            .and_then(|json| serde_json::from_str::<Value>(json).ok())
        else {
            return DeadlineNote::default();
        };
        let count = |key: &str| note[key].as_u64().unwrap_or(0);
        DeadlineNote {
            pids: count("pids_limit_hits") > 0
                || crate::sandbox::pids_runaway(
                    note["pids"]["current"].as_u64().unwrap_or(0),
                    note["pids"]["max"].as_u64().unwrap_or(0),
                ),
            memory: count("oom_kills") > 0,
        }
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

fn decode_artifact(report: &Value) -> Option<Artifact> {
    use base64::Engine as _;
    let name = report["name"].as_str()?;
    // Only names the harness is known to produce: nothing the candidate
    // could steer becomes a file name on the host.
    if !matches!(name, "before_reset.png" | "after_reset.png") {
        return None;
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(report["base64"].as_str()?)
        .ok()?;
    if !data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return None;
    }
    Some(Artifact {
        name: name.to_string(),
        media_type: "image/png".into(),
        size: data.len(),
        path: None,
        data,
    })
}

/// The text of the newest user message (chat APIs) or the prompt (generate).
fn newest_user_text(body: &Value) -> String {
    if let Some(messages) = body["messages"].as_array() {
        for message in messages.iter().rev() {
            if message["role"] == "user" {
                return match &message["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
            }
        }
        return String::new();
    }
    body["prompt"].as_str().unwrap_or_default().to_string()
}

/// Context arrays of `/api/generate` replies: the fake server gives turn k
/// the numbers 9000 + 100·(k-1) + i.
fn carries_context_of(body: &Value, turn_index: usize) -> bool {
    body["context"].as_array().is_some_and(|context| {
        context.iter().filter_map(Value::as_i64).any(|n| {
            n >= 9000 + 100 * turn_index as i64 && n < 9000 + 100 * (turn_index as i64 + 1)
        })
    })
}

fn summarise_requests(requests: &Value, turns: &[Turn]) -> Vec<RequestSummary> {
    let mut summaries = Vec::new();
    for request in requests.as_array().into_iter().flatten() {
        let body = &request["body"];
        let newest = newest_user_text(body);
        let turn = (0..turns.len())
            .rev()
            .find(|&i| newest.contains(&turns[i].prompt_marker));
        let whole = if body.is_null() {
            request["body_text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        } else {
            body.to_string()
        };
        let mut carries = Vec::new();
        for (i, t) in turns.iter().enumerate() {
            if Some(i) == turn {
                continue;
            }
            for marker in [&t.prompt_marker, &t.reply_marker] {
                if whole.contains(marker.as_str()) {
                    carries.push(marker.clone());
                }
            }
            if carries_context_of(body, i) {
                carries.push(format!("context of turn {}", i + 1));
            }
        }
        summaries.push(RequestSummary {
            seq: request["seq"].as_u64().unwrap_or(0),
            method: request["method"].as_str().unwrap_or_default().to_string(),
            path: request["path"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
            turn,
            carries,
        });
    }
    summaries
}

fn step_ok(steps: &[Step], name: &str) -> bool {
    steps.iter().any(|s| s.name == name && s.ok)
}

/// Turn 2's request must carry turn 1 (its prompt, its reply, or its
/// context array); otherwise the app keeps no conversation to reset.
fn baseline_problem(requests: &[RequestSummary], turns: &[Turn], steps: &[Step]) -> Option<String> {
    if !step_ok(steps, "turn_2") {
        return None;
    }
    let Some(second) = requests.iter().find(|r| r.turn == Some(1)) else {
        return Some(
            "turn 2 was displayed but no request carrying it reached the model API".into(),
        );
    };
    let first = &turns[0];
    let carried = second
        .carries
        .iter()
        .any(|c| c == &first.prompt_marker || c == &first.reply_marker || c == "context of turn 1");
    if carried {
        None
    } else {
        Some("no conversation memory to reset: the second request did not carry the first turn (each request carries only its own prompt)".into())
    }
}

/// Request 3 must carry nothing of turns 1 and 2. `None` if it was not sent.
fn next_request_cleared(requests: &[RequestSummary], steps: &[Step]) -> Option<bool> {
    if !step_ok(steps, "check_cleared") {
        return None;
    }
    let third = requests.iter().find(|r| r.turn == Some(2))?;
    Some(third.carries.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_is_the_first_one_imported() {
        assert_eq!(
            detect_binding(["import sys\nfrom PyQt6.QtWidgets import QApplication\n"]),
            "PyQt6"
        );
        assert_eq!(
            detect_binding(["import os, PySide6.QtWidgets as W\n"]),
            "PySide6"
        );
        assert_eq!(
            detect_binding(["try:\n    from PySide2 import QtCore\nexcept ImportError:\n    from PyQt5 import QtCore\n"]),
            "PySide2"
        );
        // Across files, in the order given (the entry first).
        assert_eq!(
            detect_binding(["import ui\n", "from PySide6.QtCore import Qt\n"]),
            "PySide6"
        );
        // A name that merely starts like a binding, or a mention in prose.
        assert_eq!(
            detect_binding(["import PyQt6extras\n# uses PySide6 later\n"]),
            "PyQt5"
        );
        assert_eq!(detect_binding(["print('no Qt')\n"]), "PyQt5");
    }

    #[test]
    fn a_missing_module_is_named_from_the_launch_failure() {
        let detail =
            "the script raised ModuleNotFoundError while starting: No module named 'qdarkstyle'";
        assert_eq!(missing_module(detail).as_deref(), Some("qdarkstyle"));
        let nested = "the script raised ModuleNotFoundError while starting: No module named 'PyQt5.QtWebEngineWidgets'";
        assert_eq!(
            missing_module(nested).as_deref(),
            Some("PyQt5.QtWebEngineWidgets")
        );
        assert_eq!(
            missing_module(
                "the script raised ImportError while starting: cannot import name 'QFoo'"
            ),
            None
        );
        assert_eq!(
            missing_module("ModuleNotFoundError: No module named 'a b; rm -rf'"),
            None
        );
    }

    #[test]
    fn every_missing_module_the_harness_lists_is_named_once() {
        let step = Step {
            name: "launch".into(),
            ok: false,
            ms: 1.0,
            detail:
                "the script raised ModuleNotFoundError while starting: No module named 'qdarkstyle'"
                    .into(),
            evidence: serde_json::json!({
                "missing_modules": ["qdarkstyle", "pyperclip", "bad name; rm", 7, "markdown2"]
            }),
        };
        assert_eq!(
            missing_modules(&step),
            ["qdarkstyle", "pyperclip", "markdown2"]
        );
        // A list with no ModuleNotFoundError behind it is not believed.
        let other = Step {
            detail: "the script raised ValueError while starting: no".into(),
            ..step
        };
        assert!(missing_modules(&other).is_empty());
    }

    fn turns() -> Vec<Turn> {
        new_turns()
    }

    fn step(name: &str, ok: bool) -> Value {
        json!({"type": "step", "name": name, "ok": ok, "ms": 1.0, "detail": if ok {"ok"} else {"it failed"}})
    }

    fn chat(seq: u64, messages: Vec<(&str, &str)>) -> Value {
        let messages: Vec<Value> = messages
            .into_iter()
            .map(|(r, c)| json!({"role": r, "content": c}))
            .collect();
        json!({"seq": seq, "method": "POST", "path": "/api/chat", "body": {"model": "m", "messages": messages}})
    }

    fn outcome(reports: Vec<Value>, requests: Vec<Value>) -> SandboxOutcome {
        SandboxOutcome {
            result: Some(json!({
                "harness_ready": true, "timed_out": false, "exit": {"code": 0, "signal": null},
                "reports": reports, "requests": requests, "resources": {}, "stdout": "", "stderr": ""
            })),
            ..Default::default()
        }
    }

    fn full_steps(memory: bool, screen: bool) -> Vec<Value> {
        let mut reports: Vec<Value> = [
            "compile",
            "launch",
            "find_window",
            "turn_1",
            "turn_2",
            "find_reset",
            "click_reset",
        ]
        .iter()
        .map(|n| step(n, true))
        .collect();
        reports.push(json!({"type": "planes", "memory": memory, "screen": screen}));
        reports.push(step("check_cleared", true));
        reports.push(step("turn_3", true));
        reports.push(json!({"type": "done"}));
        reports
    }

    fn conversation(t: &[Turn], third_carries_history: bool) -> Vec<Value> {
        let mut third = vec![];
        if third_carries_history {
            third.push(("user", t[0].prompt.as_str()));
            third.push(("assistant", t[0].reply.as_str()));
        }
        third.push(("user", t[2].prompt.as_str()));
        vec![
            chat(1, vec![("user", &t[0].prompt)]),
            chat(
                2,
                vec![
                    ("user", &t[0].prompt),
                    ("assistant", &t[0].reply),
                    ("user", &t[1].prompt),
                ],
            ),
            chat(3, third),
        ]
    }

    #[test]
    fn a_clean_reset_passes_on_all_three_planes() {
        let t = turns();
        let b = judge(
            &outcome(full_steps(true, true), conversation(&t, false)),
            &t,
            30,
        )
        .unwrap();
        assert!(b.passed, "{b:?}");
        assert_eq!(b.history_cleared.unwrap().next_request, Some(true));
    }

    #[test]
    fn old_turns_in_the_next_request_fail_the_reset() {
        let t = turns();
        let b = judge(
            &outcome(full_steps(false, true), conversation(&t, true)),
            &t,
            30,
        )
        .unwrap();
        assert_eq!(b.failure, Some(Failure::HistoryNotCleared));
        let planes = b.history_cleared.unwrap();
        assert_eq!(
            (planes.memory, planes.screen, planes.next_request),
            (Some(false), Some(true), Some(false))
        );
    }

    #[test]
    fn an_app_without_memory_fails_the_baseline() {
        let t = turns();
        let requests = vec![
            chat(1, vec![("user", &t[0].prompt)]),
            chat(2, vec![("user", &t[1].prompt)]),
            chat(3, vec![("user", &t[2].prompt)]),
        ];
        let b = judge(&outcome(full_steps(true, true), requests), &t, 30).unwrap();
        assert_eq!(b.failure, Some(Failure::HistoryBroken));
        assert_eq!(b.history_cleared, None, "no memory, so no reset to judge");
        assert!(b
            .failure_detail
            .unwrap()
            .starts_with("no conversation memory to reset"));
    }

    #[test]
    fn a_failed_step_maps_to_its_code() {
        let t = turns();
        let reports = vec![
            step("compile", true),
            step("launch", true),
            step("find_window", true),
            step("turn_1", true),
            step("turn_2", true),
            step("find_reset", false),
            json!({"type": "done"}),
        ];
        let b = judge(
            &outcome(reports, conversation(&t, false)[..2].to_vec()),
            &t,
            30,
        )
        .unwrap();
        assert_eq!(b.failure, Some(Failure::NoResetControl));
        assert!(!b.passed);
    }

    #[test]
    fn a_hang_is_a_timeout_naming_the_step() {
        let t = turns();
        let mut o = outcome(
            vec![
                step("compile", true),
                json!({"type": "step_start", "name": "launch"}),
            ],
            vec![],
        );
        o.result.as_mut().unwrap()["timed_out"] = json!(true);
        let b = judge(&o, &t, 30).unwrap();
        assert_eq!(b.failure, Some(Failure::Timeout));
        assert!(b.failure_detail.unwrap().contains("launch"));
    }

    #[test]
    fn silence_is_never_a_pass() {
        let t = turns();
        let o = SandboxOutcome {
            missing_result: Some("nothing".into()),
            ..Default::default()
        };
        assert!(judge(&o, &t, 30).is_err());
        let o = SandboxOutcome {
            host_timeout: true,
            ..Default::default()
        };
        assert_eq!(judge(&o, &t, 30).unwrap().failure, Some(Failure::Timeout));
    }

    #[test]
    fn a_deadline_with_half_the_pids_limit_in_use_is_a_resource_limit() {
        let t = turns();
        let hung = || {
            let mut o = outcome(
                vec![
                    step("compile", true),
                    json!({"type": "step_start", "name": "launch"}),
                ],
                vec![],
            );
            o.result.as_mut().unwrap()["timed_out"] = json!(true);
            o
        };
        let mut bomb = hung();
        bomb.result.as_mut().unwrap()["pids_at_deadline"] = json!({"current": 200, "max": 256});
        let b = judge(&bomb, &t, 30).unwrap();
        assert_eq!(b.failure, Some(Failure::ResourceLimit));
        assert!(b.failure_detail.unwrap().contains("200 of the 256"));
        let mut app = hung();
        app.result.as_mut().unwrap()["pids_at_deadline"] = json!({"current": 30, "max": 256});
        assert_eq!(judge(&app, &t, 30).unwrap().failure, Some(Failure::Timeout));
    }

    #[test]
    fn a_run_killed_at_its_pids_limit_is_a_resource_limit_not_a_timeout() {
        let t = turns();
        let o = SandboxOutcome {
            missing_result: Some("nothing".into()),
            host_timeout: true,
            pids_limit_hit: true,
            ..Default::default()
        };
        let b = judge(&o, &t, 30).unwrap();
        assert_eq!(b.failure, Some(Failure::ResourceLimit));
        assert!(b.failure_detail.unwrap().contains("pids"));
        let o = SandboxOutcome {
            pids_limit_hit: true,
            ..Default::default()
        };
        assert!(
            judge(&o, &t, 30).is_err(),
            "a limit without a timeout or a result is still not judged"
        );
    }

    #[test]
    fn the_supervisors_deadline_note_names_the_limit_when_its_result_never_came() {
        let t = turns();
        let cut_off = |stderr: &str| SandboxOutcome {
            missing_result: Some("nothing".into()),
            host_timeout: true,
            supervisor_stderr: stderr.into(),
            ..Default::default()
        };
        let at_limit = cut_off(
            "warming up\nqtjudge-deadline {\"pids\": {\"current\": 3, \"max\": 256}, \"pids_limit_hits\": 41}\n",
        );
        assert_eq!(
            judge(&at_limit, &t, 12).unwrap().failure,
            Some(Failure::ResourceLimit)
        );
        let growing = cut_off("qtjudge-deadline {\"pids\": {\"current\": 190, \"max\": 256}}");
        assert_eq!(
            judge(&growing, &t, 12).unwrap().failure,
            Some(Failure::ResourceLimit)
        );
        let out_of_memory = cut_off("qtjudge-deadline {\"pids\": {}, \"oom_kills\": 2}");
        assert_eq!(
            judge(&out_of_memory, &t, 12).unwrap().failure,
            Some(Failure::ResourceLimit)
        );
        let hung = cut_off("qtjudge-deadline {\"pids\": {\"current\": 12, \"max\": 256}}");
        assert_eq!(
            judge(&hung, &t, 12).unwrap().failure,
            Some(Failure::Timeout)
        );
        for garbage in ["qtjudge-deadline {", "qtjudge-deadline", "", "deadline 999"] {
            assert_eq!(
                judge(&cut_off(garbage), &t, 12).unwrap().failure,
                Some(Failure::Timeout),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn generate_context_of_an_earlier_turn_counts_as_history() {
        let t = turns();
        let body = json!({"prompt": t[2].prompt, "context": [9001, 9002]});
        assert!(carries_context_of(&body, 0));
        assert!(!carries_context_of(&body, 1));
    }
}
