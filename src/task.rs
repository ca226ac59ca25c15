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
    /// Path of the original script, relative to the task folder.
    pub original: String,
    pub app: AppSpec,
    pub reset_control: ResetControlSpec,
    pub limits: Limits,
    /// The original script's source, loaded from `original`.
    #[serde(skip_deserializing, default)]
    pub original_source: String,
}

/// Names of the app's parts that the harness drives and checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppSpec {
    pub window_class: String,
    pub ui_builder: String,
    #[serde(default)]
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

impl Task {
    /// Loads `<tasks_dir>/<id>/task.toml` and the original script beside it.
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
            return Err(TaskError::Unknown {
                id: id.to_string(),
                path,
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| TaskError::Read {
            path: path.clone(),
            source,
        })?;
        let mut task: Task = toml::from_str(&text).map_err(|e| TaskError::Invalid {
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
        let original_path = dir.join(&task.original);
        task.original_source =
            std::fs::read_to_string(&original_path).map_err(|source| TaskError::Read {
                path: original_path,
                source,
            })?;
        Ok(task)
    }

    /// Lists the ids of the tasks in `tasks_dir`, sorted.
    pub fn list(tasks_dir: &Path) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(tasks_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("task.toml").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
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
