//! Tasks written as data (issue 21): a task's `[[scenario]]`, the ordered
//! steps the harness drives (`turn`, `set`, `click`, `answer_file_dialog`,
//! `idle`) and the expectations the host judges after them on the fake
//! server's recordings and on the files the supervisor read. A task without a scenario runs the reset flow, unchanged.
//!
//! The language is read and checked here; the harness interprets it in
//! the sandbox (`docker/harness/harness.py`, `run_scenario`), and the host
//! judges its expectations (`harness::scenario`) from evidence outside the
//! candidate's process only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The steps a scenario may take, in the README's table order.
pub const STEPS: [&str; 5] = ["turn", "set", "click", "answer_file_dialog", "idle"];

/// The expectations a step may carry, in the README's table order.
pub const EXPECTATIONS: [&str; 8] = [
    "present",
    "equals",
    "contains",
    "absent",
    "alive",
    "holds_turns",
    "shows_turns",
    "hides_turns",
];

/// The codes a failed step gets when the task names none, by step kind.
pub const DEFAULT_STEP_FAILURES: [(&str, &str); 5] = [
    ("turn", "turn_failed"),
    ("set", "control_not_found"),
    ("click", "control_not_found"),
    ("answer_file_dialog", "no_file_dialog"),
    ("idle", "idle_failed"),
];

/// The controls a `set` step may drive, as Qt names their classes.
pub const SET_KINDS: [&str; 8] = [
    "QSpinBox",
    "QDoubleSpinBox",
    "QSlider",
    "QComboBox",
    "QCheckBox",
    "QLineEdit",
    "QTextEdit",
    "QPlainTextEdit",
];

/// At most this many `turn` steps (the turns `turns::new_turns` draws).
pub const MAX_TURNS: usize = crate::turns::TURN_COUNT;

/// At most this many `click` steps, and as many `idle` steps, in a
/// scenario (the supervisor moves its pointer and the app's clock no more
/// often: `MAX_SCENARIO_CLICKS` in `docker/harness/supervisor.py`).
pub const MAX_CLICKS: usize = 8;

/// The longest a scenario's `idle` may move the app's clock, in seconds.
pub const MAX_IDLE_SECONDS: f64 = 3600.0;

/// One step of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioStep {
    /// `turn`, `set`, `click` or `idle`.
    pub step: String,
    /// `set`, `click`: a regex (Rust's and Python's) on the control's text,
    /// tooltip, accessible name, objectName in words, placeholder, or its
    /// label's text.
    #[serde(default)]
    pub control: String,
    /// `set`: the Qt classes the control may be (default: all of [`SET_KINDS`]).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// `set`: the value (a number, a bool for a check box, a string for a
    /// combo box's item, a line edit or a text edit).
    #[serde(default)]
    pub value: Option<Value>,
    /// `idle`: seconds of the app's clock (default 30).
    #[serde(default)]
    pub seconds: Option<f64>,
    /// `answer_file_dialog`: the file typed into the dialog the `click`
    /// before it opened, `/tmp/NAME` ([`check_dialog_path`]).
    #[serde(default)]
    pub path: String,
    /// The code when the step cannot be done (default by kind:
    /// [`DEFAULT_STEP_FAILURES`]).
    #[serde(default)]
    pub failure: String,
    /// What the report says then, before the harness's detail.
    #[serde(default)]
    pub reason: String,
    /// What must hold of the requests of this step (a `turn`'s).
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// Written in a `set` value or an expectation's `equals` or `contains`,
/// it stands for a made-up word drawn for each run ([`run_nonce`]): an
/// answer cannot send the task's test value whatever was typed, as it
/// could a value fixed in `task.toml`.
pub const NONCE: &str = "{nonce}";

