//! The harness's reports, read as untrusted input.
//!
//! The harness runs in the candidate's process, so every line it sends can
//! be written by the candidate instead. Nothing read here can make a pass:
//! steps explain a failure and steer the judgement of where a run stopped,
//! the planes report and the widget tree are hints. What is checked here is
//! the shape an honest harness always gives: its steps in their order, each
//! once, the hints each in the step that sends them, nothing after `done`.
//! A channel that breaks that shape was written by someone else: the run is
//! judged `tampering`, with what was seen.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The harness's steps, in the order it takes them.
pub const STEPS: [&str; 11] = [
    "compile",
    "launch",
    "find_window",
    "turn_1",
    "turn_2",
    "find_reset",
    "click_reset",
    "check_cleared",
    "turn_3",
    "idle",
    "turn_4",
];

/// The longest text kept of a step's detail (the candidate may fill it).
const MAX_DETAIL_CHARS: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub ms: f64,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub evidence: Value,
}

/// What the reports said, once checked for shape.
#[derive(Debug, Default)]
pub struct Channel {
    pub steps: Vec<Step>,
    /// The step that started and never reported (where a run hung).
    pub started_step: Option<String>,
    /// When `click_reset` started, in ms after the job (the supervisor's
    /// clock, stamped as the report arrived).
    pub reset_started_ms: Option<f64>,
    /// When `click_reset` reported its end (the click handled and the
    /// events it posted pumped), same clock.
    pub reset_done_ms: Option<f64>,
    /// The harness's own reading after the reset: (memory, screen) cleared.
    pub planes: Option<(bool, bool)>,
    pub widget_tree: Value,
    pub discovered: Option<Value>,
    pub exceptions: Vec<Value>,
    pub dialogs: Vec<Value>,
    pub done: bool,
    /// A step that failed inside the harness's own code: (step, detail).
    pub harness_error: Option<(String, String)>,
    /// Why the channel cannot be the harness's alone, if it cannot.
    pub tampering: Option<String>,
    /// The supervisor moved the app's clock in the idle step (it stamps
    /// the `idle` report with this; the harness's line cannot set it).
    pub clock_moved_by_supervisor: bool,
    /// Where the harness read the old turns in the window's widgets again
    /// after the reset (after turn 3, the idle step, turn 4): a hint.
    pub screen_text_hits: Vec<String>,
    /// A scenario's steps after which the harness read turns it expects
    /// hidden in the window's widgets, with where it read them: a hint.
    pub read_back: Vec<(String, String)>,
    /// Why the reset (or a message box it opened) was clicked inside the
    /// app's process rather than by the supervisor's click on the screen,
    /// when the harness says so: a hint that only takes a pass away.
    pub reset_in_process: Option<String>,
    /// The first turn whose prompt was typed or sent inside the app's
    /// process (the supervisor's keys or click did not reach it), and why,
    /// when the harness says so: a hint that only takes a pass away.
    pub input_in_process: Option<(String, String)>,
}

impl Channel {
    /// Reads `reports` (the supervisor's list, each stamped `at_ms`) and the
    /// count of lines the supervisor could not read.
    pub fn read(reports: &[Value], dropped: u64) -> Channel {
        Channel::read_steps(reports, dropped, &STEPS)
    }

