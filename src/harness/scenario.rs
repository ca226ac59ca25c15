//! A scenario's expectations judged (issue 21: tasks written as data):
//! from the fake server's recordings, which the supervisor keeps outside
//! the candidate's process. The harness's steps only say how far the run
//! got (a step that failed, a hint for the report); a pass needs every
//! request of each `turn` with expectations to meet them.

use serde_json::Value;

use super::saved_file::{saved_file, unmet_on_file};
use super::screen_expect::unmet_on_screen;
use super::RequestSummary;
use crate::grading::screen::Frame;
use crate::report_channel::Channel;
use crate::scenario::{at_path, fill, json_contains, json_equals, step_names, ScenarioStep};
use crate::turns::Turn;

/// The first thing of the scenario that did not hold, in its order: a
/// step that failed (its code) or an expectation of a step before it.
/// `(task's code, reason)`; `None` when everything reached held and every
/// step was reached.
pub(super) struct ScenarioJudgement {
    pub(super) failure: Option<(String, String)>,
    /// The failure is a step that failed (not an expectation that did not
    /// hold): a limit or a crash the run already names explains it better.
    pub(super) step_failed: bool,
    /// Every step reported done and every expectation met.
    pub(super) met: bool,
}

/// What the supervisor kept of a scenario's run, outside the candidate's
/// process: the fake server's recordings (in the order `summaries`
/// summarised them, one for one), the files it read after each file
/// dialog, and the turns it typed.
pub(super) struct ScenarioEvidence<'a> {
    pub(super) requests: &'a Value,
    pub(super) summaries: &'a [RequestSummary],
    pub(super) saved_files: &'a Value,
    pub(super) turns: &'a [Turn],
    /// The supervisor's frames of the screen, or why they were not read.
    pub(super) frames: &'a Result<Vec<Frame>, String>,
}

