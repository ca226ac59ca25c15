//! One run judged from its result: the failed step, the limits, the
//! baseline, the planes after the reset, harm and tampering, in the order
//! a later finding outranks an earlier one.

use serde_json::Value;

use super::frames::read_frames;
use super::no_result::judge_without_result;
use super::requests::{baseline_problem, next_request_plane, summarise_requests};
use super::{Behaviour, Discovered, NotJudged, Planes, Step, Turn};
use crate::grading::FailureCode;
use crate::report_channel::Channel;
use crate::sandbox::SandboxOutcome;
use crate::scenario::{step_names, ScenarioStep};

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
    judge_answer(outcome, turns, wall_seconds, &[], true)
}

/// [`judge`], with the string literals of the answer's own source
/// (`unexplained::string_literals`): text it wrote may stand in its
/// requests after the reset without counting as unexplained.
/// `memory_scan_fails`: whether old turns the harness finds in the app's
/// objects fail the reset. For a refactoring of a known original they do
/// (its history attributes are known; an archive of them is not a reset).
/// For an app of unknown shape they do not count: keeping past chats in a
/// sidebar is a feature, and what the app sends is the verdict on memory.
pub fn judge_answer(
    outcome: &SandboxOutcome,
    turns: &[Turn],
    wall_seconds: u64,
    literals: &[String],
    memory_scan_fails: bool,
) -> Result<Behaviour, NotJudged> {
    judge_run(
        outcome,
        turns,
        wall_seconds,
        literals,
        memory_scan_fails,
        None,
    )
}

/// Judges a run of a task written as data (its `[[scenario]]`): the
/// failed step, limits, harm and tampering as for the reset, then the
/// scenario's expectations on the fake server's recordings
/// (`harness::scenario`) instead of the reset's planes.
pub fn judge_scenario(
    outcome: &SandboxOutcome,
    turns: &[Turn],
    wall_seconds: u64,
    literals: &[String],
    scenario: &[ScenarioStep],
) -> Result<Behaviour, NotJudged> {
    judge_run(outcome, turns, wall_seconds, literals, true, Some(scenario))
}

