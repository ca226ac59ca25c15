//! The behavioural check: the job the in-sandbox harness runs, and the
//! judgement of what it brought back (`Behaviour`).
//!
//! The host decides, not the sandbox: the next-request plane and the
//! baseline are read from the fake server's recordings, with markers the
//! host chose for this run. A file per concern, in the order a run's
//! evidence is read: `job` (what goes in), `judge` (the verdict of one
//! run, from `requests` and `frames`, or `no_result` when the sandbox gave
//! none), `behaviour` (what comes out).

mod behaviour;
mod frames;
mod job;
mod judge;
mod no_result;
mod request_text;
mod requests;
mod saved_file;
mod scenario;
mod screen_expect;
mod server_store;
mod unexplained;
mod user_files;

pub use crate::report_channel::Step;
pub use crate::turns::{new_turns, Turn};
pub use behaviour::{
    Artifact, Behaviour, Control, Discovered, NotJudged, OtherFailure, Planes, RequestSummary,
};
pub use job::{detect_binding, job, other_toolkit, turns_for, BINDINGS};
pub use judge::{judge, judge_answer, judge_scenario};
pub use unexplained::string_literals;

// The tests read every part's private helpers by name (`use super::*`).
#[cfg(test)]
use {
    crate::grading::FailureCode,
    crate::sandbox::SandboxOutcome,
    judge::*,
    requests::*,
    serde_json::{json, Value},
};

#[cfg(test)]
mod tests_support;

#[cfg(test)]
mod tests;

/// No combination of a broken reset with a forgery passes: the property
/// the trust boundary promises, over the judge's whole input.
#[cfg(test)]
mod forgery_property;