/// Judges `scenario` against the run's evidence.
pub(super) fn judge_expectations(
    scenario: &[ScenarioStep],
    channel: &Channel,
    evidence: &ScenarioEvidence,
) -> ScenarioJudgement {
    let (requests, summaries) = (evidence.requests, evidence.summaries);
    // The values this run typed, and so expects: `{nonce}` is its own word.
    let nonce = crate::scenario::run_nonce(evidence.turns);
    let scenario: Vec<ScenarioStep> = scenario.iter().map(|s| s.for_run(&nonce)).collect();
    let scenario = scenario.as_slice();
    let names = step_names(scenario);
    let recorded: Vec<&Value> = requests
        .as_array()
        .into_iter()
        .flatten()
        .take(1000)
        .collect();
    let mut turn = 0usize;
    let mut dialogs = 0usize;
    for (at, (step, name)) in scenario.iter().zip(&names[3..]).enumerate() {
        let this_turn = (step.step == "turn").then(|| {
            turn += 1;
            turn - 1
        });
        let Some(reported) = channel.steps.iter().find(|s| &s.name == name) else {
            // Never reached: an earlier step stopped the run (judged there).
            return ScenarioJudgement {
                failure: None,
                step_failed: false,
                met: false,
            };
        };
        if !reported.ok {
            let reason = if step.reason.is_empty() {
                String::new()
            } else {
                format!("{}: ", step.reason)
            };
            return ScenarioJudgement {
                failure: Some((
                    step.failure_code().to_string(),
                    format!("{reason}{name}: {}", reported.detail),
                )),
                step_failed: true,
                met: false,
            };
        }
        if step.step == "click" && reported.evidence["delivered"].as_str() != Some("screen") {
            // As the reset's: no pass rests on a click made in the app.
            return ScenarioJudgement {
                failure: Some((
                    step.failure_code().to_string(),
                    format!("{name}: a person's click on the screen did not reach the control (covered, off the screen, or its events dropped)"),
                )),
                step_failed: false,
                met: false,
            };
        }
        if step.step == "set" && reported.evidence["input"].as_str() == Some("in_process") {
            // As a turn's prompt: no pass rests on a value typed in the app.
            return ScenarioJudgement {
                failure: Some((
                    step.failure_code().to_string(),
                    format!("{name}: a person's keys on the screen did not reach the control (covered, off the screen, or its key events dropped); the value was typed in the app's process instead"),
                )),
                step_failed: false,
                met: false,
            };
        }
        let saved = (step.step == "answer_file_dialog").then(|| {
            dialogs += 1;
            saved_file(evidence.saved_files, dialogs - 1)
        });
        if let Some(saved) = &saved {
            // As a click: no pass rests on a file name typed in the app.
            let why = if reported.evidence["delivered"].as_str() != Some("screen") {
                Some("the file name was entered in the app's process: the screen's keys did not reach the dialog's file name field")
            } else if !saved.typed {
                Some("the supervisor could not type the file name into the dialog and press Return")
            } else {
                None
            };
            if let Some(why) = why {
                return ScenarioJudgement {
                    failure: Some((step.failure_code().to_string(), format!("{name}: {why}"))),
                    step_failed: false,
                    met: false,
                };
            }
        }
        for expectation in &step.expect {
            if let Some(saved) = &saved {
                let before = &evidence.turns[..turn.min(evidence.turns.len())];
                if let Some(why) = unmet_on_file(expectation, &step.path, saved, before) {
                    return ScenarioJudgement {
                        failure: Some((expectation.failure.clone(), why)),
                        step_failed: false,
                        met: false,
                    };
                }
                continue;
            }
            if expectation.on_screen() {
                // A turn hidden stays hidden to the run's end, unless a
                // later step expects it shown again.
                let shown_later: Vec<usize> = scenario[at + 1..]
                    .iter()
                    .flat_map(|s| &s.expect)
                    .flat_map(|e| e.shows_turns.iter().copied())
                    .collect();
                let place = super::screen_expect::StepPlace {
                    step: &step.step,
                    name,
                    turn,
                    shown_later: &shown_later,
                };
                let read_back = || {
                    // The harness read them in the widgets after the step:
                    // a hint, so it can only fail the expectation.
                    let (_, widgets) = channel
                        .read_back
                        .iter()
                        .find(|(at, _)| at == name && !expectation.hides_turns.is_empty())?;
                    let found = format!("them in the window's widgets ({widgets})");
                    Some(format!(
                        "{} (the harness read the turns in the app's widgets after `{name}`: text scrolled or hidden out of sight is still there)",
                        fill(&expectation.reason, &[("turn", turn.to_string()), ("found", found)])
                    ))
                };
                if let Some(why) =
                    unmet_on_screen(expectation, &place, evidence.frames).or_else(read_back)
                {
                    return ScenarioJudgement {
                        failure: Some((expectation.failure.clone(), why)),
                        step_failed: false,
                        met: false,
                    };
                }
                continue;
            }
            if expectation.alive {
                if !channel.done {
                    let filled = fill(&expectation.reason, &[("turn", turn.to_string())]);
                    return ScenarioJudgement {
                        failure: Some((
                            expectation.failure.clone(),
                            format!("{filled} (the app did not run to the end of the scenario)"),
                        )),
                        step_failed: false,
                        met: false,
                    };
                }
                continue;
            }
            let Some(index) = this_turn else { continue };
            if let Some(why) = unmet(expectation, index, &recorded, summaries) {
                return ScenarioJudgement {
                    failure: Some((expectation.failure.clone(), why)),
                    step_failed: false,
                    met: false,
                };
            }
        }
    }
    ScenarioJudgement {
        failure: None,
        step_failed: false,
        met: channel.done,
    }
}

