//! A task: the original app, the prompt, and what the harness must know to
//! drive the app (read from `fixtures/tasks/<id>/task.toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scenario::ScenarioStep;

/// Errors loading a task folder.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("unknown task `{id}`: no {path} (tasks live in fixtures/tasks/<id>/task.toml; set QTJUDGE_TASKS_DIR to another folder)")]
    Unknown { id: String, path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid task file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A task as written in `task.toml`, plus the original script's text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub prompt: String,
    /// Path of the original script, relative to the task folder. Empty for
    /// a task about apps nobody wrote for qtjudge (`generic-reset`): no
    /// snippet check, no unrequested changes, no layout comparison.
    #[serde(default)]
    pub original: String,
    #[serde(default)]
    pub app: AppSpec,
    pub reset_control: ResetControlSpec,
    #[serde(default)]
    pub limits: Limits,
    /// A task written as data (issue 21): the steps the harness takes and
    /// what must then be observed. Empty: the reset flow.
    #[serde(default)]
    pub scenario: Vec<ScenarioStep>,
    /// What static grading counts as the requested change, beyond the
    /// reset control (defaults: nothing more, as for the reset).
    #[serde(default, rename = "static")]
    pub static_grading: StaticSpec,
    /// The original script's source, loaded from `original`.
    #[serde(skip_deserializing, default)]
    pub original_source: String,
}

/// Names of the app's parts that the harness drives and checks. Each one
/// left empty is discovered by the harness (and reported as discovered).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSpec {
    pub window_class: String,
    pub ui_builder: String,
    pub may_extend: Vec<String>,
    pub prompt_entry: String,
    pub submit_control: String,
    pub history_attributes: Vec<String>,
    pub history_display: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetControlSpec {
    /// A regex valid in both Rust and Python; `&` mnemonics are removed first.
    pub text_pattern: String,
    /// The window attribute holding the reset button or action, for an app
    /// whose reset discovery cannot find (an unlabelled icon, say). Empty:
    /// found by `text_pattern`.
    #[serde(default)]
    pub attribute: String,
    /// The task asks for a button: a reset that is only a menu or toolbar
    /// action (`QAction`, `addAction`) is a change beyond the request.
    #[serde(default)]
    pub button: bool,
}

/// The `[static]` table: what else than the reset control the task's
/// requested change is made of, for the static grader.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticSpec {
    /// A regex (Rust's) on statements and names: in the methods the change
    /// may extend or change, a statement that matches is the requested
    /// change; so are new methods and layouts whose names match. Empty:
    /// only the reset control's names.
    pub requested: String,
    /// Original methods whose statements the requested change may rewrite
    /// (as many as it adds matching `requested`), not only extend; a
    /// submit handler named here may change too.
    pub may_change: Vec<String>,
    /// Kinds of unrequested change the requested change itself brings
    /// (`reset_touches_files` for a Save button's handler), each
    /// optionally narrowed to changes whose detail names a word
    /// (`new_dialog:QFileDialog`): not held against an answer.
    pub expected_changes: Vec<String>,
}

impl StaticSpec {
    /// Whether a change of `kind` described by `detail` is one the task's
    /// requested change brings (`expected_changes`).
    pub fn expects(&self, kind: &str, detail: &str) -> bool {
        self.expected_changes
            .iter()
            .any(|entry| match entry.split_once(':') {
                Some((k, word)) => k == kind && detail.contains(word),
                None => entry == kind,
            })
    }
}

/// Resource limits of one verification; the operator may only tighten them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    pub wall_seconds: u64,
    pub memory_mb: u64,
    pub pids: i64,
    pub cpus: f64,
    pub tmpfs_mb: u64,
    pub file_size_mb: u64,
    pub open_files: u64,
    pub output_cap_kb: u64,
}

impl Default for Limits {
    /// The defaults the README's limits table lists.
    fn default() -> Limits {
        Limits {
            wall_seconds: 30,
            memory_mb: 768,
            pids: 256,
            cpus: 1.0,
            tmpfs_mb: 64,
            file_size_mb: 16,
            open_files: 1024,
            output_cap_kb: 64,
        }
    }
}

/// Tasks compiled into the binary: they need no original script, so they
/// work whatever `QTJUDGE_TASKS_DIR` points at. A folder of the same id in
/// the tasks dir overrides one (to tune its pattern or limits).
const BUILTIN: &[(&str, &str)] = &[("generic-reset", include_str!("tasks/generic-reset.toml"))];

impl Task {
    /// Whether the task has an original script to compare answers with.
    pub fn has_original(&self) -> bool {
        !self.original.is_empty()
    }

