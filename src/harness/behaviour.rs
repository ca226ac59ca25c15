//! What the judge brings back: `Behaviour` (the JSON contract of
//! `qtjudge verify`), its planes, artifacts and the harness's account of
//! what it drove; `NotJudged` when the run says nothing of the answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Step;
use crate::grading::screen::ScreenCheck;
use crate::grading::FailureCode;

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
    /// With `failure` `expectation_failed`: the task's own code for the
    /// step or expectation of its scenario that did not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_failure: Option<String>,
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
    /// The button clicked before the first turn because the input or send
    /// did nothing until a chat existed (`+ New Chat`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_chat: Option<String>,
    /// The reset closed (or hid, or deleted) the window being driven and
    /// showed a new one, which the harness went on in: what it said of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followed_window: Option<String>,
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
    pub(super) fn from_report(report: &Value) -> Option<Discovered> {
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
        d.started_chat.iter_mut().for_each(cap);
        d.followed_window.iter_mut().for_each(cap);
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
    /// Why the fake server could not read its body whole as strict JSON
    /// (cut short, past the size read, NaN, a lone surrogate, not JSON):
    /// after the reset such a request counts as carrying the old turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The text it held that neither the app's frame nor the new turns
    /// explain (`unexplained`); read for requests after turn 2's.
    #[serde(skip)]
    pub novel: Option<super::unexplained::Novel>,
}

/// The run could not be judged: an infrastructure fault, not the answer's.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("the harness could not judge this run: {0}")]
pub struct NotJudged(pub String);