    /// [`Channel::read`] for a run whose steps are `steps`, in order (a
    /// task's scenario: `scenario::step_names`).
    pub fn read_steps<S: AsRef<str>>(reports: &[Value], dropped: u64, steps: &[S]) -> Channel {
        let mut channel = Channel::default();
        if dropped > 0 {
            channel.tamper(format!(
                "{dropped} line(s) on the judge's report channel were not the harness's (not JSON objects, or over its size cap)"
            ));
        }
        let mut next_step = 0;
        let mut stopped = false;
        let mut seen_once: Vec<&str> = Vec::new();
        // (kind, step) of the reports a step may send once.
        let mut seen_in_step: Vec<(String, String)> = Vec::new();
        // The steps a `screen_text` report came in (one in each at most).
        let mut screen_text_in: Vec<String> = Vec::new();
        let is_reset = steps.iter().map(AsRef::as_ref).eq(STEPS);
        for report in reports {
            let kind = report["type"].as_str().unwrap_or("");
            if channel.done {
                channel.tamper(format!(
                    "a `{kind}` report came after the harness said it was done"
                ));
                break;
            }
            let current = steps.get(next_step).map(AsRef::as_ref);
            let open = channel.started_step.as_deref();
            match kind {
                "step_start" => {
                    let name = report["name"].as_str().unwrap_or("");
                    if stopped || open.is_some() || Some(name) != current {
                        channel.tamper(format!("step `{name}` was started out of order"));
                        break;
                    }
                    if name == "click_reset" {
                        channel.reset_started_ms = report["at_ms"].as_f64();
                    }
                    channel.started_step = Some(name.to_string());
                }
                "step" => {
                    let name = report["name"].as_str().unwrap_or("");
                    if open != Some(name) {
                        channel.tamper(format!(
                            "step `{name}` was reported without being started, or twice"
                        ));
                        break;
                    }
                    let Ok(mut step) = serde_json::from_value::<Step>(report.clone()) else {
                        channel.tamper(format!("the report of step `{name}` is malformed"));
                        break;
                    };
                    if step.detail.chars().count() > MAX_DETAIL_CHARS {
                        step.detail = step
                            .detail
                            .chars()
                            .take(MAX_DETAIL_CHARS)
                            .collect::<String>()
                            + "…";
                    }
                    if name == "click_reset" {
                        channel.reset_done_ms = report["at_ms"].as_f64();
                        channel.reset_in_process = in_process_click(&step.evidence);
                    }
                    if name.starts_with("turn_") && channel.input_in_process.is_none() {
                        channel.input_in_process =
                            in_process_input(&step.evidence).map(|why| (name.to_string(), why));
                    }
                    if !step.ok && report["harness_error"].as_bool() == Some(true) {
                        channel.harness_error = Some((step.name.clone(), step.detail.clone()));
                    }
                    channel.started_step = None;
                    stopped = !step.ok;
                    channel.steps.push(step);
                    next_step += 1;
                }
                "screen_text" => {
                    let step = open.unwrap_or("");
                    // The reset's turns 3, 4 and idle step; a scenario's
                    // `turn_N` and `click_N` (those with `hides_turns`).
                    let in_scenario =
                        !is_reset && (step.starts_with("click_") || step.starts_with("turn_"));
                    let in_reset = is_reset && matches!(step, "turn_3" | "idle" | "turn_4");
                    if !(in_reset || in_scenario) || screen_text_in.iter().any(|s| s == step) {
                        channel.tamper(format!(
                            "a `screen_text` report came where the harness sends none (during {})",
                            open.unwrap_or("no step")
                        ));
                        break;
                    }
                    screen_text_in.push(step.to_string());
                    if report["cleared"].as_bool() != Some(true) {
                        let place: String = report["where"]
                            .as_str()
                            .unwrap_or(step)
                            .chars()
                            .take(60)
                            .collect();
                        if in_scenario {
                            let widgets: Vec<String> = report["hits"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|h| h["widget"].as_str())
                                .take(4)
                                .map(|w| w.chars().take(60).collect())
                                .collect();
                            channel
                                .read_back
                                .push((step.to_string(), widgets.join(", ")));
                        }
                        channel.screen_text_hits.push(place);
                    }
                }
                "planes" | "widget_tree" | "checkpoint" | "idle" | "turn" | "approach" | "type"
                | "press" | "file_dialog" | "type_value" => {
                    let allowed = match kind {
                        "planes" => open == Some("check_cleared"),
                        // The reset's click, or a scenario's `click_N`.
                        "approach" => open.is_some_and(|s| s.starts_with("click_")),
                        // A file dialog a scenario's click opened, for the
                        // supervisor to type the step's path into.
                        "file_dialog" => {
                            open.is_some_and(|s| s.starts_with("click_"))
                                && steps
                                    .iter()
                                    .any(|s| s.as_ref().starts_with("answer_file_dialog_"))
                        }
                        "widget_tree" => open == Some("find_window"),
                        // The reset's idle step, or a scenario's `idle_N`.
                        "idle" => open.is_some_and(|s| s == "idle" || s.starts_with("idle_")),
                        // A `set` step's value, typed by the supervisor.
                        "type_value" => open.is_some_and(|s| s.starts_with("set_")),
                        // A turn is asked for, typed and sent within its step.
                        "turn" | "type" | "press" => open.is_some_and(|s| s.starts_with("turn_")),
                        // before_reset in turn 2, after_reset in check_cleared,
                        // after_idle in idle, final once the steps are over.
                        _ => matches!(
                            (report["name"].as_str(), open),
                            (Some("before_reset"), Some("turn_2"))
                                | (Some("after_reset"), Some("check_cleared"))
                                | (Some("after_idle"), Some("idle"))
                                | (Some("final"), None)
                        ),
                    };
                    let once = matches!(kind, "planes" | "widget_tree");
                    // One pointer trip per click step, one clock jump per idle.
                    let once_a_step = matches!(kind, "idle" | "approach" | "type_value");
                    let step_key = (kind.to_string(), open.unwrap_or("").to_string());
                    if !allowed
                        || (once && seen_once.contains(&kind))
                        || (once_a_step && seen_in_step.contains(&step_key))
                    {
                        channel.tamper(format!(
                            "a `{kind}` report came where the harness sends none (during {})",
                            open.unwrap_or("no step")
                        ));
                        break;
                    }
                    seen_once.push(kind);
                    if once_a_step {
                        seen_in_step.push(step_key);
                    }
                    match kind {
                        "planes" => {
                            channel.planes = Some((
                                report["memory"].as_bool().unwrap_or(false),
                                report["screen"].as_bool().unwrap_or(false),
                            ))
                        }
                        "widget_tree" => channel.widget_tree = report["tree"].clone(),
                        "idle" => {
                            channel.clock_moved_by_supervisor =
                                report["clock_moved"].as_bool() == Some(true)
                        }
                        _ => {}
                    }
                }
                "discovered" | "exceptions" => {
                    if open.is_some() || seen_once.contains(&kind) {
                        channel.tamper(format!("a second or early `{kind}` report"));
                        break;
                    }
                    seen_once.push(kind);
                    if kind == "discovered" {
                        channel.discovered = Some(report.clone());
                    } else {
                        channel.exceptions = capped(&report["items"], 50);
                        channel.dialogs = capped(&report["dialogs"], 50);
                    }
                }
                // A message box the reset opened, for the supervisor to
                // click (as many as the app opens, only while it resets).
                "dialog" => {
                    if open != Some("click_reset") {
                        channel.tamper(format!(
                            "a `dialog` report came where the harness sends none (during {})",
                            open.unwrap_or("no step")
                        ));
                        break;
                    }
                }
                "done" => channel.done = true,
                other => {
                    let other: String = other.chars().take(40).collect();
                    channel.tamper(format!(
                        "a report of a kind the harness never sends (`{other}`)"
                    ));
                    break;
                }
            }
        }
        channel
    }

