//! `qtjudge showdown`: the experiment in one go. `generate` into the run
//! folder's `answers.jsonl`, then `grade` that file into the same folder,
//! ending with grade's report and leaderboard. Rerun with the same flags
//! to resume both: only the answers missing are asked for, and only the
//! results missing are judged.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::generate::{generate_into, ModelArgs};
use super::{exit_codes, Common, GradeArgs};
use crate::render::Format;
use crate::task::{self, Task};

/// The answers file inside the run folder.
pub const ANSWERS_FILE: &str = "answers.jsonl";

#[derive(Args, Debug)]
pub struct ShowdownArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Answers verified at once (each in its own container).
    #[arg(long, default_value_t = super::default_jobs())]
    pub jobs: usize,
    /// Exit 1 when the share of tier-1 answers is below this (0..1).
    #[arg(long)]
    pub fail_under: Option<f64>,
    /// Folder keeping the answers (`answers.jsonl`), each one's result and
    /// screenshots.
    #[arg(long, default_value = "qtjudge-run")]
    pub run_dir: PathBuf,
    /// Containers kept started ahead with the harness warm (default: --jobs; 0 turns the pool off).
    #[arg(long)]
    pub warm: Option<usize>,
    /// Grade by a running `qtjudge serve` at this URL instead of here.
    #[arg(long, env = "QTJUDGE_SERVER")]
    pub server: Option<String>,
    /// The service's bearer token (with --server).
    #[arg(
        long,
        env = "QTJUDGE_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub token: Option<String>,
    /// The k of each pass@k the leaderboard shows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pass_at: Vec<u32>,
    /// Answers per batch request (with --server).
    #[arg(long, default_value_t = crate::client::DEFAULT_BATCH_SIZE, requires = "server")]
    pub batch_size: usize,
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
        format: args.format,
        out: args.out,
        jobs: args.jobs,
        fail_under: args.fail_under,
        run_dir: args.run_dir,
        // Results already in the run folder are those of these answers.
        resume: true,
        warm: args.warm,
        server: args.server,
        token: args.token,
        pass_at: args.pass_at,
        batch_size: args.batch_size,
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