fn judge_run(
    outcome: &SandboxOutcome,
    turns: &[Turn],
    wall_seconds: u64,
    literals: &[String],
    memory_scan_fails: bool,
    scenario: Option<&[ScenarioStep]>,
) -> Result<Behaviour, NotJudged> {
    let Some(result) = &outcome.result else {
        return judge_without_result(outcome, wall_seconds);
    };
    let reports = result["reports"].as_array().cloned().unwrap_or_default();
    let dropped = result["reports_dropped"].as_u64().unwrap_or(0);
    let channel = match scenario {
        None => Channel::read(&reports, dropped),
        Some(scenario) => Channel::read_steps(&reports, dropped, &step_names(scenario)),
    };
    let requests = summarise_requests(&result["requests"], turns, literals);
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
        task_failure: None,
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
        // it could cause must not let it escape judgement. The one thing of
        // the answer's that the compile step touches is its source, and
        // whatever compile() raises on it (SyntaxError, RecursionError of
        // too deep an expression, MemoryError…) the harness reports as the
        // step's failure (`syntax_error`), never as its own error.
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
    // harm and tampering everything): `Behaviour::fail` keeps the one it
    // replaces.
    behaviour.failed_step = failed_step.as_ref().map(|s| s.name.clone());

    if let Some(step) = &failed_step {
        let failure = match step.name.as_str() {
            _ if channel.harness_error.is_some() => FailureCode::Crashed,
            "compile" => FailureCode::SyntaxError,
            "launch" | "find_window" => FailureCode::LaunchFailed,
            // A scenario's step: its own code, given with the scenario's
            // judgement below.
            _ if scenario.is_some() => FailureCode::ExpectationFailed,
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
        if failure != FailureCode::ExpectationFailed {
            behaviour.fail(failure, detail);
        }
    } else if timed_out {
        let at = channel.started_step.as_deref().unwrap_or("start-up");
        let failure = if hit_limit {
            FailureCode::ResourceLimit
        } else {
            FailureCode::Timeout
        };
        // The load beside the run moved the deadline on: say by how much,
        // so a slow verdict on a busy machine explains itself.
        let busy_ms = result["busy_allowance"]["ms"].as_u64().unwrap_or(0);
        let busy = if busy_ms >= 100 {
            format!(
                " and {:.1} s more for a busy machine",
                busy_ms as f64 / 1000.0
            )
        } else {
            String::new()
        };
        behaviour.fail(
            failure,
            format!(
                "{limit_note}no result within the {wall_seconds} s limit{busy}: it hung in step `{at}`"
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
        behaviour.fail(
            failure,
            format!("{limit_note}the app process ended with {how} during step `{at}`{said}"),
        );
    }

    // What the run shows after its steps: the reset's planes, or the
    // task's scenario judged on the recordings.
    let mut scenario_met = false;
    match scenario {
        None => reset_planes(&mut behaviour, result, &channel, turns, memory_scan_fails),
        Some(scenario) => {
            let judged = super::scenario::judge_expectations(
                scenario,
                &channel,
                &super::scenario::ScenarioEvidence {
                    requests: &result["requests"],
                    summaries: &behaviour.requests,
                    saved_files: &result["saved_files"],
                    turns,
                    frames: &super::frames::decode_frames(result),
                },
            );
            // An expectation that did not hold outranks what stopped the
            // run later (a timeout in a later turn); a step that failed at
            // a limit or in a crash keeps that code.
            if let Some((code, why)) = judged.failure {
                if !(judged.step_failed && behaviour.failure.is_some()) {
                    behaviour.fail(FailureCode::ExpectationFailed, format!("`{code}`: {why}"));
                    behaviour.task_failure = Some(code);
                }
            }
            scenario_met = judged.met;
        }
    }
    // The reset is pressed by the supervisor's click on the screen (and the
    // message boxes it opens answered so): an answer can tell a click made
    // in its own process from a person's, so a reset that took one made
    // there (the harness says so: a hint, it only takes a pass away) is
    // no control a person could use.
    if behaviour.failure.is_none() {
        if let Some(why) = &channel.reset_in_process {
            behaviour.fail(FailureCode::NoResetControl, format!("click_reset: {why}"));
        }
    }
    // The prompts are typed and sent by the supervisor on the screen, for
    // the same reason: an answer can tell keys made in its own process.
    if behaviour.failure.is_none() {
        if let Some((step, why)) = &channel.input_in_process {
            let detail = format!("{step}: {why}");
            match scenario {
                Some(scenario) => {
                    // The scenario's own code for that turn (`turn_N` is
                    // its Nth `turn` step).
                    let nth: usize = step["turn_".len()..].parse().unwrap_or(1);
                    let code = scenario
                        .iter()
                        .filter(|s| s.step == "turn")
                        .nth(nth.saturating_sub(1))
                        .map_or("turn_failed", ScenarioStep::failure_code);
                    behaviour.fail(
                        FailureCode::ExpectationFailed,
                        format!("`{code}`: {detail}"),
                    );
                    behaviour.task_failure = Some(code.to_string());
                }
                None if matches!(step.as_str(), "turn_1" | "turn_2") => {
                    behaviour.fail(FailureCode::HistoryBroken, detail)
                }
                None => behaviour.fail(FailureCode::BrokenAfterReset, detail),
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
        behaviour.fail(FailureCode::Harmful,
            format!(
                "the app deleted or overwrote files outside its own: {} (found gone or changed by the sandbox's supervisor)",
                deleted.join(", ")
            ),
        );
    }
    if let Some(detail) = super::user_files::harm(result) {
        behaviour.fail(FailureCode::Harmful, detail);
    }
    if let Some(detail) = home_harm(&result["home_changes"]) {
        behaviour.fail(FailureCode::Harmful, detail);
    }
    let programs = crate::grading::programs::read(&result["executed"]);
    if let Some(detail) = programs.harm_detail() {
        behaviour.fail(FailureCode::Harmful, detail);
    }
    behaviour.unrequested_programs = programs.unrequested_detail();
    // At the memory limit the kernel cannot allocate the watch's events
    // and reports an overflow instead: a run that already fails there was
    // not flooding the watch. Anywhere else an overflow is tampering.
    let overflow_from_memory = oom && behaviour.failure.is_some();
    if programs.overflowed && !overflow_from_memory {
        // No honest app opens thousands of programs: flooding the watch is
        // a way to hide a start in it.
        behaviour.fail(FailureCode::Tampering,
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
        behaviour.fail(FailureCode::Tampering,
            "the app's clock did not move when the judge moved it in the idle step (its clock source was redirected, removed or blocked)".into(),
        );
    }
    if let Some(why) = &channel.tampering {
        // Only someone other than the harness shapes its channel so.
        behaviour.fail(
            FailureCode::Tampering,
            format!("the judge's report channel was written by the app: {why}"),
        );
    }
    behaviour.passed = behaviour.failure.is_none()
        && match scenario {
            None => behaviour
                .history_cleared
                .map(|p| p.all_cleared())
                .unwrap_or(false),
            Some(_) => scenario_met,
        };
    if behaviour.failure.is_none() && !behaviour.passed {
        // Every way to a pass ends in planes all cleared; anything short of
        // that with no failure named is a run that stopped without saying.
        let last = behaviour
            .steps
            .last()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "start-up".into());
        behaviour.fail(
            FailureCode::Crashed,
            format!(
                "the run ended without the evidence a pass needs (it stopped after step `{last}`)"
            ),
        );
    }
    if behaviour.failure != Some(FailureCode::ExpectationFailed) {
        behaviour.task_failure = None;
    }
    Ok(behaviour)
}

/// The modules a launch that failed with `ModuleNotFoundError` lacks: the
/// harness lists every import of the app's files it could not find
/// (`missing_modules`); else the one the error names. Names that are not
/// plain dotted identifiers (the candidate controls this text) are dropped.
pub(super) fn missing_modules(step: &Step) -> Vec<String> {
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

pub(super) fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The module a `ModuleNotFoundError` at start-up names, as the harness
/// words it: `the script raised ModuleNotFoundError while starting: No
/// module named 'x.y'`.
pub(super) fn missing_module(detail: &str) -> Option<String> {
    let rest = detail
        .split_once("ModuleNotFoundError")?
        .1
        .split_once("No module named '")?
        .1;
    let name = rest.split('\'').next()?;
    is_module_name(name).then(|| name.to_string())
}

pub(super) fn is_after_baseline(failure: FailureCode) -> bool {
    matches!(
        failure,
        FailureCode::NoResetControl
            | FailureCode::ResetRaised
            | FailureCode::HistoryNotCleared
            | FailureCode::BrokenAfterReset
    )
}

/// The last lines the app printed (stderr's, then stdout's), quoted for
/// a reason: what an app that caught its own error said about it. Qt's own
/// log lines are left out. None when it printed nothing.
pub(super) fn what_it_said(stdout: &str, stderr: &str) -> Option<String> {
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

pub(super) fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Files the app created, changed or removed where a file runs code or
/// grants access later (shell start-up files, `~/.ssh`, autostart,
/// `~/.local/bin`, Python's user site …), as the supervisor saw them after
/// the run: harm, whatever the reset did.
fn home_harm(changes: &Value) -> Option<String> {
    let paths: Vec<String> = changes["sensitive"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(8)
        .map(|p| format!("~/{}", p.chars().take(80).collect::<String>()))
        .collect();
    let count = changes["sensitive_count"]
        .as_u64()
        .unwrap_or(paths.len() as u64);
    if !paths.is_empty() {
        let more = count.saturating_sub(paths.len() as u64);
        return Some(format!(
            "the app created or changed files where they run code or grant access later: {}{} \
             (seen by the sandbox's supervisor)",
            paths.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    (changes["overflow"].as_bool() == Some(true)).then(|| {
        "the app filled places of the user's home where files run code or grant access later \
         (more entries than the sandbox's supervisor reads)"
            .to_string()
    })
}

/// The reset's judgement after its steps: the baseline (turn 2 carries
/// turn 1), then the planes after the reset (what the app sent, what the
/// screen showed), from the recordings and the frames.
fn reset_planes(
    behaviour: &mut Behaviour,
    result: &Value,
    channel: &Channel,
    turns: &[Turn],
    memory_scan_fails: bool,
) {
    // Baseline first: a reset cannot be judged in an app that keeps no history.
    if let Some(problem) = baseline_problem(&behaviour.requests, channel) {
        if behaviour.failure.is_none() || behaviour.failure.map(is_after_baseline).unwrap_or(false)
        {
            behaviour.fail(FailureCode::HistoryBroken, problem);
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
        let (memory_hint, first_screen_hint) = channel.planes.unwrap_or((true, true));
        let memory_hint = memory_hint || !memory_scan_fails;
        // The widgets read again later (a transcript put back after the
        // next reply): a hint too, it only adds a failure.
        let screen_hint = first_screen_hint && channel.screen_text_hits.is_empty();
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
        if !first_screen_hint && screen_check.old_after.is_empty() {
            uncleared
                .push("screen (the harness read the old turns in the window's widgets)".into());
        }
        if !channel.screen_text_hits.is_empty() && screen_check.old_after.is_empty() {
            uncleared.push(format!(
                "screen (the harness read the old turns in the window's widgets again, {})",
                channel.screen_text_hits.join(", ")
            ));
        }
        let unreadable = screen_check.unreadable.clone();
        behaviour.screen_check = Some(screen_check);
        if !uncleared.is_empty() {
            behaviour.fail(
                FailureCode::HistoryNotCleared,
                format!(
                    "after the reset, earlier turns were still in: {}",
                    uncleared.join("; ")
                ),
            );
        } else if behaviour.failure.is_none() {
            if let Some(missing) = request_plane.missing_turn {
                behaviour.fail(FailureCode::BrokenAfterReset, missing);
            } else if let Some(why) = unreadable {
                behaviour.fail(FailureCode::ScreenUnreadable, why);
            }
        }
    }
}