    fn tamper(&mut self, why: String) {
        self.tampering.get_or_insert(why);
    }

    /// Whether step `name` was reported and succeeded.
    pub fn ok(&self, name: &str) -> bool {
        self.steps.iter().any(|s| s.name == name && s.ok)
    }
}

/// Why `click_reset`'s evidence says the reset was clicked in the app's
/// process: the supervisor's click did not reach the control, or a message
/// box it opened was answered there (its click did not close it in time).
/// Shortcuts and menu actions (`keys`, `trigger`) have no control on the
/// screen to click and are not held against an answer.
fn in_process_click(evidence: &Value) -> Option<String> {
    let mut why = Vec::new();
    if evidence["delivered"].as_str() == Some("in_process") {
        why.push("a person's click on the screen did not reach the reset control (covered, off the screen, or its events dropped)".to_string());
    }
    let boxes = evidence["dialogs_answered_in_process"]
        .as_array()
        .map_or(0, Vec::len);
    if boxes > 0 {
        why.push(format!(
            "{boxes} message box(es) the reset opened did not close at a person's click on its accepting button"
        ));
    }
    (!why.is_empty()).then(|| {
        format!(
            "{}: the judge clicked in the app's process instead, and a pass cannot rest on that",
            why.join("; ")
        )
    })
}

