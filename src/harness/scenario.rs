//! A scenario's expectations judged (issue 21: tasks written as data):
//! from the fake server's recordings, which the supervisor keeps outside
//! the candidate's process. The harness's steps only say how far the run
//! got (a step that failed, a hint for the report); a pass needs every
//! request of each `turn` with expectations to meet them.

use serde_json::Value;

use super::RequestSummary;
use crate::report_channel::Channel;
use crate::scenario::{at_path, fill, json_contains, json_equals, step_names, ScenarioStep};

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

/// Judges `scenario` against the run: `requests` are the recordings (in
/// the order `summaries` summarised them, one for one).
pub(super) fn judge_expectations(
    scenario: &[ScenarioStep],
    channel: &Channel,
    requests: &Value,
    summaries: &[RequestSummary],
) -> ScenarioJudgement {
    let names = step_names(scenario);
    let recorded: Vec<&Value> = requests
        .as_array()
        .into_iter()
        .flatten()
        .take(1000)
        .collect();
    let mut turn = 0usize;
    for (step, name) in scenario.iter().zip(&names[3..]) {
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
        for expectation in &step.expect {
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
        judge_expectations(&scenario, &channel, &requests, &summaries)
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
        let judged = judge_expectations(&scenario, &channel, &requests, &summaries);
        let (code, why) = judged.failure.unwrap();
        assert_eq!(code, "temperature_not_sent");
        assert!(why.contains("no request carrying turn 2"), "{why}");
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
    use crate::report_channel::Channel;
    use crate::scenario::{step_names, ScenarioStep};

    fn click_scenario() -> Vec<ScenarioStep> {
        vec![ScenarioStep {
            step: "click".into(),
            control: "(?i)stop".into(),
            kinds: Vec::new(),
            value: None,
            seconds: None,
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
        judge_expectations(&scenario, &channel, &json!([]), &[])
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
