//! `qtjudge tasks`: the tasks found (the tasks dir's folders and the
//! built-in ones), each with its title, its prompt's first line, its
//! original, its references and how many fixture answers expect each tier;
//! as text or JSON. Nothing is run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::{exit_codes, CheckFormat};
use crate::gold::{Gold, GoldError, ItemKind};
use crate::task::{self, Task};

/// One task as `tasks` lists it.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct TaskSummary {
    pub name: String,
    pub title: String,
    /// The prompt's first line.
    pub prompt: String,
    /// The original script, relative to the task folder (`null` for a task
    /// with none: a built-in one).
    pub original: Option<String>,
    pub builtin: bool,
    /// Whether the task has a scenario (a task written as data) or runs
    /// the reset.
    pub scenario: bool,
    pub references: usize,
    /// The fixture answers of its manifest.
    pub answers: usize,
    /// How many of them expect tier 1, 2 and 3.
    pub tiers: [usize; 3],
    /// Why the task or its gold does not load (`null` when it does).
    pub problem: Option<String>,
}

/// `qtjudge tasks`.
pub(super) fn tasks_command(tasks_dir: Option<PathBuf>, format: CheckFormat) -> Result<i32> {
    let dir = tasks_dir.unwrap_or_else(task::default_tasks_dir);
    let tasks = summaries(&dir);
    match format {
        CheckFormat::Json => {
            let json = serde_json::json!({ "tasks_dir": dir, "tasks": tasks });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("plain data serialises")
            );
        }
        CheckFormat::Text => print!("{}", text(&dir, &tasks)),
    }
    Ok(exit_codes::OK)
}

/// Every task of `dir`, in `Task::list`'s order.
pub(super) fn summaries(dir: &Path) -> Vec<TaskSummary> {
    Task::list(dir)
        .into_iter()
        .map(|id| match Task::load(dir, &id) {
            Ok(task) => summary(dir, task),
            Err(e) => TaskSummary {
                builtin: task::is_builtin(&id),
                name: id,
                title: String::new(),
                prompt: String::new(),
                original: None,
                scenario: false,
                references: 0,
                answers: 0,
                tiers: [0; 3],
                problem: Some(e.to_string()),
            },
        })
        .collect()
}

fn summary(dir: &Path, task: Task) -> TaskSummary {
    let folder = dir.join(&task.id);
    let builtin = task::is_builtin(&task.id) && !folder.join("task.toml").is_file();
    let mut out = TaskSummary {
        name: task.id.clone(),
        title: task.title.trim().to_string(),
        prompt: task
            .prompt
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        original: task.has_original().then(|| task.original.clone()),
        builtin,
        scenario: !task.scenario.is_empty(),
        references: 0,
        answers: 0,
        tiers: [0; 3],
        problem: None,
    };
    match Gold::load(&folder, &task) {
        Ok(gold) => {
            out.references = gold.count(ItemKind::Reference);
            for item in gold.items.iter().filter(|i| i.kind == ItemKind::Answer) {
                out.answers += 1;
                if let Some(n) = out
                    .tiers
                    .get_mut(usize::from(item.expected.tier).wrapping_sub(1))
                {
                    *n += 1;
                }
            }
        }
        Err(GoldError::NoOriginal { .. }) => {}
        Err(e) => out.problem = Some(format!("no gold: {e}")),
    }
    out
}

/// A block per task: its name and title, its prompt, then its original,
/// references and answers by tier.
fn text(dir: &Path, tasks: &[TaskSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} task(s) in {}\n", tasks.len(), dir.display());
    for t in tasks {
        let title = if t.title.is_empty() {
            &t.prompt
        } else {
            &t.title
        };
        let _ = writeln!(out, "{}  {}", t.name, title);
        if !t.prompt.is_empty() && t.prompt != *title {
            let _ = writeln!(out, "  prompt:   {}", t.prompt);
        }
        let original = match (&t.original, t.builtin) {
            (Some(original), _) => original.clone(),
            (None, true) => "none (built in: any Qt chat app)".into(),
            (None, false) => "none".into(),
        };
        let kind = if t.scenario { "scenario" } else { "reset" };
        let _ = writeln!(
            out,
            "  original: {original} · {kind} · {} reference(s) · {} answer(s){}",
            t.references,
            t.answers,
            if t.answers == 0 {
                String::new()
            } else {
                format!(
                    " (tier 1 ×{}, tier 2 ×{}, tier 3 ×{})",
                    t.tiers[0], t.tiers[1], t.tiers[2]
                )
            }
        );
        if let Some(problem) = &t.problem {
            let _ = writeln!(out, "  problem:  {problem}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_tasks_are_listed_with_their_answers_by_tier() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks");
        let tasks = summaries(&dir);
        let temperature = tasks
            .iter()
            .find(|t| t.name == "temperature-control")
            .unwrap();
        assert_eq!(temperature.original.as_deref(), Some("original.py"));
        assert!(temperature.scenario && temperature.problem.is_none());
        assert_eq!(temperature.references, 1);
        assert_eq!(temperature.tiers.iter().sum::<usize>(), temperature.answers);
        assert_eq!(temperature.tiers[1], 1, "{temperature:?}");
        let generic = tasks.iter().find(|t| t.name == "generic-reset").unwrap();
        assert!(generic.builtin && generic.original.is_none() && generic.problem.is_none());
        let shown = text(&dir, &tasks);
        assert!(
            shown.contains("temperature-control  Add a control that sets the temperature"),
            "{shown}"
        );
    }
}
