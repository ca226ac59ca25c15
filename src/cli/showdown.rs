//! `qtjudge showdown`: the experiment in one go. `generate` into the run
//! folder's `answers.jsonl`, then `grade` that file into the same folder,
//! ending with grade's report and leaderboard. Rerun with the same flags
//! to resume both: only the answers missing are asked for, and only the
//! results missing are judged.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::generate::{generate_into, ModelArgs};
use super::{exit_codes, Common, GradeArgs, Grading};
use crate::task::{self, Task};

/// The answers file inside the run folder.
pub const ANSWERS_FILE: &str = "answers.jsonl";

#[derive(Args, Debug)]
pub struct ShowdownArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub grading: Grading,
    /// Folder keeping the answers (`answers.jsonl`), each one's result and
    /// screenshots.
    #[arg(long, default_value = "qtjudge-run")]
    pub run_dir: PathBuf,
}

pub(super) async fn showdown_command(args: ShowdownArgs) -> Result<i32> {
    let Some(task_id) = args.common.task.clone().filter(|t| !t.is_empty()) else {
        bail!("showdown needs --task: the task whose prompt and original the models are sent");
    };
    // Loaded first: an unknown task stops the run before any model is asked.
    let tasks_dir = args.common.tasks_dir.clone();
    let task = Task::load(&tasks_dir.unwrap_or_else(task::default_tasks_dir), &task_id)?;
    let answers = args.run_dir.join(ANSWERS_FILE);
    let generated = generate_into(&args.model, &task, &answers).await?;
    if generated.written + generated.skipped == 0 {
        bail!(
            "no model gave an answer ({} failed, see above): nothing to grade",
            generated.failed.len()
        );
    }
    let grade = GradeArgs {
        paths: vec![answers],
        common: args.common,
        grading: args.grading,
        run_dir: args.run_dir,
        // Results already in the run folder are those of these answers.
        resume: true,
    };
    let code = super::grade::grade_command(grade).await?;
    if !generated.failed.is_empty() && code == exit_codes::OK {
        eprintln!(
            "qtjudge: {} answer(s) could not be generated and are not in the leaderboard; rerun the same showdown to ask for them again",
            generated.failed.len()
        );
        return Ok(exit_codes::NOT_JUDGED);
    }
    Ok(code)
}
