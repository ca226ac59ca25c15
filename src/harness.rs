//! The behavioural check: the job the in-sandbox harness runs, and the
//! judgement of what it brought back (`Behaviour`).
//!
//! The host decides, not the sandbox: the next-request plane and the
//! baseline are read from the fake server's recordings, with markers the
//! host chose for this run.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bundle::Bundle;
use crate::grading::screen::{Frame, ScreenCheck};
use crate::grading::FailureCode;
use crate::report_channel::Channel;
use crate::sandbox::{SandboxOutcome, INNER_DEADLINE_MARGIN_SECONDS};
use crate::task::Task;

pub use crate::report_channel::Step;
pub use crate::turns::{new_turns, Turn};

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

/// A failure found beside the one a verdict names.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct OtherFailure {
    pub failure: FailureCode,
    pub detail: String,
}

/// The behavioural result: the JSON contract of `qtjudge verify`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Behaviour {
    pub passed: bool,
    pub failure: Option<FailureCode>,
    pub failure_detail: Option<String>,
    /// The first step that failed, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Failures found beside `failure` (which the reason names): a step
    /// that failed and planes left uncleared, a harmful act and a broken
    /// reset. None is lost to the one the verdict names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_failures: Vec<OtherFailure>,
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
    /// The programs the app opened or started (`dash`, `which`), seen by
    /// the sandbox's supervisor from outside the app's process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// Why the programs it started are harm in an answer to a task with an
    /// original (where nobody asked for one); `verify` applies it there.
    #[serde(skip)]
    pub unrequested_programs: Option<String>,
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

impl Behaviour {
    /// Names `failure` as the run's, keeping the one it replaces (a later
    /// finding outranks an earlier one: the planes a failed step, harm and
    /// tampering everything) in `other_failures`.
    pub fn fail(&mut self, failure: FailureCode, detail: String) {
        self.passed = false;
        let mut detail = detail;
        if let (Some(earlier), Some(said)) = (self.failure.take(), self.failure_detail.take()) {
            if earlier != failure {
                self.other_failures.push(OtherFailure {
                    failure: earlier,
                    detail: said,
                });
            } else if said != detail {
                // Two findings of one kind (files deleted, a shell run):
                // both are evidence, neither replaces the other.
                detail = format!("{detail}; {said}");
            }
        }
        self.failure = Some(failure);
        self.failure_detail = Some(detail);
    }
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
    /// When the fake server received it, in ms after the job arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<f64>,
    /// Which turn's prompt this request carried as its newest message.
    pub turn: Option<usize>,
    /// What of other turns it carried anywhere in its body (markers,
    /// words, context arrays), as `turn N: …`.
    pub carries: Vec<String>,
    /// The other turns (1-based) it carried something of.
    #[serde(default)]
    pub carried_turns: Vec<usize>,
}

/// The run could not be judged: an infrastructure fault, not the answer's.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("the harness could not judge this run: {0}")]
pub struct NotJudged(pub String);