    /// The failure codes of the task's own scenario (none for the reset).
    pub fn scenario_codes(&self) -> Vec<String> {
        crate::scenario::failure_codes(&self.scenario)
    }

    /// Loads `<tasks_dir>/<id>/task.toml` and the original script beside
    /// it, or the built-in task of that id.
    pub fn load(tasks_dir: &Path, id: &str) -> Result<Task, TaskError> {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(TaskError::Unknown {
                id: id.to_string(),
                path: tasks_dir.join("<invalid id>"),
            });
        }
        let dir = tasks_dir.join(id);
        let path = dir.join("task.toml");
        if !path.is_file() {
            if let Some((_, text)) = BUILTIN.iter().find(|(builtin, _)| *builtin == id) {
                return Task::parse(text, id, &path, None);
            }
            return Err(TaskError::Unknown {
                id: id.to_string(),
                path,
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| TaskError::Read {
            path: path.clone(),
            source,
        })?;
        Task::parse(&text, id, &path, Some(&dir))
    }

    /// Parses a task file; `dir` is where its original lives (none for a
    /// built-in task, which may not name one).
    fn parse(text: &str, id: &str, path: &Path, dir: Option<&Path>) -> Result<Task, TaskError> {
        let path = path.to_path_buf();
        let mut task: Task = toml::from_str(text).map_err(|e| TaskError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if task.id != id {
            return Err(TaskError::Invalid {
                path,
                message: format!("id `{}` does not match its folder `{id}`", task.id),
            });
        }
        if let Err(e) = regex::Regex::new(&task.reset_control.text_pattern) {
            return Err(TaskError::Invalid {
                path,
                message: format!("reset_control.text_pattern: {e}"),
            });
        }
        if let Err(e) = regex::Regex::new(&task.static_grading.requested) {
            return Err(TaskError::Invalid {
                path,
                message: format!("static.requested: {e}"),
            });
        }
        if let Some(bad) = task.static_grading.expected_changes.iter().find(|entry| {
            let kind = entry.split(':').next().unwrap_or("");
            kind.is_empty() || !kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        }) {
            return Err(TaskError::Invalid {
                path,
                message: format!(
                    "static.expected_changes: `{bad}` is not a change kind (`new_dialog`, or `new_dialog:QFileDialog` for those naming it)"
                ),
            });
        }
        if let Err(message) = crate::scenario::validate(&task.scenario) {
            return Err(TaskError::Invalid { path, message });
        }
        if !task.has_original() {
            return Ok(task);
        }
        let Some(dir) = dir else {
            return Err(TaskError::Invalid {
                path,
                message: "a built-in task cannot name an original script".into(),
            });
        };
        let original_path = dir.join(&task.original);
        task.original_source =
            std::fs::read_to_string(&original_path).map_err(|source| TaskError::Read {
                path: original_path,
                source,
            })?;
        Ok(task)
    }

    /// Lists the ids of the tasks in `tasks_dir`, sorted, then the built-in
    /// tasks no folder overrides.
    pub fn list(tasks_dir: &Path) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(tasks_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("task.toml").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        for (builtin, _) in BUILTIN {
            if !ids.iter().any(|id| id == builtin) {
                ids.push(builtin.to_string());
            }
        }
        ids
    }
}

/// Whether `id` names a task built into the binary.
pub fn is_builtin(id: &str) -> bool {
    BUILTIN.iter().any(|(builtin, _)| *builtin == id)
}

/// The task used when none was given and no task's original resembles
/// the answer.
pub const FALLBACK_TASK: &str = "generic-reset";

/// Share of an original's names an answer must contain to be taken as an
/// answer to that task. The experiment's answers score 0.28 (a snippet) to
/// 1.0; apps nobody wrote for a task score under 0.1.
pub const RESEMBLANCE_THRESHOLD: f64 = 0.2;

/// Which task an answer was graded against, and why.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TaskChoice {
    pub task: String,
    /// `given` (named by the caller), `resembles` (its original is like the
    /// answer) or `default` (nothing resembled the answer: `generic-reset`).
    pub how: String,
    pub reason: String,
    /// The best resemblance found (share of the original's names in the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl TaskChoice {
    /// The task the caller named.
    pub fn given(id: &str) -> TaskChoice {
        TaskChoice {
            task: id.to_string(),
            how: "given".into(),
            reason: format!("the task `{id}` was given"),
            score: None,
        }
    }
}

/// The names an original defines: its classes and functions and the
/// attributes it assigns on `self` (what a refactoring keeps).
pub fn original_names(original: &str) -> Vec<String> {
    static DEFINED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let defined = DEFINED.get_or_init(|| {
        regex::Regex::new(r"(?m)^\s*(?:def|class)\s+([A-Za-z_]\w*)|self\.([A-Za-z_]\w*)\s*=[^=]")
            .expect("the pattern is valid")
    });
    let mut names: Vec<String> = defined
        .captures_iter(original)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)))
        .map(|m| m.as_str().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The share of `names` that appear as words of `candidate` (0 when there
/// are no names). Linear in the candidate's size.
pub fn resemblance(names: &[String], candidate: &str) -> f64 {
    if names.is_empty() {
        return 0.0;
    }
    let words: std::collections::HashSet<&str> = candidate
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let found = names.iter().filter(|n| words.contains(n.as_str())).count();
    found as f64 / names.len() as f64
}

/// The classes a script defines (at any indentation, as a diff's context
/// lines carry them).
fn defined_classes(source: &str) -> Vec<&str> {
    static CLASS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    CLASS
        .get_or_init(|| regex::Regex::new(r"(?m)^[ \t+\-]*class\s+([A-Za-z_]\w*)").expect("valid"))
        .captures_iter(source)
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str())
        .collect()
}

/// Why an answer that shares names with an original is still not a
/// refactoring of it: it defines classes of its own and none of the
/// original's (shared words such as `chat_history` or `send_message` are
/// common to every chat front end). A snippet defining no class keeps the
/// resemblance.
fn structurally_other(original: &str, candidate: &str) -> Option<String> {
    let theirs = defined_classes(candidate);
    let ours = defined_classes(original);
    if theirs.is_empty() || ours.is_empty() || theirs.iter().any(|c| ours.contains(c)) {
        return None;
    }
    let mut theirs: Vec<&str> = theirs;
    theirs.sort_unstable();
    theirs.dedup();
    theirs.truncate(4);
    Some(format!(
        "it defines {} and none of the original's classes ({})",
        theirs
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", "),
        ours.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Picks the task of the original the answer resembles most (at least
/// [`RESEMBLANCE_THRESHOLD`] of its names, and not structurally another
/// app: see [`structurally_other`]), else [`FALLBACK_TASK`]. `tasks` are
/// the candidates (those without an original are ignored).
pub fn choose(tasks: &[Task], candidate: &str) -> TaskChoice {
    let best = tasks
        .iter()
        .filter(|t| t.has_original())
        .map(|t| {
            (
                t,
                resemblance(&original_names(&t.original_source), candidate),
            )
        })
        // A tie (two tasks on one original) goes to the task listed first:
        // `max_by` keeps the last of equals.
        .rev()
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((task, score)) = best.filter(|(_, score)| *score >= RESEMBLANCE_THRESHOLD) {
        if let Some(why) = structurally_other(&task.original_source, candidate) {
            return TaskChoice {
                task: FALLBACK_TASK.to_string(),
                how: "default".into(),
                reason: format!(
                    "no task given; the answer has {:.0}% of the names of `{}`'s original, but is not a refactoring of it: {why}; discovery only",
                    score * 100.0,
                    task.id
                ),
                score: Some(score),
            };
        }
    }
    match best {
        Some((task, score)) if score >= RESEMBLANCE_THRESHOLD => TaskChoice {
            task: task.id.clone(),
            how: "resembles".into(),
            reason: format!(
                "no task given; the answer has {:.0}% of the names of `{}`'s original",
                score * 100.0,
                task.id
            ),
            score: Some(score),
        },
        best => TaskChoice {
            task: FALLBACK_TASK.to_string(),
            how: "default".into(),
            reason: match best {
                Some((task, score)) => format!(
                    "no task given and no task's original resembles the answer (closest: `{}`, {:.0}% of its names, under {:.0}%): discovery only",
                    task.id,
                    score * 100.0,
                    RESEMBLANCE_THRESHOLD * 100.0
                ),
                None => "no task given and no task has an original: discovery only".into(),
            },
            score: best.map(|(_, s)| s),
        },
    }
}

/// Every task of `tasks_dir` that has an original (the candidates of
/// [`choose`]); one that does not load is left out with a warning.
pub fn load_with_originals(tasks_dir: &Path) -> Vec<Task> {
    Task::list(tasks_dir)
        .iter()
        .filter_map(|id| match Task::load(tasks_dir, id) {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "task left out of the automatic choice");
                None
            }
        })
        .filter(Task::has_original)
        .collect()
}

/// The folder holding the tasks: `QTJUDGE_TASKS_DIR`, else `fixtures/tasks`
/// of this source tree (so a clone works without configuration).
pub fn default_tasks_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QTJUDGE_TASKS_DIR") {
        return PathBuf::from(dir);
    }
    let cwd_relative = PathBuf::from("fixtures/tasks");
    if cwd_relative.is_dir() {
        return cwd_relative;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_of_its_own_sharing_the_originals_words_is_not_its_refactoring() {
        let original = "class ConversationLogger:\n    pass\n\nclass OllamaClientApp(QMainWindow):\n    def init_ui(self):\n        self.chat_history = []\n        self.model_combo = None\n    def send_message(self):\n        pass\n";
        let task = Task {
            original: "original.py".into(),
            original_source: original.into(),
            ..Task::load(Path::new("/nonexistent"), FALLBACK_TASK).unwrap()
        };
        let tasks = [Task {
            id: "experiment".into(),
            ..task
        }];
        let other = "class ChatWindow(QWidget):\n    def init_ui(self):\n        self.chat_history = []\n        self.model_combo = None\n    def send_message(self):\n        pass\n";
        let choice = choose(&tasks, other);
        assert_eq!(choice.task, FALLBACK_TASK, "{choice:?}");
        assert!(choice.reason.contains("`ChatWindow`"), "{}", choice.reason);
        // A refactoring keeps a class of the original; a snippet defines none.
        let refactoring = other.replace("ChatWindow(QWidget)", "OllamaClientApp(QMainWindow)");
        assert_eq!(choose(&tasks, &refactoring).task, "experiment");
        let snippet = "    def init_ui(self):\n        self.chat_history = []\n        self.model_combo = None\n";
        assert_eq!(choose(&tasks, snippet).task, "experiment");
    }

    #[test]
    fn the_generic_task_is_built_in_and_names_nothing() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(Task::list(empty.path()), vec!["generic-reset".to_string()]);
        let task = Task::load(empty.path(), "generic-reset").unwrap();
        assert!(!task.has_original());
        assert!(task.original_source.is_empty());
        assert!(task.app.prompt_entry.is_empty() && task.app.history_attributes.is_empty());
        assert_eq!(task.limits, Limits::default());
        let pattern = regex::Regex::new(&task.reset_control.text_pattern).unwrap();
        for label in ["New chat", "Clear conversation", "Reset", "Start over"] {
            assert!(pattern.is_match(label), "{label}");
        }
        assert!(!pattern.is_match("Send"));
    }

    /// Labels of reset controls as apps word them (each one part of a
    /// control: its text, tooltip, accessible name or objectName in words).
    const RESET_LABELS: &[&str] = &[
        "Reset",
        "Clear Chat",
        "&New Chat",
        "Start over",
        "Restart",
        "Forget",
        "Wipe chat",
        "Erase history",
        "Clear all",
        "Delete conversation",
        "Delete all messages",
        "Remove the conversation",
        "New",
        "&New",
        "+ New",
        "New…",
        "Fresh start",
        "Start fresh",
        "Empty chat",
        "🗑",
        "🗑\u{fe0f}",
        "🧹 ",
        "Delete the conversation",
        "trash Button",
        "Réinitialiser",
        "Reinitialiser la conversation",
        "Effacer l'historique",
        "Nouvelle conversation",
        "Borrar",
        "Nuevo chat",
        "Nueva conversación",
        "Neu",
        "Zurücksetzen",
        "Verlauf löschen",
        "Neuer Chat",
        "Azzera",
        "Nuova chat",
        "Limpar",
        "Nova conversa",
        "Nieuw gesprek",
        "Очистить",
        "Сбросить",
        "Новый чат",
        "清空对话",
        "新对话",
        "リセット",
        "새 대화",
    ];

    /// Labels of the other controls of a chat app: none may count as its
    /// reset, in any language the pattern knows.
    const OTHER_LABELS: &[&str] = &[
        "Send",
        "Submit",
        "Stop",
        "Stop generating",
        "Save",
        "Save chat",
        "Save history",
        "Copy",
        "Copy conversation",
        "Copy last answer",
        "Export",
        "Export chat",
        "Export history",
        "Send message",
        "Send (Ctrl+Enter)",
        "Attach files",
        "Regenerate",
        "Retry",
        "Cancel",
        "Close",
        "Quit",
        "Settings",
        "Refresh",
        "Refresh models",
        "Load models",
        "Open",
        "Upload",
        "Print",
        "Undo",
        "Ask",
        "Go",
        "Model:",
        "New window",
        "New file",
        "Newline",
        "Renew",
        "Delete message",
        "Delete file",
        "Remove attachment",
        "Enviar",
        "Guardar",
        "Copiar",
        "Exportar",
        "Detener",
        "Nuevo archivo",
        "Senden",
        "Speichern",
        "Kopieren",
        "Exportieren",
        "Stopp",
        "Neue Datei",
        "Envoyer",
        "Enregistrer",
        "Copier",
        "Exporter",
        "Arrêter",
        "Invia",
        "Annulla",
        "Salva",
        "Отправить",
        "Сохранить",
        "发送",
        "保存",
        "送信",
        "보내기",
    ];

    /// Both shipped patterns find every reset wording and nothing else, as
    /// the host's static grader reads them (Rust's `regex`) and as the
    /// harness does (Python's `re`, run here by the host's python3).
    #[test]
    fn the_reset_patterns_find_every_reset_wording_and_no_other_control() {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let tasks = [
            Task::load(&repo.join("fixtures/tasks"), "reset-conversation").unwrap(),
            Task::load(&repo.join("fixtures/tasks"), FALLBACK_TASK).unwrap(),
        ];
        for task in &tasks {
            let source = &task.reset_control.text_pattern;
            let pattern = regex::Regex::new(source).unwrap();
            for label in RESET_LABELS {
                let label = label.replace('&', "");
                assert!(
                    pattern.is_match(&label),
                    "{}: {label:?} is a reset",
                    task.id
                );
            }
            for label in OTHER_LABELS {
                assert!(
                    !pattern.is_match(label),
                    "{}: {label:?} is not a reset",
                    task.id
                );
            }
            let script = "import json, re, sys\n\
                 pattern, resets, others = json.load(sys.stdin)\n\
                 missed = [l for l in resets if not re.search(pattern, l.replace('&', ''))]\n\
                 wrong = [l for l in others if re.search(pattern, l)]\n\
                 print(json.dumps([missed, wrong]))\n";
            let mut child = std::process::Command::new("python3")
                .args(["-c", script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3 (the harness's language) is on the host");
            let input = serde_json::json!([source, RESET_LABELS, OTHER_LABELS]).to_string();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stdout)
            );
            let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(
                verdict,
                serde_json::json!([[], []]),
                "{}: Python's re differs (missed resets, other controls matched)",
                task.id
            );
        }
    }

    #[test]
    fn the_experiments_answers_choose_its_task_and_other_apps_the_generic_one() {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let tasks = load_with_originals(&repo.join("fixtures/tasks"));
        assert!(tasks.iter().any(|t| t.id == "reset-conversation"));
        let read = |dir: &str| -> Vec<(String, String)> {
            let mut files: Vec<_> = std::fs::read_dir(repo.join(dir))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("md" | "py")))
                .collect();
            files.sort();
            files
                .into_iter()
                .map(|p| {
                    (
                        p.display().to_string(),
                        std::fs::read_to_string(&p).unwrap(),
                    )
                })
                .collect()
        };
        for (path, text) in read("fixtures/outputs/reset-conversation") {
            let choice = choose(&tasks, &text);
            // A prose answer holds no code to resemble anything; its tier
            // (no code) is the same under any task.
            let expected = if path.ends_with("trap-no-code.md") {
                FALLBACK_TASK
            } else {
                "reset-conversation"
            };
            assert_eq!(choice.task, expected, "{path}: {choice:?}");
        }
        // The system-prompt task's answers are to an app of its own.
        for (path, text) in read("fixtures/outputs/system-prompt") {
            let choice = choose(&tasks, &text);
            assert_eq!(choice.task, "system-prompt", "{path}: {choice:?}");
        }
        for (path, text) in read("fixtures/apps") {
            let choice = choose(&tasks, &text);
            assert_eq!(choice.task, FALLBACK_TASK, "{path}: {choice:?}");
            assert_eq!(choice.how, "default");
            // The reason names the closest task with an original (chat
            // apps share names such as `messages` with TinyChat's).
            assert!(
                ["reset-conversation", "system-prompt"]
                    .iter()
                    .any(|id| choice.reason.contains(&format!("`{id}`"))),
                "{}",
                choice.reason
            );
        }
        assert_eq!(choose(&[], "anything").task, FALLBACK_TASK);
    }

    #[test]
    fn a_folder_task_comes_before_the_built_in_ones() {
        let ids = Task::list(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks"));
        let builtin = ids
            .iter()
            .position(|id| id == "generic-reset")
            .expect("generic-reset is listed");
        let folders = &ids[..builtin];
        assert!(folders.contains(&"reset-conversation".to_string()));
        assert!(folders.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids[builtin..].iter().all(|id| is_builtin(id)), "{ids:?}");
    }
}
