//! A run the sandbox gave no result for: judged from the engine's view
//! (limits hit, output cut, the wall clock) and the supervisor's deadline
//! note, else not judged.

use serde_json::Value;

use super::judge::last_line;
use super::{Behaviour, NotJudged};
use crate::grading::FailureCode;
use crate::sandbox::SandboxOutcome;

pub(super) fn judge_without_result(
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
    // The wall clock as the host kept it: a busy machine lengthened it.
    let wall = match outcome.busy_allowance_ms {
        ms if ms >= 100 => format!(
            "{wall_seconds} s wall limit and {:.1} s more for a busy machine",
            ms as f64 / 1000.0
        ),
        _ => format!("{wall_seconds} s wall limit"),
    };
    let (failure, detail) = if let Some(why) = &outcome.output_too_large {
        // The answer filled the result past what the host reads: its
        // doing, so judged here rather than left to the engine's faults.
        (FailureCode::OutputTooLarge, why.clone())
    } else if let (true, Some(limit)) = (outcome.host_timeout, limit) {
        (
            FailureCode::ResourceLimit,
            format!(
                "the sandbox gave no result within the {wall} and was killed; the engine \
                 found {limit}"
            ),
        )
    } else if outcome.host_timeout {
        (
            FailureCode::Timeout,
            format!("the sandbox gave no result within the {wall} and was killed"),
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
        task_failure: None,
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
pub(super) struct DeadlineNote {
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