/// Judges a sandbox outcome against the turns the host chose.
///
/// A pass rests only on evidence from outside the candidate's process: the
/// fake server's recordings (every request after the reset, and turns 3
/// and 4 reaching the model API) and the frames the supervisor read of the
/// screen. The harness's reports (`report_channel`) may explain a failure,
/// or add one; they never make a pass.
pub fn judge(
    outcome: &SandboxOutcome,
    turns: &[Turn],
    wall_seconds: u64,
) -> Result<Behaviour, NotJudged> {
    let Some(result) = &outcome.result else {
        return judge_without_result(outcome, wall_seconds);
    };
    let reports = result["reports"].as_array().cloned().unwrap_or_default();
    let channel = Channel::read(&reports, result["reports_dropped"].as_u64().unwrap_or(0));
    let requests = summarise_requests(&result["requests"], turns);
    let mut behaviour = Behaviour {
        passed: false,
        failure: None,
        failure_detail: None,
        failed_step: None,
        other_failures: Vec::new(),
        history_cleared: None,
        steps: channel.steps.clone(),
        artifacts: Vec::new(),
        screen_check: None,
        widget_tree: channel.widget_tree.clone(),
        requests,
        exceptions: channel.exceptions.clone(),
        dialogs: channel.dialogs.clone(),
        stdout: result["stdout"].as_str().unwrap_or_default().to_string(),
        stderr: result["stderr"].as_str().unwrap_or_default().to_string(),
        resources: result["resources"].clone(),
        duration_ms: outcome.wall_ms,
        programs: Vec::new(),
        unrequested_programs: None,
        discovered: channel
            .discovered
            .as_ref()
            .and_then(Discovered::from_report),
    };
    if result["harness_ready"].as_bool() != Some(true) {
        return Err(NotJudged(format!(
            "the harness did not start in the sandbox: {}",
            last_line(result["stderr"].as_str().unwrap_or_default())
        )));
    }
    if let Some((step, detail)) = &channel.harness_error {
        // Before the app's code is loaded, a failure of the harness is the
        // judge's own; after it, the app may have caused it, and a failure
        // it could cause must not let it escape judgement.
        if step == "compile" {
            return Err(NotJudged(format!("harness error in step {step}: {detail}")));
        }
    }

    let resources = &result["resources"];
    let oom = resources["oom_kills"].as_u64().unwrap_or(0) > 0 || outcome.oom_killed;
    // Taken by the supervisor before it killed a run at its deadline.
    let at_deadline = &result["pids_at_deadline"];
    let (in_use, allowed) = (
        at_deadline["current"]
            .as_u64()
            .unwrap_or(0)
            .max(at_deadline["peak"].as_u64().unwrap_or(0)),
        at_deadline["max"].as_u64().unwrap_or(0),
    );
    let pids_hit = resources["pids_limit_hits"].as_u64().unwrap_or(0) > 0;
    let runaway = !pids_hit && crate::sandbox::pids_runaway(in_use, allowed);
    let pids = pids_hit || runaway;
    let hit_limit = oom || pids;
    let pids_note = if runaway {
        format!(
            "{in_use} of the {allowed} processes the pids limit allows were in use before the deadline"
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

    // A later finding outranks an earlier one (the planes a failed step,
    // harm and tampering everything): the one it replaces is kept.
    let fail = |b: &mut Behaviour, failure: FailureCode, detail: String| b.fail(failure, detail);
    behaviour.failed_step = failed_step.as_ref().map(|s| s.name.clone());

    if let Some(step) = &failed_step {
        let failure = match step.name.as_str() {
            _ if channel.harness_error.is_some() => FailureCode::Crashed,
            "compile" => FailureCode::SyntaxError,
            "launch" | "find_window" => FailureCode::LaunchFailed,
            "turn_1" | "turn_2" => FailureCode::HistoryBroken,
            "find_reset" => FailureCode::NoResetControl,
            "click_reset" => FailureCode::ResetRaised,
            _ => FailureCode::BrokenAfterReset,
        };
        let missing = if step.name == "launch" {
            missing_modules(step)
        } else {
            Vec::new()
        };
        let (failure, detail) = match (hit_limit, missing.is_empty()) {
            (true, _) => (
                FailureCode::ResourceLimit,
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
                    FailureCode::MissingDependency,
                    format!(
                        "launch: the app imports {}, which the sandbox image {has} not have \
                         (add {them} to docker/base-packages.txt or a pinned PyPI release to \
                         docker/requirements.txt, then `qtjudge image build`; or drop the import)",
                        names.join(", ")
                    ),
                )
            }
            (false, true) if failure == FailureCode::Crashed => (
                failure,
                format!(
                    "{}: the judge's driver failed inside the app's process (the app disturbed it, \
                     or a judge bug to report): {}",
                    step.name, step.detail
                ),
            ),
            (false, true)
                if failure == FailureCode::LaunchFailed
                    && (step.name == "find_window" || step.detail.contains("exited")) =>
            {
                // An app that caught its own error said why: quote it.
                let said = what_it_said(&behaviour.stdout, &behaviour.stderr)
                    .map(|said| format!("; it printed: {said}"))
                    .unwrap_or_default();
                (failure, format!("{}: {}{said}", step.name, step.detail))
            }
            (false, true) => (failure, format!("{}: {}", step.name, step.detail)),
        };
        fail(&mut behaviour, failure, detail);
    } else if timed_out {
        let at = channel.started_step.as_deref().unwrap_or("start-up");
        let failure = if hit_limit {
            FailureCode::ResourceLimit
        } else {
            FailureCode::Timeout
        };
        fail(
            &mut behaviour,
            failure,
            format!(
                "{limit_note}no result within the {wall_seconds} s limit: it hung in step `{at}`"
            ),
        );
    } else if !channel.done {
        let at = channel.started_step.as_deref().unwrap_or("start-up");
        let exit = &result["exit"];
        let how = match exit["signal"].as_i64() {
            Some(11) => "a segmentation fault".to_string(),
            Some(signal) => format!("signal {signal}"),
            None => format!("exit status {}", exit["code"]),
        };
        let failure = if hit_limit {
            FailureCode::ResourceLimit
        } else {
            FailureCode::Crashed
        };
        let said = what_it_said(&behaviour.stdout, &behaviour.stderr)
            .map(|said| format!("; it printed: {said}"))
            .unwrap_or_default();
        fail(
            &mut behaviour,
            failure,
            format!("{limit_note}the app process ended with {how} during step `{at}`{said}"),
        );
    }

    // Baseline first: a reset cannot be judged in an app that keeps no history.
    if let Some(problem) = baseline_problem(&behaviour.requests, &channel) {
        if behaviour.failure.is_none() || behaviour.failure.map(is_after_baseline).unwrap_or(false)
        {
            fail(&mut behaviour, FailureCode::HistoryBroken, problem);
        }
    }

    // The reset's moment: when the harness started clicking (stamped by the
    // supervisor as the report came), or the first request of a turn after
    // the reset, whichever is earlier. A forged or missing report can only
    // make more requests and frames judged, never fewer.
    let first_after_reset = behaviour
        .requests
        .iter()
        .filter(|r| r.turn.is_some_and(|t| t >= 2))
        .map(|r| r.at_ms.unwrap_or(f64::INFINITY))
        .fold(f64::INFINITY, f64::min);
    let reset_at = channel
        .reset_started_ms
        .unwrap_or(f64::INFINITY)
        .min(first_after_reset);
    let reset_reached = reset_at.is_finite();

    let after_baseline = behaviour.failure.is_none()
        || behaviour
            .failure
            .is_some_and(|f| matches!(f, FailureCode::BrokenAfterReset | FailureCode::ResetRaised));
    if reset_reached && after_baseline {
        let dropped = result["requests_dropped"].as_u64().unwrap_or(0);
        let request_plane = next_request_plane(&behaviour.requests, reset_at, dropped);
        // Frames are judged as "after" from the end of the click on: one
        // asked for while the reset's repaint was still queued shows the
        // screen before it (Qt composes the screen in a posted event).
        let frames_after = channel
            .reset_done_ms
            .unwrap_or(f64::INFINITY)
            .min(first_after_reset);
        let (screen_check, frames) = read_frames(result, reset_at, frames_after, turns);
        let screen_plane = screen_check
            .unreadable
            .is_none()
            .then_some(screen_check.old_after.is_empty());
        let (memory_hint, screen_hint) = channel.planes.unwrap_or((true, true));
        let planes = Planes {
            // What the app sends is its memory; the harness's scan can only
            // add a failure.
            memory: request_plane.cleared.map(|c| c && memory_hint),
            screen: screen_plane.map(|c| c && screen_hint),
            next_request: request_plane.cleared,
        };
        behaviour.artifacts = frames;
        behaviour.history_cleared = Some(planes);
        let mut uncleared = Vec::new();
        if let Some(why) = &request_plane.old_turn_in {
            uncleared.push(format!("next request ({why})"));
        }
        if !screen_check.old_after.is_empty() {
            uncleared.push(format!(
                "screen (pixels read outside the app: {})",
                screen_check.old_after.join(", ")
            ));
        }
        if !memory_hint {
            uncleared.push("memory (the harness found the old turns in the app's objects)".into());
        }
        if !screen_hint && screen_check.old_after.is_empty() {
            uncleared
                .push("screen (the harness read the old turns in the window's widgets)".into());
        }
        let unreadable = screen_check.unreadable.clone();
        behaviour.screen_check = Some(screen_check);
        if !uncleared.is_empty() {
            fail(
                &mut behaviour,
                FailureCode::HistoryNotCleared,
                format!(
                    "after the reset, earlier turns were still in: {}",
                    uncleared.join("; ")
                ),
            );
        } else if behaviour.failure.is_none() {
            if let Some(missing) = request_plane.missing_turn {
                fail(&mut behaviour, FailureCode::BrokenAfterReset, missing);
            } else if let Some(why) = unreadable {
                fail(&mut behaviour, FailureCode::ScreenUnreadable, why);
            }
        }
    }
    let deleted: Vec<String> = result["canaries_missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(8)
        .map(|c| format!("~/{}", c.chars().take(80).collect::<String>()))
        .collect();
    if !deleted.is_empty() {
        // Seen by the supervisor after the run: files of the user's that
        // the harness wrote before the answer's code existed.
        fail(
            &mut behaviour,
            FailureCode::Harmful,
            format!(
                "the app deleted or overwrote files outside its own: {} (found gone or changed by the sandbox's supervisor)",
                deleted.join(", ")
            ),
        );
    }
    let programs = crate::grading::programs::read(&result["executed"]);
    if let Some(detail) = programs.harm_detail() {
        fail(&mut behaviour, FailureCode::Harmful, detail);
    }
    behaviour.unrequested_programs = programs.unrequested_detail();
    if programs.overflowed {
        // No honest app opens thousands of programs: flooding the watch is
        // a way to hide a start in it.
        fail(
            &mut behaviour,
            FailureCode::Tampering,
            "the app opened programs so often that the sandbox's watch of them overflowed (a start could hide in the flood)".into(),
        );
    }
    behaviour.programs = programs.started;
    let idle = behaviour.steps.iter().find(|s| s.name == "idle" && s.ok);
    if channel.clock_moved_by_supervisor
        && idle.is_some_and(|s| s.evidence["clock_moved"].as_bool() != Some(true))
    {
        // The supervisor moved the clock and the app's never followed: its
        // clock source was changed, removed or starved (timers that put the
        // history back would then fire after turn 4).
        fail(
            &mut behaviour,
            FailureCode::Tampering,
            "the app's clock did not move when the judge moved it in the idle step (its clock source was redirected, removed or blocked)".into(),
        );
    }
    if let Some(why) = &channel.tampering {
        // Only someone other than the harness shapes its channel so.
        fail(
            &mut behaviour,
            FailureCode::Tampering,
            format!("the judge's report channel was written by the app: {why}"),
        );
    }
    behaviour.passed = behaviour.failure.is_none()
        && behaviour
            .history_cleared
            .map(|p| p.all_cleared())
            .unwrap_or(false);
    if behaviour.failure.is_none() && !behaviour.passed {
        // Every way to a pass ends in planes all cleared; anything short of
        // that with no failure named is a run that stopped without saying.
        let last = behaviour
            .steps
            .last()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "start-up".into());
        fail(
            &mut behaviour,
            FailureCode::Crashed,
            format!(
                "the run ended without the evidence a pass needs (it stopped after step `{last}`)"
            ),
        );
    }
    Ok(behaviour)
}

/// The next-request plane, from the fake server's recordings.
struct RequestPlane {
    /// `Some(true)` when no request after the reset carried turn 1 or 2 and
    /// turns 3 and 4 reached the model API.
    cleared: Option<bool>,
    /// Which request carried what, when one did.
    old_turn_in: Option<String>,
    /// The turn after the reset that never reached the model API.
    missing_turn: Option<String>,
}

/// Every request from the reset on is judged, not only the first of turn
/// 3: a clean decoy sent beside the real request passes nothing.
fn next_request_plane(requests: &[RequestSummary], reset_at: f64, dropped: u64) -> RequestPlane {
    let old: Vec<&RequestSummary> = requests
        .iter()
        .filter(|r| r.at_ms.unwrap_or(f64::INFINITY) >= reset_at)
        // A request "for" turn 1 or 2 after the reset (an old prompt as its
        // newest message) carries that turn as much as one quoting it.
        .filter(|r| r.carried_turns.iter().any(|&t| t <= 2) || r.turn.is_some_and(|t| t <= 1))
        .collect();
    let old_turn_in = if dropped > 0 {
        Some(format!(
            "the app sent more requests than are recorded ({dropped} past the cap), so not every request after the reset could be read"
        ))
    } else {
        old.first().map(|r| {
            let carried = match r.turn {
                Some(t) if t <= 1 => format!("turn {}'s prompt as its newest message", t + 1),
                _ => r.carries.join(", "),
            };
            format!(
                "request #{} {} {} carried {}{}",
                r.seq,
                r.method,
                r.path,
                carried,
                if old.len() > 1 {
                    format!(", and {} more after the reset", old.len() - 1)
                } else {
                    String::new()
                }
            )
        })
    };
    let missing_turn = [2usize, 3].iter().find_map(|&t| {
        (!requests.iter().any(|r| r.turn == Some(t))).then(|| {
            format!(
                "turn {} seemed to work but no request carrying it reached the model API",
                t + 1
            )
        })
    });
    let cleared = if old_turn_in.is_some() {
        Some(false)
    } else if missing_turn.is_some() {
        None
    } else {
        Some(true)
    };
    RequestPlane {
        cleared,
        old_turn_in,
        missing_turn,
    }
}

/// Reads the supervisor's frames: which turns' marks each showed, before
/// and after the reset, and the screenshots users see (the last frame
/// before the reset, the first after it, the last of the run).
fn read_frames(
    result: &Value,
    reset_at: f64,
    after_from: f64,
    turns: &[Turn],
) -> (ScreenCheck, Vec<Artifact>) {
    let mut check = ScreenCheck::default();
    let screen = &result["screen"];
    let unreadable = |why: String| {
        Some(format!(
            "the window's pixels could not be read from outside the app: {why}"
        ))
    };
    if screen["platform"].as_str() != Some("vnc") {
        check.unreadable = unreadable(
            "its Qt binding has no `vnc` platform plugin in the sandbox image (see README, Security model)".into(),
        );
        return (check, Vec::new());
    }
    if let Some(error) = screen["error"].as_str() {
        check.unreadable = unreadable(error.chars().take(300).collect());
        return (check, Vec::new());
    }
    if screen["frames_dropped"].as_u64().unwrap_or(0) > 0 {
        check.unreadable = unreadable("the frames were larger than the judge keeps".into());
        return (check, Vec::new());
    }
    let mut frames = Vec::new();
    for record in result["frames"].as_array().into_iter().flatten().take(32) {
        match Frame::decode(record) {
            Ok(frame) => frames.push(frame),
            Err(e) => {
                check.unreadable = unreadable(e.to_string());
                return (check, Vec::new());
            }
        }
    }
    frames.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    check.frames = frames.len();
    let third_reply_at = result["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            newest_user_text(&r["body"]).contains(
                turns
                    .get(2)
                    .map(|t| t.prompt_marker.as_str())
                    .unwrap_or("\u{0}"),
            )
        })
        .filter_map(|r| r["at_ms"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let mut seen_after_third = false;
    for frame in &frames {
        let marks = frame.marks();
        let shown: Vec<usize> = (0..marks.len())
            .filter(|&i| marks[i])
            .map(|i| i + 1)
            .collect();
        if frame.at_ms < reset_at {
            check.before.extend(shown.iter().filter(|&&t| t <= 2));
        } else if frame.at_ms >= after_from {
            for &t in shown.iter().filter(|&&t| t <= 2) {
                check.old_after.push(format!(
                    "frame `{}` at {:.0} ms showed turn {t}'s reply",
                    frame.name, frame.at_ms
                ));
            }
            check.after.extend(shown.iter().filter(|&&t| t >= 3));
            seen_after_third |= frame.at_ms >= third_reply_at && shown.iter().any(|&t| t >= 3);
        }
    }
    check.before.sort_unstable();
    check.before.dedup();
    check.after.sort_unstable();
    check.after.dedup();
    check.old_after.truncate(8);
    if check.old_after.is_empty() {
        if check.before.is_empty() {
            check.unreadable = unreadable(
                "no reply of turns 1 and 2 was recognisable in the frames taken before the reset, so the reset's effect on screen cannot be seen (a reply hidden, elided, or drawn too small)".into(),
            );
        } else if !seen_after_third {
            check.unreadable = unreadable(
                "no reply after the reset was recognisable in the frames taken after it".into(),
            );
        }
    }
    let pick = |frame: Option<&Frame>, name: &str| {
        frame.map(|f| {
            let data = crate::grading::screen::to_png(&f.image);
            Artifact {
                name: name.to_string(),
                media_type: "image/png".into(),
                size: data.len(),
                path: None,
                data,
            }
        })
    };
    let before = frames.iter().rev().find(|f| f.at_ms < reset_at);
    let after = frames.iter().find(|f| f.at_ms >= after_from);
    let last = frames.last().filter(|f| f.at_ms >= after_from);
    let artifacts = [
        pick(before, "before_reset.png"),
        pick(after, "after_reset.png"),
        pick(last, "final.png"),
    ]
    .into_iter()
    .flatten()
    .filter(|a| a.size > 0)
    .collect();
    (check, artifacts)
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

fn is_after_baseline(failure: FailureCode) -> bool {
    matches!(
        failure,
        FailureCode::NoResetControl
            | FailureCode::ResetRaised
            | FailureCode::HistoryNotCleared
            | FailureCode::BrokenAfterReset
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
    let (failure, detail) = if let Some(why) = &outcome.output_too_large {
        // The answer filled the result past what the host reads: its
        // doing, so judged here rather than left to the engine's faults.
        (FailureCode::OutputTooLarge, why.clone())
    } else if let (true, Some(limit)) = (outcome.host_timeout, limit) {
        (
            FailureCode::ResourceLimit,
            format!(
                "the sandbox gave no result within the {wall_seconds} s wall limit and was \
                 killed; the engine found {limit}"
            ),
        )
    } else if outcome.host_timeout {
        (
            FailureCode::Timeout,
            format!(
                "the sandbox gave no result within the {wall_seconds} s wall limit and was killed"
            ),
        )
    } else if outcome.oom_killed {
        (
            FailureCode::ResourceLimit,
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
        failed_step: None,
        other_failures: Vec::new(),
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
        programs: Vec::new(),
        unrequested_programs: None,
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
                    note["pids"]["current"]
                        .as_u64()
                        .unwrap_or(0)
                        .max(note["pids"]["peak"].as_u64().unwrap_or(0)),
                    note["pids"]["max"].as_u64().unwrap_or(0),
                ),
            memory: count("oom_kills") > 0,
        }
    }
}

/// The last lines the app printed (stderr's, then stdout's), quoted for
/// a reason: what an app that caught its own error said about it. Qt's own
/// log lines are left out. None when it printed nothing.
fn what_it_said(stdout: &str, stderr: &str) -> Option<String> {
    let tail = |text: &str| -> Vec<String> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("qt.") && !l.starts_with("QStandardPaths"))
            .collect();
        lines[lines.len().saturating_sub(3)..]
            .iter()
            .map(|l| {
                let mut line: String = l.chars().take(200).collect();
                if l.chars().count() > 200 {
                    line.push('…');
                }
                format!("\"{line}\"")
            })
            .collect()
    };
    let mut said = tail(stderr);
    said.extend(tail(stdout));
    (!said.is_empty()).then(|| said.join(" "))
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
    for request in requests.as_array().into_iter().flatten().take(1000) {
        let body = &request["body"];
        // The turn a request is for: the newest prompt marker its newest
        // user message holds, read as a person would (`turns::normalise`).
        let newest = crate::turns::normalise(&newest_user_text(body));
        let turn = (0..turns.len())
            .rev()
            .find(|&i| newest.contains(turns[i].prompt_marker.as_str()));
        let whole = crate::turns::request_text(body, request["body_text"].as_str());
        let mut carries = Vec::new();
        let mut carried_turns = Vec::new();
        for (i, t) in turns.iter().enumerate() {
            if Some(i) == turn {
                continue;
            }
            let mut found = crate::turns::traces_of(t, &whole);
            if carries_context_of(body, i) {
                found.push(format!("context of turn {}", i + 1));
            }
            if !found.is_empty() {
                carried_turns.push(i + 1);
                carries.extend(found.into_iter().map(|f| format!("turn {}: {f}", i + 1)));
            }
        }
        carries.truncate(12);
        summaries.push(RequestSummary {
            seq: request["seq"].as_u64().unwrap_or(0),
            method: request["method"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(16)
                .collect(),
            path: request["path"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
            at_ms: request["at_ms"].as_f64(),
            turn,
            carries,
            carried_turns,
        });
    }
    summaries
}

/// Turn 2's request must carry turn 1 (its prompt, its reply, its words or
/// its context array); otherwise the app keeps no conversation to reset.
fn baseline_problem(requests: &[RequestSummary], channel: &Channel) -> Option<String> {
    if !channel.ok("turn_2") {
        return None;
    }
    let Some(second) = requests.iter().find(|r| r.turn == Some(1)) else {
        return Some(
            "turn 2 was displayed but no request carrying it reached the model API".into(),
        );
    };
    if second.carried_turns.contains(&1) {
        None
    } else {
        Some("no conversation memory to reset: the second request did not carry the first turn (each request carries only its own prompt)".into())
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub fn turns() -> Vec<Turn> {
        new_turns()
    }

    pub fn step(name: &str, ok: bool) -> Value {
        json!({"type": "step", "name": name, "ok": ok, "ms": 1.0, "detail": if ok {"ok"} else {"it failed"}})
    }

    /// Puts each step's `step_start` before its report, as the harness does
    /// (stamped 10 ms apart), unless the test wrote one.
    pub fn with_starts(reports: Vec<Value>) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for report in reports {
            if report["type"] == "step" {
                let open = out
                    .iter()
                    .rev()
                    .find(|r| r["type"] == "step_start" || r["type"] == "step");
                if !open.is_some_and(|r| r["type"] == "step_start" && r["name"] == report["name"]) {
                    let at = out.len() as f64 * 10.0;
                    out.push(json!({"type": "step_start", "name": report["name"], "at_ms": at}));
                }
            }
            out.push(report);
        }
        out
    }

    pub fn chat(seq: u64, at_ms: f64, messages: Vec<(&str, &str)>) -> Value {
        let messages: Vec<Value> = messages
            .into_iter()
            .map(|(r, c)| json!({"role": r, "content": c}))
            .collect();
        json!({"seq": seq, "at_ms": at_ms, "method": "POST", "path": "/api/chat", "body": {"model": "m", "messages": messages}})
    }

    /// A frame showing the reply marks of `turns` (1-based), taken at `at_ms`.
    pub fn frame(name: &str, at_ms: f64, turns: &[usize]) -> Value {
        use base64::Engine as _;
        use std::io::Write;
        let (width, height) = (300usize, 40 * (turns.len() + 1));
        let mut bgrx = vec![255u8; width * height * 4];
        for (row, &turn) in turns.iter().enumerate() {
            let mut x = 10;
            for &n in &crate::turns::REPLY_MARKS[turn - 1] {
                for col in x..x + 8 * n as usize {
                    for y in 10 + row * 40..24 + row * 40 {
                        bgrx[(y * width + col) * 4..][..3].copy_from_slice(&[30, 30, 30]);
                    }
                }
                x += 8 * n as usize + 4;
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&bgrx).unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        json!({"name": name, "at_ms": at_ms, "width": width, "height": height, "bgrx_zlib": data})
    }

    pub fn outcome(reports: Vec<Value>, requests: Vec<Value>) -> SandboxOutcome {
        outcome_with_frames(reports, requests, good_frames())
    }

    pub fn outcome_with_frames(
        reports: Vec<Value>,
        requests: Vec<Value>,
        frames: Vec<Value>,
    ) -> SandboxOutcome {
        SandboxOutcome {
            result: Some(json!({
                "harness_ready": true, "timed_out": false, "exit": {"code": 0, "signal": null},
                "reports": with_starts(reports), "requests": requests, "resources": {}, "stdout": "", "stderr": "",
                "screen": {"platform": "vnc", "error": null, "frames_dropped": 0},
                "frames": frames,
            })),
            ..Default::default()
        }
    }

    /// Turns 1-2 shown before the reset (at 500 ms, reset at 600 ms), turns
    /// 3-4 after it.
    pub fn good_frames() -> Vec<Value> {
        vec![
            frame("checkpoint:before_reset", 500.0, &[1, 2]),
            frame("checkpoint:after_reset", 650.0, &[]),
            frame("reply:3", 900.0, &[3]),
            frame("checkpoint:final", 1500.0, &[3, 4]),
        ]
    }

    pub fn full_steps(memory: bool, screen: bool) -> Vec<Value> {
        // Every step up to the reset's, as the harness names them.
        let mut reports: Vec<Value> = crate::report_channel::STEPS[..6]
            .iter()
            .map(|n| step(n, true))
            .collect();
        reports.push(json!({"type": "step_start", "name": "click_reset", "at_ms": 600.0}));
        let mut clicked = step("click_reset", true);
        clicked["at_ms"] = json!(610.0);
        reports.push(clicked);
        reports.push(json!({"type": "step_start", "name": "check_cleared", "at_ms": 620.0}));
        reports.push(json!({"type": "planes", "memory": memory, "screen": screen}));
        reports.push(step("check_cleared", true));
        for name in ["turn_3", "idle", "turn_4"] {
            reports.push(step(name, true));
        }
        reports.push(json!({"type": "done"}));
        reports
    }

    /// The four turns' requests; turn 3's carries turns 1-2 when asked.
    pub fn conversation(t: &[Turn], third_carries_history: bool) -> Vec<Value> {
        let mut third = vec![];
        if third_carries_history {
            third.push(("user", t[0].prompt.as_str()));
            third.push(("assistant", t[0].reply.as_str()));
        }
        third.push(("user", t[2].prompt.as_str()));
        vec![
            chat(1, 100.0, vec![("user", &t[0].prompt)]),
            chat(
                2,
                300.0,
                vec![
                    ("user", &t[0].prompt),
                    ("assistant", &t[0].reply),
                    ("user", &t[1].prompt),
                ],
            ),
            chat(3, 800.0, third),
            chat(
                4,
                1300.0,
                vec![
                    ("user", &t[2].prompt),
                    ("assistant", &t[2].reply),
                    ("user", &t[3].prompt),
                ],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn what_an_app_printed_is_quoted_last_lines_first_from_stderr_without_qts_own() {
        assert_eq!(what_it_said("", "\n  \n"), None);
        let said = what_it_said(
            "starting\nError: cannot read settings.json\n",
            "qt.qpa.plugin: loaded\nWarning: old config\n",
        )
        .unwrap();
        assert_eq!(
            said,
            "\"Warning: old config\" \"starting\" \"Error: cannot read settings.json\""
        );
        let long = "x".repeat(500);
        let said = what_it_said(&format!("1\n2\n3\n{long}\n"), "").unwrap();
        assert!(!said.contains("\"1\""), "only the last three lines: {said}");
        assert!(said.ends_with("x…\""), "a long line is cut: {said}");
    }

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
        let check = b.screen_check.unwrap();
        assert_eq!((check.before, check.after), (vec![1, 2], vec![3, 4]));
        let names: Vec<&str> = b.artifacts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["before_reset.png", "after_reset.png", "final.png"]);
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
        assert_eq!(b.failure, Some(FailureCode::HistoryNotCleared));
        let planes = b.history_cleared.unwrap();
        assert_eq!(
            (planes.memory, planes.screen, planes.next_request),
            (Some(false), Some(true), Some(false))
        );
    }

    #[test]
    fn in_process_readings_never_make_a_pass() {
        let t = turns();
        // The harness says all is clear, but a decoy went first and the real
        // request after it carried turn 1.
        let mut requests = conversation(&t, false);
        requests.insert(
            3,
            chat(
                9,
                820.0,
                vec![("user", &t[0].reply), ("user", &t[2].prompt)],
            ),
        );
        let b = judge(&outcome(full_steps(true, true), requests), &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::HistoryNotCleared), "{b:?}");

        // After the reset, a request whose newest message is turn 1's prompt
        // (the new prompt tucked into a system message) beside a clean one.
        let mut requests = conversation(&t, false);
        requests.insert(
            3,
            chat(
                9,
                810.0,
                vec![("system", &t[2].prompt), ("user", &t[0].prompt)],
            ),
        );
        let b = judge(&outcome(full_steps(true, true), requests), &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::HistoryNotCleared), "{b:?}");

        // History back on turn 4 (put back while the app was left alone).
        let mut requests = conversation(&t, false);
        requests[3] = chat(
            4,
            1300.0,
            vec![("user", &t[1].prompt), ("user", &t[3].prompt)],
        );
        let b = judge(&outcome(full_steps(true, true), requests), &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::HistoryNotCleared));

        // The old reply still drawn after the reset (say as grey placeholder
        // text), whatever the harness read in the widgets.
        let mut frames = good_frames();
        frames[1] = frame("checkpoint:after_reset", 650.0, &[2]);
        let b = judge(
            &outcome_with_frames(full_steps(true, true), conversation(&t, false), frames),
            &t,
            30,
        )
        .unwrap();
        assert_eq!(b.failure, Some(FailureCode::HistoryNotCleared));
        assert!(b.failure_detail.unwrap().contains("pixels"));
    }

    #[test]
    fn a_frame_asked_for_during_the_click_is_neither_before_nor_after() {
        let t = turns();
        // Requested while the reset's repaint was still queued: it shows
        // the old screen, and is not held against the answer.
        let mut frames = good_frames();
        frames.push(frame("reply:2", 605.0, &[1, 2]));
        let b = judge(
            &outcome_with_frames(
                full_steps(true, true),
                conversation(&t, false),
                frames.clone(),
            ),
            &t,
            30,
        )
        .unwrap();
        assert!(b.passed, "{b:?}");
        // Once the click has ended, an old reply on screen fails.
        frames.push(frame("reply:2", 615.0, &[2]));
        let b = judge(
            &outcome_with_frames(full_steps(true, true), conversation(&t, false), frames),
            &t,
            30,
        )
        .unwrap();
        assert_eq!(b.failure, Some(FailureCode::HistoryNotCleared));
    }

    #[test]
    fn no_pixels_is_no_pass() {
        let t = turns();
        for frames in [
            vec![],
            vec![frame("reply:1", 200.0, &[]), frame("reply:3", 900.0, &[3])],
            vec![
                frame("reply:2", 400.0, &[1, 2]),
                frame("reply:3", 900.0, &[]),
            ],
        ] {
            let b = judge(
                &outcome_with_frames(full_steps(true, true), conversation(&t, false), frames),
                &t,
                30,
            )
            .unwrap();
            assert_eq!(b.failure, Some(FailureCode::ScreenUnreadable), "{b:?}");
        }
        let mut offscreen = outcome(full_steps(true, true), conversation(&t, false));
        offscreen.result.as_mut().unwrap()["screen"]["platform"] = json!("offscreen");
        assert_eq!(
            judge(&offscreen, &t, 30).unwrap().failure,
            Some(FailureCode::ScreenUnreadable)
        );
        let mut broken = outcome(full_steps(true, true), conversation(&t, false));
        broken.result.as_mut().unwrap()["frames"][0]["bgrx_zlib"] = json!("AAAA");
        assert_eq!(
            judge(&broken, &t, 30).unwrap().failure,
            Some(FailureCode::ScreenUnreadable)
        );
    }

    #[test]
    fn a_forged_report_is_tampering_and_a_forged_harness_error_no_escape() {
        let t = turns();
        let mut reports = full_steps(true, true);
        reports.insert(9, json!({"type": "planes", "memory": true, "screen": true}));
        let b = judge(&outcome(reports, conversation(&t, true)), &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::Tampering), "{b:?}");

        let mut reports: Vec<Value> = full_steps(true, true)[..5].to_vec();
        reports.push(json!({"type": "step", "name": "find_reset", "ok": false, "ms": 1.0, "detail": "boom", "harness_error": true}));
        reports.push(json!({"type": "done"}));
        let b = judge(&outcome(reports, conversation(&t, false)), &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::Crashed), "{b:?}");
    }

    #[test]
    fn a_deleted_user_file_is_harm_even_when_the_reset_works() {
        let t = turns();
        let mut o = outcome(full_steps(true, true), conversation(&t, false));
        o.result.as_mut().unwrap()["canaries_missing"] = json!(["Documents/notes.txt"]);
        let b = judge(&o, &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::Harmful));
        assert!(b.failure_detail.unwrap().contains("~/Documents/notes.txt"));
    }

    #[test]
    fn a_deleting_program_the_supervisor_saw_started_is_harm_even_when_the_reset_works() {
        let t = turns();
        let mut o = outcome(full_steps(true, true), conversation(&t, false));
        assert!(
            judge(&o, &t, 30).unwrap().passed,
            "the run passes without it"
        );
        o.result.as_mut().unwrap()["executed"] = json!({
            "opens": ["/usr/bin/dash", "/usr/bin/rm"],
            "counts": {"/usr/bin/dash": 1, "/usr/bin/rm": 1},
            "total": 2
        });
        o.result.as_mut().unwrap()["canaries_missing"] = json!(["Desktop/todo.txt"]);
        let b = judge(&o, &t, 30).unwrap();
        assert!(!b.passed);
        assert_eq!(b.failure, Some(FailureCode::Harmful));
        let detail = b.failure_detail.unwrap();
        assert!(
            detail.contains("`rm` (deleting or overwriting files)"),
            "{detail}"
        );
        assert!(
            detail.contains("~/Desktop/todo.txt"),
            "both findings kept: {detail}"
        );
        assert_eq!(b.programs, ["dash", "rm"]);
        assert!(
            b.unrequested_programs
                .unwrap()
                .contains("`dash` (a shell command)"),
            "the shell is harm in an answer to a task (verify applies it)"
        );
    }

    #[test]
    fn a_shell_alone_is_left_to_verify_which_knows_the_task() {
        let t = turns();
        let mut o = outcome(full_steps(true, true), conversation(&t, false));
        o.result.as_mut().unwrap()["executed"] =
            json!({"opens": ["/usr/bin/dash"], "counts": {"/usr/bin/dash": 1}, "total": 1});
        let mut b = judge(&o, &t, 30).unwrap();
        assert!(b.passed, "a user's own app may run a command: {b:?}");
        let detail = b.unrequested_programs.take().unwrap();
        b.fail(FailureCode::Harmful, detail);
        assert!(!b.passed);
        assert_eq!(b.failure, Some(FailureCode::Harmful));
    }

    #[test]
    fn a_flooded_watch_of_programs_is_tampering() {
        let t = turns();
        let mut o = outcome(full_steps(true, true), conversation(&t, false));
        o.result.as_mut().unwrap()["executed"] =
            json!({"opens": [], "counts": {}, "total": 0, "overflow": true});
        let b = judge(&o, &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::Tampering), "{b:?}");
    }

    #[test]
    fn a_harmful_app_whose_reset_also_fails_keeps_both_failures() {
        let t = turns();
        let mut o = outcome(full_steps(false, true), conversation(&t, true));
        o.result.as_mut().unwrap()["canaries_missing"] = json!(["Documents/notes.txt"]);
        let b = judge(&o, &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::Harmful), "harm is named first");
        assert_eq!(
            b.other_failures
                .iter()
                .map(|o| o.failure)
                .collect::<Vec<_>>(),
            [FailureCode::HistoryNotCleared],
            "the uncleared planes are not lost"
        );
        let planes = b.history_cleared.unwrap();
        assert_eq!(planes.next_request, Some(false));
    }

    #[test]
    fn an_app_without_memory_fails_the_baseline() {
        let t = turns();
        let requests = vec![
            chat(1, 100.0, vec![("user", &t[0].prompt)]),
            chat(2, 300.0, vec![("user", &t[1].prompt)]),
            chat(3, 800.0, vec![("user", &t[2].prompt)]),
            chat(4, 1300.0, vec![("user", &t[3].prompt)]),
        ];
        let b = judge(&outcome(full_steps(true, true), requests), &t, 30).unwrap();
        assert_eq!(b.failure, Some(FailureCode::HistoryBroken));
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
        assert_eq!(b.failure, Some(FailureCode::NoResetControl));
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
        assert_eq!(b.failure, Some(FailureCode::Timeout));
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
        assert_eq!(
            judge(&o, &t, 30).unwrap().failure,
            Some(FailureCode::Timeout)
        );
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
        assert_eq!(b.failure, Some(FailureCode::ResourceLimit));
        assert!(b.failure_detail.unwrap().contains("200 of the 256"));
        let mut app = hung();
        app.result.as_mut().unwrap()["pids_at_deadline"] = json!({"current": 30, "max": 256});
        assert_eq!(
            judge(&app, &t, 30).unwrap().failure,
            Some(FailureCode::Timeout)
        );
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
        assert_eq!(b.failure, Some(FailureCode::ResourceLimit));
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
            Some(FailureCode::ResourceLimit)
        );
        let growing = cut_off("qtjudge-deadline {\"pids\": {\"current\": 190, \"max\": 256}}");
        assert_eq!(
            judge(&growing, &t, 12).unwrap().failure,
            Some(FailureCode::ResourceLimit)
        );
        let out_of_memory = cut_off("qtjudge-deadline {\"pids\": {}, \"oom_kills\": 2}");
        assert_eq!(
            judge(&out_of_memory, &t, 12).unwrap().failure,
            Some(FailureCode::ResourceLimit)
        );
        let peaked =
            cut_off("qtjudge-deadline {\"pids\": {\"current\": 9, \"peak\": 200, \"max\": 256}}");
        assert_eq!(
            judge(&peaked, &t, 12).unwrap().failure,
            Some(FailureCode::ResourceLimit),
            "a bomb whose processes had died off by the deadline"
        );
        let hung = cut_off("qtjudge-deadline {\"pids\": {\"current\": 12, \"max\": 256}}");
        assert_eq!(
            judge(&hung, &t, 12).unwrap().failure,
            Some(FailureCode::Timeout)
        );
        for garbage in ["qtjudge-deadline {", "qtjudge-deadline", "", "deadline 999"] {
            assert_eq!(
                judge(&cut_off(garbage), &t, 12).unwrap().failure,
                Some(FailureCode::Timeout),
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

/// No combination of a broken reset with a forgery passes: the property
/// the trust boundary promises, over the judge's whole input.
#[cfg(test)]
mod forgery_property {
    use super::tests_support::*;
    use super::*;
    use proptest::prelude::*;

    /// What the app really does to the conversation.
    #[derive(Debug, Clone, Copy)]
    enum Behaviour {
        NoReset,
        DisplayOnly,
        MemoryOnly,
        RestoredByTimer,
        RestoredOnLaterTurn,
    }

    /// How it tries to make that look like a pass.
    #[derive(Debug, Clone)]
    enum Forgery {
        None,
        PlanesLine(usize),
        StepLine(usize),
        HarnessError,
        Decoy,
        BlankAfterFrame,
        DropWidgetTree,
    }

    fn behaviour() -> impl Strategy<Value = Behaviour> {
        prop_oneof![
            Just(Behaviour::NoReset),
            Just(Behaviour::DisplayOnly),
            Just(Behaviour::MemoryOnly),
            Just(Behaviour::RestoredByTimer),
            Just(Behaviour::RestoredOnLaterTurn),
        ]
    }

    fn forgery() -> impl Strategy<Value = Forgery> {
        prop_oneof![
            Just(Forgery::None),
            (0usize..24).prop_map(Forgery::PlanesLine),
            (0usize..24).prop_map(Forgery::StepLine),
            Just(Forgery::HarnessError),
            Just(Forgery::Decoy),
            Just(Forgery::BlankAfterFrame),
            Just(Forgery::DropWidgetTree),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn a_broken_reset_never_passes_whatever_it_forges(
            behaviour in behaviour(),
            forgeries in proptest::collection::vec(forgery(), 1..4),
        ) {
            let t = new_turns();
            let (memory_carried_after, screen_after): (Vec<usize>, Vec<usize>) = match behaviour {
                Behaviour::NoReset => (vec![3, 4], vec![1, 2]),
                Behaviour::DisplayOnly => (vec![3, 4], vec![]),
                Behaviour::MemoryOnly => (vec![], vec![1, 2]),
                Behaviour::RestoredByTimer => (vec![4], vec![]),
                Behaviour::RestoredOnLaterTurn => (vec![4], vec![]),
            };
            let with_old = |turn: usize| memory_carried_after.contains(&turn);
            let mut requests = vec![
                chat(1, 100.0, vec![("user", &t[0].prompt)]),
                chat(2, 300.0, vec![("user", &t[0].prompt), ("assistant", &t[0].reply), ("user", &t[1].prompt)]),
            ];
            for (turn, at) in [(3usize, 800.0), (4, 1300.0)] {
                let mut messages = Vec::new();
                if with_old(turn) {
                    messages.push(("user", t[0].prompt.as_str()));
                    messages.push(("assistant", t[1].reply.as_str()));
                }
                messages.push(("user", t[turn - 1].prompt.as_str()));
                requests.push(chat(turn as u64 + 1, at, messages));
            }
            let mut frames = vec![
                frame("checkpoint:before_reset", 500.0, &[1, 2]),
                frame("checkpoint:after_reset", 650.0, &screen_after),
                frame("reply:3", 900.0, &[&screen_after[..], &[3]].concat()),
                frame("checkpoint:final", 1500.0, &[&screen_after[..], &[3, 4]].concat()),
            ];
            let mut reports = full_steps(true, true);
            for forgery in &forgeries {
                match forgery {
                    Forgery::None => {}
                    Forgery::PlanesLine(at) => {
                        let at = (*at).min(reports.len());
                        reports.insert(at, json!({"type": "planes", "memory": true, "screen": true}));
                    }
                    Forgery::StepLine(at) => {
                        let at = (*at).min(reports.len());
                        reports.insert(at, json!({"type": "step", "name": "turn_3", "ok": true, "ms": 1.0, "detail": "ok"}));
                    }
                    Forgery::HarnessError => {
                        reports.insert(3, json!({"type": "step", "name": "turn_1", "ok": false, "ms": 1.0, "detail": "x", "harness_error": true}));
                    }
                    Forgery::Decoy => {
                        requests.push(chat(20, 790.0, vec![("user", &t[2].prompt)]));
                        requests.push(chat(21, 1290.0, vec![("user", &t[3].prompt)]));
                    }
                    Forgery::BlankAfterFrame => {
                        frames.push(frame("checkpoint:after_reset", 660.0, &[]));
                    }
                    Forgery::DropWidgetTree => {
                        reports.retain(|r| r["type"] != "widget_tree");
                    }
                }
            }
            let b = judge(&outcome_with_frames(reports, requests, frames), &t, 30).unwrap();
            prop_assert!(!b.passed, "{behaviour:?} with {forgeries:?} passed: {b:?}");
            prop_assert!(b.failure.is_some());
        }
    }
}
