//! Each answer's task for `verify` and a local `grade`: given, or chosen
//! by resemblance, and prepared once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use super::Common;
use crate::task::{self, Task};
use crate::verify::{self, PreparedTask};

/// Picks each answer's task: the one given with `--task`, else the task
/// whose original the answer resembles, else `generic-reset`. Each task is
/// prepared once (its original's widget tree is cached per task).
pub(super) struct TaskPicker {
    dir: PathBuf,
    given: Option<String>,
    candidates: Vec<Task>,
    prepared: std::sync::Mutex<std::collections::HashMap<String, Arc<PreparedTask>>>,
    /// `--window-class`: every task's window class for this run.
    window_class: Option<String>,
}

impl TaskPicker {
    pub(super) fn new(common: &Common) -> Result<TaskPicker> {
        let dir = common
            .tasks_dir
            .clone()
            .unwrap_or_else(task::default_tasks_dir);
        let given = common.task.clone().filter(|t| !t.is_empty());
        let mut picker = TaskPicker {
            candidates: Vec::new(),
            prepared: Default::default(),
            given: given.clone(),
            dir: dir.clone(),
            window_class: common.window_class.clone().filter(|w| !w.is_empty()),
        };
        match given {
            // Loaded now: an unknown task is a usage error before any run.
            Some(id) => {
                picker.prepare(Task::load(&dir, &id)?);
            }
            None => picker.candidates = task::load_with_originals(&dir),
        }
        Ok(picker)
    }

    fn prepare(&self, mut task: Task) -> Arc<PreparedTask> {
        if let Some(window_class) = &self.window_class {
            task.app.window_class = window_class.clone();
        }
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        prepared
            .entry(task.id.clone())
            .or_insert_with(|| PreparedTask::new(task, verify::default_cache_dir()))
            .clone()
    }

    /// Loads a task an answer names (its JSONL line's `task`) before any
    /// run, so that an unknown one is a usage error, not a failed answer.
    pub(super) fn check(&self, id: &str) -> Result<()> {
        self.pick(Some(id), "").map(|_| ())
    }

    /// The task for an answer whose code is `candidate`: the one it names
    /// (`named`), else `--task`, else chosen by resemblance.
    pub(super) fn pick(
        &self,
        named: Option<&str>,
        candidate: &str,
    ) -> Result<(Arc<PreparedTask>, task::TaskChoice)> {
        let choice = match named.or(self.given.as_deref()) {
            Some(id) => task::TaskChoice::given(id),
            None => task::choose(&self.candidates, candidate),
        };
        if let Some(p) = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&choice.task)
        {
            return Ok((p.clone(), choice));
        }
        let task = match self.candidates.iter().find(|t| t.id == choice.task) {
            Some(t) => t.clone(),
            None => Task::load(&self.dir, &choice.task)?,
        };
        Ok((self.prepare(task), choice))
    }
}