/// Why a turn's evidence says its prompt was typed or sent in the app's
/// process. A prompt the screen's keyboard cannot type (a task's own text
/// outside Latin-1) is not held against the answer.
fn in_process_input(evidence: &Value) -> Option<String> {
    if evidence["input"].as_str() != Some("in_process") {
        return None;
    }
    let reasons: Vec<&Value> = evidence["input_in_process"]
        .as_array()
        .map(|items| items.iter().collect())
        .unwrap_or_default();
    let held: Vec<&&Value> = reasons
        .iter()
        .filter(|r| r["untypable"].as_bool() != Some(true))
        .collect();
    if !reasons.is_empty() && held.is_empty() {
        return None;
    }
    let said: Vec<String> = held
        .iter()
        .take(4)
        .filter_map(|r| r["why"].as_str())
        .map(|why| why.chars().take(200).collect())
        .collect();
    let why = if said.is_empty() {
        "the supervisor's input did not reach the app".to_string()
    } else {
        said.join("; ")
    };
    Some(format!(
        "{why}: the judge typed or sent the prompt in the app's process instead, and a pass cannot rest on that"
    ))
}

fn capped(items: &Value, count: usize) -> Vec<Value> {
    items
        .as_array()
        .map(|a| a.iter().take(count).cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn honest() -> Vec<Value> {
        let mut reports = Vec::new();
        for (i, name) in STEPS.iter().enumerate() {
            reports.push(json!({"type": "step_start", "name": name, "at_ms": i as f64 * 10.0}));
            match *name {
                "find_window" => {
                    reports.push(json!({"type": "widget_tree", "tree": {"kind": "window"}}))
                }
                "turn_2" => {
                    reports.push(json!({"type": "turn", "index": 1}));
                    reports.push(json!({"type": "checkpoint", "name": "before_reset"}));
                }
                "click_reset" => {
                    reports.push(json!({"type": "approach", "rect": [1, 2, 3, 4]}));
                    reports.push(json!({"type": "dialog", "rect": [5, 6, 7, 8]}));
                }
                "check_cleared" => {
                    reports.push(json!({"type": "checkpoint", "name": "after_reset"}));
                    reports.push(json!({"type": "planes", "memory": true, "screen": true}));
                }
                "turn_3" | "turn_4" => {
                    reports.push(json!({"type": "screen_text", "where": name, "cleared": true}))
                }
                "idle" => {
                    reports.push(json!({"type": "idle"}));
                    reports.push(json!({"type": "checkpoint", "name": "after_idle"}));
                    reports.push(json!({"type": "screen_text", "where": "idle", "cleared": true}));
                }
                _ => {}
            }
            reports
                .push(json!({"type": "step", "name": name, "ok": true, "ms": 1.0, "detail": "ok"}));
        }
        reports.push(json!({"type": "checkpoint", "name": "final"}));
        reports.push(json!({"type": "discovered"}));
        reports.push(json!({"type": "exceptions", "items": [], "dialogs": []}));
        reports.push(json!({"type": "done"}));
        reports
    }

    #[test]
    fn the_honest_harness_is_read_whole() {
        let channel = Channel::read(&honest(), 0);
        assert_eq!(channel.tampering, None);
        assert_eq!(channel.steps.len(), STEPS.len());
        assert_eq!(channel.planes, Some((true, true)));
        assert_eq!(channel.reset_started_ms, Some(60.0));
        assert!(channel.done && !channel.widget_tree.is_null());
    }

    #[test]
    fn a_forged_line_anywhere_is_tampering() {
        let forgeries = [
            // a second planes report, after the real one
            (
                12,
                json!({"type": "planes", "memory": true, "screen": true}),
            ),
            // a step reported twice
            (
                5,
                json!({"type": "step", "name": "turn_1", "ok": true, "ms": 1.0, "detail": "ok"}),
            ),
            // a harness error out of nowhere
            (
                3,
                json!({"type": "step", "name": "compile", "ok": false, "ms": 1.0, "detail": "x", "harness_error": true}),
            ),
            // an artifact the harness no longer sends
            (9, json!({"type": "artifact", "name": "after_reset.png"})),
            // a null widget tree during a turn
            (14, json!({"type": "widget_tree", "tree": null})),
        ];
        for (at, forged) in forgeries {
            let mut reports = honest();
            reports.insert(at, forged.clone());
            let channel = Channel::read(&reports, 0);
            assert!(channel.tampering.is_some(), "{forged} at {at} went unseen");
        }
        let mut after_done = honest();
        after_done.push(json!({"type": "done"}));
        assert!(Channel::read(&after_done, 0).tampering.is_some());
        assert!(Channel::read(&honest(), 2).tampering.is_some());
    }

    #[test]
    fn a_run_that_stops_at_a_failed_step_is_not_tampering() {
        let mut reports = honest();
        let fail_at = reports
            .iter()
            .position(|r| r["type"] == "step" && r["name"] == "turn_2")
            .unwrap();
        reports.truncate(fail_at);
        reports.push(
            json!({"type": "step", "name": "turn_2", "ok": false, "ms": 1.0, "detail": "no reply"}),
        );
        reports.push(json!({"type": "discovered"}));
        reports.push(json!({"type": "done"}));
        let channel = Channel::read(&reports, 0);
        assert_eq!(channel.tampering, None);
        assert!(!channel.ok("turn_2") && channel.ok("turn_1"));
    }

    /// The later readings of the widgets are hints in their steps: one
    /// that saw the old turns is kept, one out of place is tampering, and
    /// so is a second `approach`.
    #[test]
    fn later_screen_readings_are_kept_and_held_to_their_steps() {
        let mut reports = honest();
        let at = reports
            .iter()
            .position(|r| r["type"] == "screen_text" && r["where"] == "idle")
            .unwrap();
        reports[at] =
            json!({"type": "screen_text", "where": "after the idle step", "cleared": false});
        let channel = Channel::read(&reports, 0);
        assert_eq!(channel.tampering, None);
        assert_eq!(
            channel.screen_text_hits,
            vec!["after the idle step".to_string()]
        );
        for (step, forged) in [
            (
                "turn_1",
                json!({"type": "screen_text", "where": "x", "cleared": true}),
            ),
            (
                "turn_3",
                json!({"type": "screen_text", "where": "x", "cleared": true}),
            ),
            ("turn_2", json!({"type": "approach", "rect": null})),
            ("click_reset", json!({"type": "approach", "rect": null})),
            ("turn_3", json!({"type": "dialog", "rect": [1, 2, 3, 4]})),
            (
                "check_cleared",
                json!({"type": "dialog", "rect": [1, 2, 3, 4]}),
            ),
        ] {
            let mut reports = honest();
            let end = reports
                .iter()
                .position(|r| r["type"] == "step" && r["name"] == step)
                .unwrap();
            reports.insert(end, forged.clone());
            let channel = Channel::read(&reports, 0);
            assert!(
                channel.tampering.is_some(),
                "{forged} in {step} went unseen"
            );
        }
    }

    /// A scenario of several clicks and idle steps: each click step gets
    /// one pointer trip, each idle step one clock jump, never a second.
    #[test]
    fn each_click_and_idle_step_of_a_scenario_acts_once() {
        let steps = [
            "compile",
            "launch",
            "find_window",
            "click_1",
            "idle_1",
            "click_2",
            "idle_2",
        ];
        let run = |extra: Option<(&str, Value)>| {
            let mut reports = Vec::new();
            for name in steps {
                reports.push(json!({"type": "step_start", "name": name, "at_ms": 0.0}));
                if name.starts_with("click_") {
                    reports.push(json!({"type": "approach", "rect": [1, 2, 3, 4]}));
                }
                if name.starts_with("idle_") {
                    reports.push(json!({"type": "idle", "seconds": 30}));
                }
                if let Some((step, forged)) = &extra {
                    if *step == name {
                        reports.push(forged.clone());
                    }
                }
                reports.push(
                    json!({"type": "step", "name": name, "ok": true, "ms": 1.0, "detail": "ok"}),
                );
            }
            reports.push(json!({"type": "discovered"}));
            reports.push(json!({"type": "exceptions", "items": [], "dialogs": []}));
            reports.push(json!({"type": "done"}));
            Channel::read_steps(&reports, 0, &steps)
        };
        assert_eq!(run(None).tampering, None);
        for (step, forged) in [
            ("click_2", json!({"type": "approach", "rect": null})),
            ("idle_1", json!({"type": "idle"})),
            ("idle_2", json!({"type": "approach", "rect": null})),
            ("click_1", json!({"type": "idle"})),
            ("click_1", json!({"type": "type_value", "rect": null})),
        ] {
            assert!(
                run(Some((step, forged.clone()))).tampering.is_some(),
                "{forged} in {step} went unseen"
            );
        }
    }

    #[test]
    fn a_prompt_typed_in_process_is_noted_unless_the_screen_cannot_type_it() {
        let with = |evidence: Value| {
            let mut reports = honest();
            let at = reports
                .iter()
                .position(|r| r["type"] == "step" && r["name"] == "turn_3")
                .unwrap();
            reports[at]["evidence"] = evidence;
            Channel::read(&reports, 0)
        };
        assert_eq!(with(json!({"input": "screen"})).input_in_process, None);
        assert_eq!(with(Value::Null).input_in_process, None);
        let (step, why) = with(json!({"input": "in_process", "input_in_process": [
            {"why": "the keys typed on the screen did not reach the prompt input", "untypable": false}
        ]}))
        .input_in_process
        .unwrap();
        assert_eq!(step, "turn_3");
        assert!(why.contains("did not reach the prompt input"), "{why}");
        // Reasons without words, or none at all, still count.
        for reasons in [json!([{"untypable": false}]), json!([]), json!("junk")] {
            let noted = with(json!({"input": "in_process", "input_in_process": reasons}));
            assert!(noted.input_in_process.is_some(), "{reasons}");
        }
        // The task's own text the keyboard cannot type is no fault of the answer.
        let untypable = with(json!({"input": "in_process", "input_in_process": [
            {"why": "the prompt has characters the screen's keyboard cannot type", "untypable": true}
        ]}));
        assert_eq!(untypable.input_in_process, None);
        // `type` and `press` reports belong to a turn's step only.
        let mut reports = honest();
        let at = reports
            .iter()
            .position(|r| r["type"] == "step_start" && r["name"] == "turn_1")
            .unwrap();
        reports.insert(at + 1, json!({"type": "press", "key": "Return"}));
        reports.insert(
            at + 1,
            json!({"type": "type", "rect": [1, 2, 3, 4], "clear": false}),
        );
        assert_eq!(Channel::read(&reports, 0).tampering, None);
        let at = reports
            .iter()
            .position(|r| r["type"] == "step_start" && r["name"] == "find_reset")
            .unwrap();
        reports.insert(at + 1, json!({"type": "type", "rect": [1, 2, 3, 4]}));
        assert!(Channel::read(&reports, 0).tampering.is_some());
    }

    #[test]
    fn a_reset_clicked_in_process_is_noted_and_keys_are_not() {
        let with = |evidence: Value| {
            let mut reports = honest();
            let at = reports
                .iter()
                .position(|r| r["type"] == "step" && r["name"] == "click_reset")
                .unwrap();
            reports[at]["evidence"] = evidence;
            Channel::read(&reports, 0)
        };
        assert_eq!(with(json!({"delivered": "screen"})).reset_in_process, None);
        assert_eq!(with(json!({"delivered": "keys"})).reset_in_process, None);
        assert_eq!(with(json!({"delivered": "trigger"})).reset_in_process, None);
        assert_eq!(with(Value::Null).reset_in_process, None);
        let clicked_here = with(json!({"delivered": "in_process"}));
        assert!(clicked_here
            .reset_in_process
            .unwrap()
            .contains("did not reach"));
        let box_here =
            with(json!({"delivered": "screen", "dialogs_answered_in_process": ["Sure?"]}));
        assert!(box_here.reset_in_process.unwrap().contains("message box"));
        // Several boxes in one reset are the app's to open.
        let mut reports = honest();
        let at = reports.iter().position(|r| r["type"] == "dialog").unwrap();
        reports.insert(at, json!({"type": "dialog", "rect": null}));
        assert_eq!(Channel::read(&reports, 0).tampering, None);
    }
}
