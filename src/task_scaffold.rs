//! A new task folder (issue 21, `qtjudge task new`): the name checked, a
//! commented `task.toml` with a scenario skeleton, the original copied,
//! an empty references folder and an answers manifest; and what a task
//! folder still lacks before `qtjudge task check` can run it.

use std::path::{Path, PathBuf};

/// The longest task name `task new` accepts.
pub const MAX_NAME_LEN: usize = 64;

/// Why a task folder could not be made; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{name}` is not a task name: use lowercase letters, digits and single hyphens, starting with a letter, at most {MAX_NAME_LEN} characters (e.g. `stop-button`); it names the task's folder and is what --task takes")]
    BadName { name: String },
    #[error("task `{name}` already exists ({path}): pick another name, or edit that folder and run `qtjudge task check {name}`")]
    Exists { name: String, path: PathBuf },
    #[error("task `{name}` is built into qtjudge: pick another name")]
    BuiltIn { name: String },
    #[error("cannot read the original app {path}: {source} (give --from the app's .py script)")]
    Original {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `task new` made.
#[derive(Debug)]
pub struct Scaffold {
    pub dir: PathBuf,
    /// The files written, relative to `dir`.
    pub files: Vec<String>,
    /// The window class read from the original, if one was found.
    pub window_class: Option<String>,
}

/// Checks a new task's name: lowercase words of letters and digits joined
/// by single hyphens, starting with a letter.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let good = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if good {
        Ok(())
    } else {
        Err(ScaffoldError::BadName {
            name: name.to_string(),
        })
    }
}