/// The run's word for [`NONCE`]: a made-up name of five syllables, drawn
/// from the run's turns (their random markers), so that the host finds it
/// again when it judges and nothing of it is known before the run. A
/// scenario without a turn gets a fixed word.
pub fn run_nonce(turns: &[crate::turns::Turn]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"qtjudge nonce");
    for turn in turns {
        hasher.update(turn.prompt_marker.as_bytes());
        hasher.update(turn.reply_marker.as_bytes());
    }
    crate::turns::name_from(&hasher.finalize(), 5)
}

/// `value` with every [`NONCE`] in its strings replaced by `nonce`.
fn with_nonce(value: &Value, nonce: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(NONCE, nonce)),
        Value::Array(items) => Value::Array(items.iter().map(|v| with_nonce(v, nonce)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_nonce(v, nonce)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl ScenarioStep {
    /// The step as one run takes it: [`NONCE`] replaced by the run's word
    /// in its value and its expectations' `equals` and `contains`.
    pub fn for_run(&self, nonce: &str) -> ScenarioStep {
        let mut step = self.clone();
        step.value = step.value.map(|v| with_nonce(&v, nonce));
        for expectation in &mut step.expect {
            expectation.equals = expectation.equals.take().map(|v| with_nonce(&v, nonce));
            expectation.contains = expectation.contains.take().map(|v| with_nonce(&v, nonce));
        }
        step
    }
}

/// What must be observed after a step, and the code and reason when not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// A dotted path into each request's JSON body (`options.temperature`),
    /// or several: the first one present is judged.
    #[serde(default)]
    pub json_path: JsonPaths,
    /// The path is in every request of the turn.
    #[serde(default)]
    pub present: bool,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub contains: Option<Value>,
    #[serde(default)]
    pub absent: bool,
    /// The app is still running after the step.
    #[serde(default)]
    pub alive: bool,
    /// `answer_file_dialog`: the file saved holds every turn typed before
    /// it, each prompt's and each reply's marker (as the turns are matched
    /// in requests: case, width and invisible characters do not hide them).
    #[serde(default)]
    pub holds_turns: bool,
    /// `turn`, `click`: the screen shows these turns' replies (1 is the
    /// first turn typed) after the step, read from pixels outside the app:
    /// the supervisor's frame after the turn's reply, or after its click.
    #[serde(default)]
    pub shows_turns: Vec<usize>,
    /// `turn`, `click`: the screen shows none of these turns' replies then.
    #[serde(default)]
    pub hides_turns: Vec<usize>,
    /// The code the verification gets when this does not hold.
    pub failure: String,
    /// The report's words: `{path}`, `{expected}`, `{found}`, `{request}`
    /// and `{turn}` are filled in.
    pub reason: String,
}

/// One JSON path or several alternatives.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum JsonPaths {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl JsonPaths {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            JsonPaths::None => Vec::new(),
            JsonPaths::One(p) => vec![p.as_str()],
            JsonPaths::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

impl Expectation {
    /// Which of [`EXPECTATIONS`] this is (exactly one is given).
    pub fn kind(&self) -> Result<&'static str, String> {
        let given: Vec<&'static str> = [
            ("present", self.present),
            ("equals", self.equals.is_some()),
            ("contains", self.contains.is_some()),
            ("absent", self.absent),
            ("alive", self.alive),
            ("holds_turns", self.holds_turns),
            ("shows_turns", !self.shows_turns.is_empty()),
            ("hides_turns", !self.hides_turns.is_empty()),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name)
        .collect();
        match given.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "an expectation needs one of {}",
                EXPECTATIONS.join(", ")
            )),
            many => Err(format!(
                "an expectation is one of {}, not several ({})",
                EXPECTATIONS.join(", "),
                many.join(", ")
            )),
        }
    }
}

impl Expectation {
    /// Whether this is judged on the screen's pixels.
    pub fn on_screen(&self) -> bool {
        !self.shows_turns.is_empty() || !self.hides_turns.is_empty()
    }
}