/// Why the requests of turn `index` do not meet `expectation`, if they do
/// not: every one must (a decoy beside the real request passes nothing),
/// and there must be one.
fn unmet(
    expectation: &crate::scenario::Expectation,
    index: usize,
    recorded: &[&Value],
    summaries: &[RequestSummary],
) -> Option<String> {
    let paths = expectation.json_path.paths();
    let expected = expectation
        .equals
        .as_ref()
        .or(expectation.contains.as_ref());
    let shown = |v: &Value| {
        let text = v.to_string();
        if text.chars().count() > 120 {
            text.chars().take(120).collect::<String>() + "…"
        } else {
            text
        }
    };
    let mut fields = vec![
        ("path", paths.join(" or ")),
        (
            "expected",
            expected.map_or_else(|| "nothing".to_string(), shown),
        ),
        ("turn", (index + 1).to_string()),
    ];
    let mine: Vec<(&RequestSummary, &Value)> = summaries
        .iter()
        .zip(recorded)
        .filter(|(s, _)| s.turn == Some(index))
        .map(|(s, r)| (s, *r))
        .collect();
    if mine.is_empty() {
        fields.push(("found", "no request".into()));
        fields.push(("request", "no request".into()));
        return Some(format!(
            "{} (no request carrying turn {} reached the model API)",
            fill(&expectation.reason, &fields),
            index + 1
        ));
    }
    for (summary, request) in mine {
        let name = format!(
            "request #{} {} {}",
            summary.seq, summary.method, summary.path
        );
        let body = &request["body"];
        let found = paths.iter().find_map(|p| at_path(body, p).map(|v| (*p, v)));
        let holds = if summary.unreadable.is_some() || body.is_null() {
            // Not read whole: it may say anything (fail closed).
            false
        } else if expectation.present {
            found.is_some()
        } else if expectation.absent {
            found.is_none()
        } else if let Some(equals) = &expectation.equals {
            found.is_some_and(|(_, v)| json_equals(v, equals))
        } else if let Some(contains) = &expectation.contains {
            found.is_some_and(|(_, v)| json_contains(v, contains))
        } else {
            true
        };
        if !holds {
            let found_text = match (&summary.unreadable, found) {
                (Some(why), _) => format!("a body that could not be read ({why})"),
                (None, _) if body.is_null() => "no JSON body".to_string(),
                (None, Some((path, value))) => {
                    fields[0].1 = path.to_string();
                    shown(value)
                }
                (None, None) => "nothing".to_string(),
            };
            fields.push(("found", found_text));
            fields.push(("request", name.clone()));
            return Some(format!("{} ({name})", fill(&expectation.reason, &fields)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::judge_expectations;
    use crate::report_channel::Channel;
    use crate::scenario::{step_names, ScenarioStep};

    /// A run whose screen showed nothing (no expectation here is on it).
    pub(super) static NO_FRAMES: Result<Vec<crate::grading::screen::Frame>, String> =
        Ok(Vec::new());

    fn evidence<'a>(
        requests: &'a Value,
        summaries: &'a [super::RequestSummary],
        turns: &'a [crate::turns::Turn],
    ) -> super::ScenarioEvidence<'a> {
        super::ScenarioEvidence {
            requests,
            summaries,
            saved_files: &Value::Null,
            turns,
            frames: &NO_FRAMES,
        }
    }

    fn scenario() -> Vec<ScenarioStep> {
        #[derive(serde::Deserialize)]
        struct File {
            scenario: Vec<ScenarioStep>,
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/tasks/temperature-control/task.toml");
        let text = std::fs::read_to_string(path).unwrap();
        toml::from_str::<File>(&text).unwrap().scenario
    }

    /// The reports an honest harness sends for the scenario, every step ok
    /// up to `failing` (which fails).
    fn reports(scenario: &[ScenarioStep], failing: Option<&str>) -> Vec<Value> {
        let mut reports = Vec::new();
        for name in step_names(scenario) {
            reports.push(json!({"type": "step_start", "name": name}));
            if name.starts_with("turn_") {
                reports.push(json!({"type": "turn", "index": 0}));
            }
            let ok = failing != Some(name.as_str());
            reports.push(json!({"type": "step", "name": name, "ok": ok, "ms": 1.0, "detail": if ok { "ok" } else { "no control" }}));
            if !ok {
                break;
            }
        }
        reports.push(json!({"type": "done"}));
        reports
    }

    fn requests(turns: &[crate::turns::Turn], temperatures: [Option<f64>; 3]) -> Value {
        let mut all = vec![json!({"seq": 1, "method": "GET", "path": "/api/tags", "body": null})];
        for (i, temperature) in temperatures.iter().enumerate() {
            let mut body = json!({"model": "llama3", "messages": [{"role": "user", "content": turns[i].prompt}], "stream": false});
            if let Some(t) = temperature {
                body["options"] = json!({"temperature": t});
            }
            all.push(json!({"seq": i + 2, "method": "POST", "path": "/api/chat", "body": body}));
        }
        Value::Array(all)
    }

    fn judged(temperatures: [Option<f64>; 3], failing: Option<&str>) -> super::ScenarioJudgement {
        let scenario = scenario();
        let mut turns = crate::turns::new_turns();
        turns.truncate(3);
        let channel = Channel::read_steps(&reports(&scenario, failing), 0, &step_names(&scenario));
        assert!(channel.tampering.is_none(), "{:?}", channel.tampering);
        let requests = requests(&turns, temperatures);
        let summaries = super::super::requests::summarise_requests(&requests, &turns, &[]);
        judge_expectations(
            &scenario,
            &channel,
            &evidence(&requests, &summaries, &turns),
        )
    }

    #[test]
    fn the_temperature_set_and_sent_meets_the_scenario() {
        let ok = judged([None, Some(0.2), Some(0.9)], None);
        assert!(ok.met && ok.failure.is_none());
    }

    #[test]
    fn each_way_of_missing_it_gets_the_tasks_code_and_reason() {
        let (code, why) = judged([None, Some(0.7), Some(0.7)], None).failure.unwrap();
        assert_eq!(code, "wrong_temperature");
        assert!(why.starts_with("the request after setting 0.2 had options.temperature 0.7 (request #3 POST /api/chat)"), "{why}");
        let (code, why) = judged([None, None, None], None).failure.unwrap();
        assert_eq!(code, "temperature_not_sent");
        assert!(why.contains("had no options.temperature"), "{why}");
        // A constant 0.2 meets the first setting, not the second.
        let (code, why) = judged([None, Some(0.2), Some(0.2)], None).failure.unwrap();
        assert_eq!(code, "wrong_temperature");
        assert!(
            why.contains("setting 0.9 had options.temperature 0.2"),
            "{why}"
        );
        let failed = judged([None, None, None], Some("set_1"));
        let (code, why) = failed.failure.unwrap();
        assert_eq!(code, "no_temperature_control");
        assert!(why.contains("set_1: no control"), "{why}");
        assert!(!failed.met);
    }

    #[test]
    fn a_turn_whose_request_never_came_fails_its_expectations() {
        let scenario = scenario();
        let mut turns = crate::turns::new_turns();
        turns.truncate(3);
        let channel = Channel::read_steps(&reports(&scenario, None), 0, &step_names(&scenario));
        // Only the first turn's request reached the fake server.
        let requests = Value::Array(
            requests(&turns, [None, Some(0.2), Some(0.9)])
                .as_array()
                .unwrap()[..2]
                .to_vec(),
        );
        let summaries = super::super::requests::summarise_requests(&requests, &turns, &[]);
        let judged = judge_expectations(
            &scenario,
            &channel,
            &evidence(&requests, &summaries, &turns),
        );
        let (code, why) = judged.failure.unwrap();
        assert_eq!(code, "temperature_not_sent");
        assert!(why.contains("no request carrying turn 2"), "{why}");
    }

    /// A file dialog is reported only in a click of a scenario that
    /// answers one: elsewhere the line is not the harness's.
    #[test]
    fn a_file_dialog_report_where_none_is_due_is_tampering() {
        let scenario = scenario();
        let mut reports = reports(&scenario, None);
        let at = reports
            .iter()
            .position(|r| r["type"] == "step_start" && r["name"] == "set_1")
            .unwrap();
        reports.insert(at + 1, json!({"type": "file_dialog", "rect": [1, 2, 3, 4]}));
        let channel = Channel::read_steps(&reports, 0, &step_names(&scenario));
        assert!(channel
            .tampering
            .is_some_and(|why| why.contains("`file_dialog`")));
    }

    #[test]
    fn the_reset_steps_are_not_a_scenarios_and_the_reverse() {
        let scenario = scenario();
        // A scenario's report read as the reset's: out of order.
        let channel = Channel::read(&reports(&scenario, None), 0);
        assert!(channel.tampering.is_some());
    }
}

#[cfg(test)]
mod click_and_job {
    use serde_json::json;

    use super::judge_expectations;
    use super::tests::NO_FRAMES;
    use crate::report_channel::Channel;
    use crate::scenario::{step_names, ScenarioStep};

    fn click_scenario() -> Vec<ScenarioStep> {
        vec![ScenarioStep {
            step: "click".into(),
            control: "(?i)stop".into(),
            kinds: Vec::new(),
            value: None,
            seconds: None,
            path: String::new(),
            failure: "no_stop_button".into(),
            reason: String::new(),
            expect: Vec::new(),
        }]
    }

    fn clicked(delivered: &str) -> super::ScenarioJudgement {
        let scenario = click_scenario();
        let mut reports = Vec::new();
        for name in step_names(&scenario) {
            reports.push(json!({"type": "step_start", "name": name}));
            let mut evidence = json!({});
            if name == "click_1" {
                reports.push(json!({"type": "approach", "rect": [1, 2, 3, 4]}));
                evidence = json!({"delivered": delivered});
            }
            reports.push(json!({"type": "step", "name": name, "ok": true, "ms": 1.0, "detail": "ok", "evidence": evidence}));
        }
        reports.push(json!({"type": "done"}));
        let channel = Channel::read_steps(&reports, 0, &step_names(&scenario));
        assert!(channel.tampering.is_none(), "{:?}", channel.tampering);
        judge_expectations(
            &scenario,
            &channel,
            &super::ScenarioEvidence {
                requests: &json!([]),
                summaries: &[],
                saved_files: &json!([]),
                turns: &[],
                frames: &NO_FRAMES,
            },
        )
    }

    /// Turns a click must hide, gone from the pixels but read by the
    /// harness in the widgets after it (scrolled out of sight): the hint
    /// fails the expectation; without it the pixels alone meet it.
    #[test]
    fn turns_read_back_in_the_widgets_fail_hides_turns() {
        let scenario: Vec<ScenarioStep> = serde_json::from_value(json!([
            {"step": "click", "control": "(?i)clear", "failure": "no_clear_button",
             "expect": [{"hides_turns": [1], "failure": "transcript_not_cleared", "reason": "after Clear the screen showed {found}"}]},
        ]))
        .unwrap();
        let frames: Vec<_> = [("reply:1", 1.0, vec![1]), ("click:1", 2.0, vec![])]
            .iter()
            .map(|(name, at, turns)| {
                crate::grading::screen::Frame::decode(&crate::harness::tests_support::frame(
                    name, *at, turns,
                ))
                .unwrap()
            })
            .collect();
        let judged = |read_back: Option<bool>| {
            let mut reports = Vec::new();
            for name in step_names(&scenario) {
                reports.push(json!({"type": "step_start", "name": name}));
                let mut evidence = json!({});
                if name == "click_1" {
                    reports.push(json!({"type": "approach", "rect": [1, 2, 3, 4]}));
                    if let Some(cleared) = read_back {
                        reports.push(
                            json!({"type": "screen_text", "where": "click_1", "cleared": cleared,
                                            "hits": [{"widget": "QPlainTextEdit", "text": "…"}]}),
                        );
                    }
                    evidence = json!({"delivered": "screen"});
                }
                reports.push(json!({"type": "step", "name": name, "ok": true, "ms": 1.0, "detail": "ok", "evidence": evidence}));
            }
            reports.push(json!({"type": "done"}));
            let channel = Channel::read_steps(&reports, 0, &step_names(&scenario));
            assert!(channel.tampering.is_none(), "{:?}", channel.tampering);
            judge_expectations(
                &scenario,
                &channel,
                &super::ScenarioEvidence {
                    requests: &json!([]),
                    summaries: &[],
                    saved_files: &json!([]),
                    turns: &[],
                    frames: &Ok(frames.clone()),
                },
            )
        };
        assert!(judged(None).met);
        assert!(judged(Some(true)).met);
        let (code, why) = judged(Some(false)).failure.unwrap();
        assert_eq!(code, "transcript_not_cleared");
        assert!(
            why.contains("widgets (QPlainTextEdit)") && why.contains("`click_1`"),
            "{why}"
        );
    }

    /// As the reset's: a click that reached the control only inside the
    /// app's process is no pass.
    #[test]
    fn a_click_passes_only_through_the_screen() {
        assert!(clicked("screen").met);
        let judged = clicked("in_process");
        let (code, why) = judged.failure.unwrap();
        assert_eq!(code, "no_stop_button");
        assert!(why.contains("did not reach the control"), "{why}");
    }

    /// As a turn's prompt: a `set` value typed in the app's process (the
    /// screen's keys did not reach the control) is no pass; one the
    /// screen's keyboard cannot type is no fault of the answer's.
    #[test]
    fn a_typed_value_passes_only_through_the_screen() {
        let scenario: Vec<ScenarioStep> = serde_json::from_value(json!([
            {"step": "set", "control": "(?i)system", "value": "Be brief.", "failure": "no_system_prompt_field"},
        ]))
        .unwrap();
        let judged = |input: &str| {
            let mut reports = Vec::new();
            for name in step_names(&scenario) {
                reports.push(json!({"type": "step_start", "name": name}));
                let mut evidence = json!({});
                if name == "set_1" {
                    reports
                        .push(json!({"type": "type_value", "rect": [1, 2, 3, 4], "enter": true}));
                    evidence = json!({"input": input});
                }
                reports.push(json!({"type": "step", "name": name, "ok": true, "ms": 1.0, "detail": "ok", "evidence": evidence}));
            }
            reports.push(json!({"type": "done"}));
            let channel = Channel::read_steps(&reports, 0, &step_names(&scenario));
            assert!(channel.tampering.is_none(), "{:?}", channel.tampering);
            judge_expectations(
                &scenario,
                &channel,
                &super::ScenarioEvidence {
                    requests: &json!([]),
                    summaries: &[],
                    saved_files: &json!([]),
                    turns: &[],
                    frames: &NO_FRAMES,
                },
            )
        };
        assert!(judged("screen").met);
        assert!(judged("untypable").met);
        let (code, why) = judged("in_process").failure.unwrap();
        assert_eq!(code, "no_system_prompt_field");
        assert!(why.contains("typed in the app's process"), "{why}");
    }

    /// A file dialog's step: the name typed by the supervisor and the step
    /// done outside the app, then the file's expectations; a name entered
    /// in-process, or keys the supervisor did not all type, pass nothing.
    #[test]
    fn a_file_dialog_passes_only_typed_from_the_screen_with_the_file_saved() {
        let scenario: Vec<ScenarioStep> = serde_json::from_value(json!([
            {"step": "click", "control": "(?i)save", "failure": "no_save_button"},
            {"step": "answer_file_dialog", "path": "/tmp/chat-log.txt", "expect": [
                {"present": true, "failure": "file_not_saved", "reason": "nothing at {path}: {found}"},
                {"contains": "hello", "failure": "not_hello", "reason": "{path} lacks {expected}: {found}"},
            ]},
        ]))
        .unwrap();
        let judged = |delivered: &str, typed: u64, text: Option<&str>| {
            let mut reports = Vec::new();
            for name in step_names(&scenario) {
                reports.push(json!({"type": "step_start", "name": name}));
                let mut evidence = json!({});
                if name == "click_1" {
                    reports.push(json!({"type": "approach", "rect": [1, 2, 3, 4]}));
                    reports.push(json!({"type": "file_dialog", "rect": [1, 2, 3, 4]}));
                    evidence = json!({"delivered": "screen"});
                }
                if name == "answer_file_dialog_1" {
                    evidence = json!({"delivered": delivered});
                }
                reports.push(json!({"type": "step", "name": name, "ok": true, "ms": 1.0, "detail": "ok", "evidence": evidence}));
            }
            reports.push(json!({"type": "done"}));
            let channel = Channel::read_steps(&reports, 0, &step_names(&scenario));
            assert!(channel.tampering.is_none(), "{:?}", channel.tampering);
            let saved = json!([{
                "typing": {"typed": typed, "of": 17, "pressed": true},
                "file": {"read": text.map(|_| "/tmp/chat-log.txt"), "text": text.unwrap_or(""), "error": text.map_or(Some("no file /tmp/chat-log.txt"), |_| None)},
            }]);
            judge_expectations(
                &scenario,
                &channel,
                &super::ScenarioEvidence {
                    requests: &json!([]),
                    summaries: &[],
                    saved_files: &saved,
                    turns: &[],
                    frames: &NO_FRAMES,
                },
            )
        };
        assert!(judged("screen", 17, Some("Hello there")).met);
        let (code, why) = judged("in_process", 17, Some("hello")).failure.unwrap();
        assert_eq!(code, "no_file_dialog");
        assert!(why.contains("entered in the app's process"), "{why}");
        let (code, why) = judged("screen", 5, Some("hello")).failure.unwrap();
        assert_eq!(code, "no_file_dialog");
        assert!(why.contains("could not type"), "{why}");
        let (code, why) = judged("screen", 17, None).failure.unwrap();
        assert_eq!(code, "file_not_saved");
        assert_eq!(
            why,
            "nothing at /tmp/chat-log.txt: no file (no file /tmp/chat-log.txt)"
        );
        let (code, why) = judged("screen", 17, Some("bye")).failure.unwrap();
        assert_eq!(code, "not_hello");
        assert!(why.contains("lacks \"hello\": \"bye\""), "{why}");
    }

    /// The reset's job is what it was (no scenario); a scenario's job
    /// carries only what the harness drives, not the expectations.
    #[test]
    fn the_job_carries_a_scenario_only_for_a_task_written_as_data() {
        let tasks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks");
        let bundle = crate::bundle::Bundle::script("a.py", "print(1)\n");
        let reset = crate::task::Task::load(&tasks, "reset-conversation").unwrap();
        let turns = crate::harness::turns_for(&reset);
        assert_eq!(turns.len(), crate::turns::TURN_COUNT);
        assert!(crate::harness::job(&reset, &bundle, &turns)
            .get("scenario")
            .is_none());
        let task = crate::task::Task::load(&tasks, "temperature-control").unwrap();
        let turns = crate::harness::turns_for(&task);
        assert_eq!(turns.len(), 3);
        let job = crate::harness::job(&task, &bundle, &turns);
        let steps = job["scenario"].as_array().unwrap();
        assert_eq!(steps.len(), task.scenario.len());
        assert!(steps
            .iter()
            .all(|s| s.get("expect").is_none() && s.get("failure").is_none()));
        assert_eq!(steps[1]["value"], json!(0.2));
    }
}