/// Makes `<tasks_dir>/<name>/`: `task.toml`, `original.py` (a copy of
/// `from`, when given), `reference/` and `answers/manifest.toml`. Refuses
/// a bad name, a task that exists (a folder or a built-in one) and an
/// unreadable original before anything is written.
pub fn scaffold(
    tasks_dir: &Path,
    name: &str,
    from: Option<&Path>,
) -> Result<Scaffold, ScaffoldError> {
    check_name(name)?;
    let dir = tasks_dir.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists {
            name: name.to_string(),
            path: dir,
        });
    }
    if crate::task::is_builtin(name) {
        return Err(ScaffoldError::BuiltIn {
            name: name.to_string(),
        });
    }
    let original = match from {
        Some(path) => {
            Some(
                std::fs::read_to_string(path).map_err(|source| ScaffoldError::Original {
                    path: path.to_path_buf(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let window_class = original.as_deref().and_then(window_class_of);
    let ui_builder = original
        .as_deref()
        .zip(window_class.as_deref())
        .and_then(|(source, class)| ui_builder_of(source, class));
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Write { path, source })
    };
    std::fs::create_dir_all(tasks_dir).map_err(|source| ScaffoldError::Write {
        path: tasks_dir.to_path_buf(),
        source,
    })?;
    // `create_dir` fails if another process made it meanwhile.
    std::fs::create_dir(&dir).map_err(|source| ScaffoldError::Write {
        path: dir.clone(),
        source,
    })?;
    let made = (|| {
        let mut files = vec!["task.toml".to_string()];
        write(
            dir.join("task.toml"),
            &task_toml(name, window_class.as_deref(), ui_builder.as_deref()),
        )?;
        if let Some(source) = &original {
            write(dir.join("original.py"), source)?;
            files.push("original.py".into());
        }
        for sub in ["reference", "answers"] {
            std::fs::create_dir(dir.join(sub)).map_err(|source| ScaffoldError::Write {
                path: dir.join(sub),
                source,
            })?;
        }
        write(dir.join("answers/manifest.toml"), &manifest(name))?;
        files.push("reference/".into());
        files.push("answers/manifest.toml".into());
        Ok(files)
    })();
    match made {
        Ok(files) => Ok(Scaffold {
            dir,
            files,
            window_class,
        }),
        Err(e) => {
            // Half a task folder would be refused as existing next time.
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// The first class of the script built on a Qt window class.
fn window_class_of(source: &str) -> Option<String> {
    let class = regex::Regex::new(
        r"(?m)^class\s+([A-Za-z_]\w*)\s*\([^)]*\b(QMainWindow|QWidget|QDialog)\b",
    )
    .expect("the pattern is valid");
    class.captures(source).map(|c| c[1].to_string())
}

/// The method of `class` that lays out widgets (the first one adding a
/// widget or a layout), the one a change may extend.
fn ui_builder_of(source: &str, class: &str) -> Option<String> {
    let start = source.find(&format!("class {class}"))?;
    let body = &source[start..];
    let end = body[1..].find("\nclass ").map_or(body.len(), |i| i + 1);
    let body = &body[..end];
    let def =
        regex::Regex::new(r"(?m)^\s+def\s+([A-Za-z_]\w*)\s*\(").expect("the pattern is valid");
    let starts: Vec<(usize, String)> = def
        .captures_iter(body)
        .map(|c| (c.get(0).map_or(0, |m| m.start()), c[1].to_string()))
        .collect();
    starts.iter().enumerate().find_map(|(i, (at, name))| {
        let until = starts.get(i + 1).map_or(body.len(), |(next, _)| *next);
        let text = &body[*at..until];
        (name != "__init__"
            && ["addWidget", "setLayout", "setCentralWidget", "addLayout"]
                .iter()
                .any(|call| text.contains(call)))
        .then(|| name.clone())
    })
}

/// The commented `task.toml` of a new task: everything the author must
/// fill in says so, and it loads as it is.
fn task_toml(name: &str, window_class: Option<&str>, ui_builder: Option<&str>) -> String {
    let may_extend = match ui_builder {
        Some(builder) => format!("[\"__init__\", \"{builder}\"]"),
        None => "[\"__init__\"]".to_string(),
    };
    format!(
        r#"# A task written as data (README, "Write your own task"): made by
# `qtjudge task new {name}`. Fill in every TODO, put a correct full script
# in reference/, answers and their verdicts in answers/, then run
# `qtjudge task check {name}` until every item gets its verdict.

id = "{name}"
# TODO: one line saying what the task asks for.
title = "TODO: what the task asks for"
# TODO: the request as a user would write it to a model.
prompt = "TODO: the request, as a user would write it; please give me the full script"
# The app the models are asked to change, relative to this file.
original = "original.py"

[app]
# The window class (read from the original; built if the script shows none).
window_class = "{window_class}"
# The method that builds the UI, and the original methods a change may
# extend (gain lines in). Check them against the original.
ui_builder = "{ui_builder}"
may_extend = {may_extend}
# The window attributes of the prompt input and the send button; empty:
# found by the harness (an editable field, a button saying Send/Ask …).
prompt_entry = ""
submit_control = ""
# Where the app keeps the conversation, and the widgets that show it.
history_attributes = []
history_display = []

[reset_control]
# TODO: the requested control's words (a regex, Rust's and Python's), read
# by the static grader for a new button or action.
text_pattern = '(?i)\bTODO\b'

[static]
# TODO: what the requested change is made of (a regex on statements and on
# new methods' and layouts' names), and the original methods whose
# statements it may rewrite (the one that builds the request, say).
requested = '(?i)TODO'
may_change = []

# The scenario: what the harness does to the app, in order, and what the
# requests sent to the model must then hold. Steps: turn, set, click, idle
# (README, the scenario table). This skeleton only types one turn: the
# original passes it, so `task check` reports it until you write the rest.
[[scenario]]
step = "turn"

# [[scenario]]
# step = "set"
# control = '(?i)\bTODO\b'            # the control's text, tooltip, name or label
# value = 0.2                         # a number, a bool, or a string
# failure = "no_todo_control"         # the code when it cannot be set
# reason = "no control for TODO"
#
# [[scenario]]
# step = "turn"
# [[scenario.expect]]
# json_path = "options.TODO"          # dotted: messages.0.role
# equals = 0.2                        # or present, contains, absent
# failure = "todo_not_sent"
# reason = "the request after setting {{expected}} had {{path}} {{found}}"

[gold]
# TODO: the code the unchanged original gets (a step's or an
# expectation's `failure` above, e.g. "no_todo_control"); `task check`
# runs nothing until it is set.
# original_failure = "no_todo_control"
references = "reference"
answers = "answers"
"#,
        window_class = window_class.unwrap_or(""),
        ui_builder = ui_builder.unwrap_or(""),
    )
}

/// The answers' manifest of a new task: how to list one, none listed.
fn manifest(name: &str) -> String {
    format!(
        r#"# Answers to the task `{name}` and the verdict each must get
# (`qtjudge task check {name}` runs them). One table per answer file
# beside this manifest:
#
# [[answer]]
# file = "spinbox.md"       # a raw answer (.md, .py, .txt)
# model = "spinbox"         # its name in reports
# tier = 1                  # 1 flawless, 2 unrequested changes, 3 failed
# failure = ""              # tier 3: a contract code or one of the scenario's
# why = "what the answer does and why it gets that verdict"
"#
    )
}

/// What the task folder `dir` still lacks before `task check` can run it
/// (empty when nothing): its task file, its original, `[gold]
/// original_failure`, a reference solution. Each line says what to do.
pub fn missing(dir: &Path) -> Vec<String> {
    let toml_path = dir.join("task.toml");
    let Ok(text) = std::fs::read_to_string(&toml_path) else {
        return vec![format!(
            "{}: no task file (make one with `qtjudge task new NAME --from app.py`)",
            toml_path.display()
        )];
    };
    let Ok(file) = toml::from_str::<toml::Value>(&text) else {
        return vec![format!("{}: not valid TOML", toml_path.display())];
    };
    let text_at = |table: &str, key: &str| -> String {
        file.get(table)
            .and_then(|t| t.get(key))
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut lacks = Vec::new();
    let original = file
        .get("original")
        .and_then(toml::Value::as_str)
        .unwrap_or_default();
    if original.is_empty() {
        lacks.push("`original` in task.toml: name the app's script (e.g. \"original.py\")".into());
    } else if !dir.join(original).is_file() {
        lacks.push(format!(
            "the original app: copy the app's script to {}",
            dir.join(original).display()
        ));
    }
    if text_at("gold", "original_failure").is_empty() {
        lacks.push("[gold] original_failure in task.toml: the failure code the unchanged original gets (a code of the scenario, or run `qtjudge verify` on it to see it)".into());
    }
    let references = match text_at("gold", "references") {
        r if r.is_empty() => crate::gold::DEFAULT_REFERENCES.to_string(),
        r => r,
    };
    let references_dir = dir.join(references);
    if crate::gold::references_in(&references_dir).map_or(true, |files| files.is_empty()) {
        lacks.push(format!(
            "a reference solution: put a correct full script (.py, .md or .txt) in {}",
            references_dir.display()
        ));
    }
    lacks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    const APP: &str = "import sys\nfrom PyQt5.QtWidgets import QApplication, QWidget, QVBoxLayout\n\nclass Helper:\n    pass\n\nclass Pad(QWidget):\n    def __init__(self):\n        super().__init__()\n        self.build()\n\n    def build(self):\n        layout = QVBoxLayout(self)\n        layout.addWidget(QWidget())\n\n    def send(self):\n        pass\n";

    #[test]
    fn names_are_checked_and_say_what_a_name_is() {
        for good in ["stop-button", "a", "save2-file", "x1"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "Stop",
            "stop_button",
            "-stop",
            "stop-",
            "stop--button",
            "1stop",
            "../x",
            "a b",
        ] {
            let error = check_name(bad).unwrap_err().to_string();
            assert!(
                error.contains("lowercase letters, digits and single hyphens"),
                "{bad}: {error}"
            );
        }
        assert!(check_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn the_window_class_and_its_ui_builder_are_read_from_the_original() {
        assert_eq!(window_class_of(APP).as_deref(), Some("Pad"));
        assert_eq!(ui_builder_of(APP, "Pad").as_deref(), Some("build"));
        assert_eq!(window_class_of("class A:\n    pass\n"), None);
    }

    #[test]
    fn a_scaffold_loads_and_says_what_it_lacks() {
        let root = tempfile::tempdir().unwrap();
        let app = root.path().join("pad.py");
        std::fs::write(&app, APP).unwrap();
        let made = scaffold(root.path(), "pad-task", Some(&app)).unwrap();
        assert_eq!(made.window_class.as_deref(), Some("Pad"));
        let task = Task::load(root.path(), "pad-task").unwrap();
        assert_eq!(task.app.ui_builder, "build");
        assert_eq!(task.original_source, APP);
        let lacks = missing(&made.dir);
        assert_eq!(lacks.len(), 2, "{lacks:?}");
        assert!(lacks[0].contains("original_failure"), "{lacks:?}");
        assert!(lacks[1].contains("a reference solution"), "{lacks:?}");
        // Once filled in, nothing is missing.
        let toml = std::fs::read_to_string(made.dir.join("task.toml"))
            .unwrap()
            .replace(
                "# original_failure = \"no_todo_control\"",
                "original_failure = \"turn_failed\"",
            );
        std::fs::write(made.dir.join("task.toml"), toml).unwrap();
        std::fs::write(made.dir.join("reference/correct.py"), APP).unwrap();
        assert_eq!(missing(&made.dir), Vec::<String>::new());
        assert!(
            crate::gold::Gold::load(&made.dir, &Task::load(root.path(), "pad-task").unwrap())
                .is_ok()
        );
    }
}