impl ScenarioStep {
    /// The code this step gets when it cannot be done.
    pub fn failure_code(&self) -> &str {
        if !self.failure.is_empty() {
            return &self.failure;
        }
        DEFAULT_STEP_FAILURES
            .iter()
            .find(|(kind, _)| *kind == self.step)
            .map_or("crashed", |(_, code)| code)
    }
}

/// The harness's step names for a scenario, in order: `compile`, `launch`,
/// `find_window`, then `turn_N`, `set_N`, `click_N`, `idle_N` (counted per
/// kind). `harness.py`'s `run_scenario` names them the same way.
pub fn step_names(scenario: &[ScenarioStep]) -> Vec<String> {
    let mut names: Vec<String> = ["compile", "launch", "find_window"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for step in scenario {
        let count = counts.entry(step.step.as_str()).or_default();
        *count += 1;
        names.push(format!("{}_{count}", step.step));
    }
    names
}

/// How many turns a scenario types.
pub fn turn_count(scenario: &[ScenarioStep]) -> usize {
    scenario.iter().filter(|s| s.step == "turn").count()
}

/// Every failure code a scenario can give (its steps' and expectations').
pub fn failure_codes(scenario: &[ScenarioStep]) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for step in scenario {
        let step_code = step.failure_code().to_string();
        for code in std::iter::once(step_code).chain(step.expect.iter().map(|e| e.failure.clone()))
        {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    codes
}

/// Whether a task's own failure code is well formed: snake_case words.
fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 60
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks a scenario as written: known steps and expectations, what each
/// needs, patterns that compile, the limits of this slice (at most
/// [`MAX_TURNS`] turns, [`MAX_CLICKS`] `click` and as many `idle` steps;
/// a file dialog answered right after the click that opens it). Each
/// message says what to change.
pub fn validate(scenario: &[ScenarioStep]) -> Result<(), String> {
    let mut clicks = 0;
    let mut idles = 0;
    let mut turns = 0;
    for (i, step) in scenario.iter().enumerate() {
        turns += usize::from(step.step == "turn");
        let at = format!("scenario step {} (`{}`)", i + 1, step.step);
        if !STEPS.contains(&step.step.as_str()) {
            return Err(format!(
                "{at}: unknown step; a step is one of {}",
                STEPS.join(", ")
            ));
        }
        if !step.failure.is_empty() && !is_code(&step.failure) {
            return Err(format!(
                "{at}: failure `{}` is not a snake_case code",
                step.failure
            ));
        }
        match step.step.as_str() {
            "set" | "click" => {
                if step.control.is_empty() {
                    return Err(format!("{at}: needs `control`, a pattern that finds it"));
                }
                regex::Regex::new(&step.control)
                    .map_err(|e| format!("{at}: control pattern: {e}"))?;
            }
            _ if !step.control.is_empty() => {
                return Err(format!("{at}: only `set` and `click` take `control`"))
            }
            _ => {}
        }
        match step.step.as_str() {
            "set" if step.value.is_none() => {
                return Err(format!("{at}: needs `value`"));
            }
            "set" => {
                if let Some(kind) = step.kinds.iter().find(|k| !SET_KINDS.contains(&k.as_str())) {
                    return Err(format!(
                        "{at}: `{kind}` is not a control `set` drives (one of {})",
                        SET_KINDS.join(", ")
                    ));
                }
            }
            _ if step.value.is_some() || !step.kinds.is_empty() => {
                return Err(format!("{at}: only `set` takes `value` and `kinds`"));
            }
            _ => {}
        }
        match step.step.as_str() {
            "answer_file_dialog" => {
                check_dialog_path(&step.path).map_err(|e| format!("{at}: {e}"))?;
                if i == 0 || scenario[i - 1].step != "click" {
                    return Err(format!(
                        "{at}: comes right after the `click` that opens the dialog"
                    ));
                }
            }
            _ if !step.path.is_empty() => {
                return Err(format!("{at}: only `answer_file_dialog` takes `path`"));
            }
            _ => {}
        }
        match step.step.as_str() {
            "click" => clicks += 1,
            "idle" => {
                idles += 1;
                if let Some(s) = step.seconds {
                    if !(s > 0.0 && s <= MAX_IDLE_SECONDS) {
                        return Err(format!(
                            "{at}: seconds must be above 0 and at most {MAX_IDLE_SECONDS}"
                        ));
                    }
                }
            }
            _ if step.seconds.is_some() => {
                return Err(format!("{at}: only `idle` takes `seconds`"));
            }
            _ => {}
        }
        for (j, expectation) in step.expect.iter().enumerate() {
            let at = format!("{at}, expectation {}", j + 1);
            let kind = expectation.kind().map_err(|e| format!("{at}: {e}"))?;
            if !is_code(&expectation.failure) {
                return Err(format!(
                    "{at}: failure `{}` is not a snake_case code",
                    expectation.failure
                ));
            }
            if expectation.reason.trim().is_empty() {
                return Err(format!("{at}: needs a `reason`"));
            }
            let paths = expectation.json_path.paths();
            match kind {
                "alive" if !paths.is_empty() => {
                    return Err(format!("{at}: `alive` takes no json_path"))
                }
                "alive" => {}
                _ if step.step == "answer_file_dialog" => match kind {
                    _ if !paths.is_empty() => {
                        return Err(format!(
                            "{at}: an expectation on the saved file takes no json_path"
                        ))
                    }
                    "contains" if !expectation.contains.as_ref().is_some_and(Value::is_string) => {
                        return Err(format!(
                            "{at}: `contains` on the saved file is a string"
                        ))
                    }
                    "present" | "contains" | "holds_turns" => {}
                    other => {
                        return Err(format!(
                        "{at}: the saved file takes present, contains or holds_turns, not {other}"
                    ))
                    }
                },
                "holds_turns" => {
                    return Err(format!(
                        "{at}: `holds_turns` belongs to an `answer_file_dialog` step (the file it saved)"
                    ))
                }
                "shows_turns" | "hides_turns" => {
                    if step.step != "turn" && step.step != "click" {
                        return Err(format!(
                            "{at}: `{kind}` belongs to a `turn` or `click` step (the screen after it)"
                        ));
                    }
                    if !paths.is_empty() {
                        return Err(format!("{at}: `{kind}` takes no json_path"));
                    }
                    let listed = expectation
                        .shows_turns
                        .iter()
                        .chain(&expectation.hides_turns);
                    if let Some(bad) = listed.into_iter().find(|&&t| t == 0 || t > turns) {
                        return Err(format!(
                            "{at}: turn {bad} is not one typed by then (turns 1 to {turns})"
                        ));
                    }
                }
                _ if step.step != "turn" => {
                    return Err(format!(
                    "{at}: expectations on requests belong to a `turn` step (the requests it sent)"
                ))
                }
                _ if paths.is_empty() || paths.iter().any(|p| p.is_empty()) => {
                    return Err(format!("{at}: needs a `json_path`"))
                }
                _ => {}
            }
        }
    }
    if turn_count(scenario) > MAX_TURNS {
        return Err(format!("a scenario types at most {MAX_TURNS} turns"));
    }
    if clicks > MAX_CLICKS || idles > MAX_CLICKS {
        return Err(format!(
            "a scenario has at most {MAX_CLICKS} `click` and {MAX_CLICKS} `idle` steps (the supervisor moves its pointer and the app's clock no more often)"
        ));
    }
    Ok(())
}

/// Whether `path` is a file a scenario may have the app save: directly in
/// the sandbox's `/tmp`, a plain name (letters, digits, `.`, `-`; no `_`,
/// which the screen's keyboard types with Shift, no hidden file).
pub fn check_dialog_path(path: &str) -> Result<(), String> {
    let name = path.strip_prefix("/tmp/").unwrap_or("");
    let plain = !name.is_empty()
        && name.len() <= 60
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "path `{path}` must be `/tmp/NAME`, NAME of letters, digits, `.` and `-` (at most 60, not hidden)"
        ))
    }
}

