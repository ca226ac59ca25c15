//! A task: the original app, the prompt, and what the harness must know to
//! drive the app (read from `fixtures/tasks/<id>/task.toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

    #[test]
    fn a_folder_task_comes_before_the_built_in_ones() {
        let ids = Task::list(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks"));
        assert_eq!(ids.first().map(String::as_str), Some("reset-conversation"));
        assert!(ids.iter().any(|id| id == "generic-reset"));
    }
}