/// The value at a dotted path of a JSON body (`options.temperature`,
/// `messages.0.role`), if there is one.
pub fn at_path<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(body, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Whether `found` equals `expected`: numbers compared as numbers (within
/// a millionth, so 0.2 typed and 0.2 computed from a slider's 20 agree).
pub fn json_equals(found: &Value, expected: &Value) -> bool {
    match (found.as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) if found.is_number() && expected.is_number() => {
            (a - b).abs() <= 1e-6 * b.abs().max(1.0)
        }
        _ => found == expected,
    }
}

/// Whether `found` contains `expected`: a substring of a string, an item
/// of an array (by [`json_equals`]), a key of an object.
pub fn json_contains(found: &Value, expected: &Value) -> bool {
    match (found, expected) {
        (Value::String(s), Value::String(e)) => s.contains(e.as_str()),
        (Value::Array(items), e) => items.iter().any(|i| json_equals(i, e)),
        (Value::Object(map), Value::String(e)) => map.contains_key(e.as_str()),
        _ => false,
    }
}

/// `reason` with its placeholders filled in.
pub fn fill(reason: &str, fields: &[(&str, String)]) -> String {
    let mut text = reason.to_string();
    for (name, value) in fields {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Vec<ScenarioStep> {
        #[derive(Deserialize)]
        struct File {
            scenario: Vec<ScenarioStep>,
        }
        toml::from_str::<File>(text).unwrap().scenario
    }

    const TEMPERATURE: &str = r#"
[[scenario]]
step = "turn"
[[scenario]]
step = "set"
control = '(?i)temp'
value = 0.2
failure = "no_temperature_control"
[[scenario]]
step = "turn"
[[scenario.expect]]
json_path = "options.temperature"
equals = 0.2
failure = "temperature_not_sent"
reason = "the request after setting {expected} had {path} {found}"
"#;

    #[test]
    fn a_scenario_reads_and_names_its_steps_as_the_harness_does() {
        let scenario = parse(TEMPERATURE);
        validate(&scenario).unwrap();
        assert_eq!(
            step_names(&scenario),
            [
                "compile",
                "launch",
                "find_window",
                "turn_1",
                "set_1",
                "turn_2"
            ]
        );
        assert_eq!(turn_count(&scenario), 2);
        assert_eq!(
            failure_codes(&scenario),
            [
                "turn_failed",
                "no_temperature_control",
                "temperature_not_sent"
            ]
        );
        assert_eq!(scenario[1].value, Some(json!(0.2)));
    }

    /// `{nonce}` is the run's own word, the same in the value typed and in
    /// what is expected, and another in another run.
    #[test]
    fn the_nonce_is_one_word_a_run_in_value_and_expectations() {
        let step: ScenarioStep = serde_json::from_value(json!({
            "step": "set", "control": "x", "value": "Talk like {nonce}.",
            "expect": [{"json_path": "a", "equals": "Talk like {nonce}.", "failure": "x", "reason": "r"},
                       {"json_path": "a", "contains": ["{nonce}"], "failure": "x", "reason": "r {nonce}"}],
        }))
        .unwrap();
        let turns = crate::turns::new_turns();
        let nonce = run_nonce(&turns);
        assert_eq!(nonce, run_nonce(&turns));
        assert_ne!(nonce, run_nonce(&crate::turns::new_turns()));
        assert!(nonce.len() == 10 && nonce.chars().all(|c| c.is_ascii_lowercase()));
        let run = step.for_run(&nonce);
        let typed = format!("Talk like {nonce}.");
        assert_eq!(run.value, Some(json!(typed)));
        assert_eq!(run.expect[0].equals, Some(json!(typed)));
        assert_eq!(run.expect[1].contains, Some(json!([nonce])));
        // The reason keeps its words: only values are the run's.
        assert_eq!(run.expect[1].reason, "r {nonce}");
    }

    #[test]
    fn a_scenario_that_cannot_run_is_refused_with_what_to_change() {
        let too_many_idles = "[[scenario]]\nstep = \"idle\"\n".repeat(MAX_CLICKS + 1);
        let cases = [
            ("[[scenario]]\nstep = \"jump\"", "unknown step"),
            ("[[scenario]]\nstep = \"set\"\nvalue = 1", "needs `control`"),
            ("[[scenario]]\nstep = \"set\"\ncontrol = 'x'", "needs `value`"),
            ("[[scenario]]\nstep = \"set\"\ncontrol = '('\nvalue = 1", "control pattern"),
            ("[[scenario]]\nstep = \"set\"\ncontrol = 'x'\nvalue = 1\nkinds = [\"QDial\"]", "QDial"),
            ("[[scenario]]\nstep = \"turn\"\n[[scenario.expect]]\njson_path = \"a\"\nfailure = \"x\"\nreason = \"r\"", "needs one of"),
            ("[[scenario]]\nstep = \"turn\"\n[[scenario.expect]]\njson_path = \"a\"\nabsent = true\nalive = true\nfailure = \"x\"\nreason = \"r\"", "not several"),
            ("[[scenario]]\nstep = \"idle\"\n[[scenario.expect]]\njson_path = \"a\"\nabsent = true\nfailure = \"x\"\nreason = \"r\"", "belong to a `turn`"),
            ("[[scenario]]\nstep = \"turn\"\n[[scenario.expect]]\nabsent = true\nfailure = \"Bad Code\"\nreason = \"r\"", "snake_case"),
            ("[[scenario]]\nstep = \"idle\"\nseconds = 0", "seconds"),
            (too_many_idles.as_str(), "at most 8"),
            ("[[scenario]]\nstep = \"answer_file_dialog\"\npath = \"/tmp/a.txt\"", "right after the `click`"),
            ("[[scenario]]\nstep = \"click\"\ncontrol = 'x'\n[[scenario]]\nstep = \"answer_file_dialog\"\npath = \"/etc/passwd\"", "must be `/tmp/NAME`"),
            ("[[scenario]]\nstep = \"click\"\ncontrol = 'x'\n[[scenario]]\nstep = \"answer_file_dialog\"\npath = \"/tmp/../x\"", "must be `/tmp/NAME`"),
            ("[[scenario]]\nstep = \"click\"\ncontrol = 'x'\npath = \"/tmp/a\"", "only `answer_file_dialog` takes `path`"),
            ("[[scenario]]\nstep = \"turn\"\n[[scenario.expect]]\nholds_turns = true\nfailure = \"x\"\nreason = \"r\"", "belongs to an `answer_file_dialog`"),
            ("[[scenario]]\nstep = \"click\"\ncontrol = 'x'\n[[scenario]]\nstep = \"answer_file_dialog\"\npath = \"/tmp/a.txt\"\n[[scenario.expect]]\nabsent = true\nfailure = \"x\"\nreason = \"r\"", "not absent"),
            ("[[scenario]]\nstep = \"click\"\ncontrol = 'x'\n[[scenario]]\nstep = \"answer_file_dialog\"\npath = \"/tmp/a.txt\"\n[[scenario.expect]]\ncontains = 3\nfailure = \"x\"\nreason = \"r\"", "is a string"),
        ];
        for (text, says) in cases {
            let error = match toml::from_str::<toml::Value>(text) {
                Ok(_) => {
                    #[derive(Deserialize)]
                    struct File {
                        scenario: Vec<ScenarioStep>,
                    }
                    match toml::from_str::<File>(text) {
                        Ok(file) => validate(&file.scenario).unwrap_err(),
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            assert!(error.contains(says), "{text}: {error}");
        }
        let many_turns = "[[scenario]]\nstep = \"turn\"\n".repeat(MAX_TURNS + 1);
        assert!(validate(&parse(&many_turns))
            .unwrap_err()
            .contains("at most"));
    }

    #[test]
    fn a_file_dialog_after_its_click_reads_and_is_named() {
        let scenario = parse(
            r#"
[[scenario]]
step = "turn"
[[scenario]]
step = "click"
control = '(?i)save'
[[scenario]]
step = "answer_file_dialog"
path = "/tmp/chat-log.txt"
[[scenario.expect]]
holds_turns = true
failure = "turns_not_saved"
reason = "{path}: {found}"
"#,
        );
        validate(&scenario).unwrap();
        assert_eq!(step_names(&scenario)[5], "answer_file_dialog_1");
        assert_eq!(scenario[2].failure_code(), "no_file_dialog");
        assert!(check_dialog_path("/tmp/chat-log.json").is_ok());
        for bad in [
            "/tmp/",
            "/tmp/.hidden",
            "/tmp/a/b",
            "/tmp/a_b",
            "tmp/a",
            "/tmp/a b",
        ] {
            assert!(check_dialog_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_values_and_reasons() {
        let body = json!({"options": {"temperature": 0.2}, "messages": [{"role": "system"}], "temperature": 0.8});
        assert_eq!(at_path(&body, "options.temperature"), Some(&json!(0.2)));
        assert_eq!(at_path(&body, "messages.0.role"), Some(&json!("system")));
        assert_eq!(at_path(&body, "options.top_p"), None);
        assert_eq!(at_path(&body, "temperature.x"), None);
        assert!(json_equals(&json!(0.2), &json!(0.2)));
        assert!(json_equals(&json!(20.0 / 100.0), &json!(0.2)));
        assert!(!json_equals(&json!(0.8), &json!(0.2)));
        assert!(!json_equals(&json!("0.2"), &json!(0.2)));
        assert!(json_contains(&json!("you are kind"), &json!("kind")));
        assert!(json_contains(&json!([1, 0.2]), &json!(0.2)));
        assert!(!json_contains(&json!(0.2), &json!(0.2)));
        assert_eq!(
            fill(
                "had {path} {found}, not {expected}",
                &[
                    ("path", "options.temperature".into()),
                    ("found", "0.8".into()),
                    ("expected", "0.2".into())
                ]
            ),
            "had options.temperature 0.8, not 0.2"
        );
    }
}

/// The shipped task written as data: its scenario reads, and its static
/// grading (`[static]`) takes each fixture answer's change as asked or not.
#[cfg(test)]
mod temperature_task {
    use std::path::Path;

    use crate::grading::{extract, static_grade};
    use crate::task::Task;

    fn changes(task: &Task, answer: &str) -> Vec<String> {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/outputs/temperature-control");
        let text = std::fs::read_to_string(dir.join(answer)).unwrap();
        let script = extract::extract(&text, Some(&task.original_source))
            .unwrap()
            .script;
        let report = static_grade::grade(&script, task);
        assert!(!report.is_snippet(), "{answer}: {report:?}");
        report
            .unrequested_changes
            .iter()
            .chain(&report.suspicious)
            .map(|c| c.kind.clone())
            .collect()
    }

    #[test]
    fn the_requested_change_is_not_an_unrequested_one() {
        let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks");
        let task = Task::load(&tasks, "temperature-control").unwrap();
        assert_eq!(super::turn_count(&task.scenario), 3);
        for answer in ["spinbox.md", "slider.md", "stale-value.md", "top-level.md"] {
            assert_eq!(changes(&task, answer), Vec::<String>::new(), "{answer}");
        }
        let restructured = changes(&task, "restructured.md");
        assert!(
            restructured.contains(&"new_layout".to_string()),
            "{restructured:?}"
        );
        // The reset task's grading is unchanged: the same answer there
        // changes `submit`, its submit handler, which may not change.
        let reset = Task::load(&tasks, "reset-conversation").unwrap();
        assert!(changes(&reset, "spinbox.md").contains(&"method_changed".to_string()));
    }
}
