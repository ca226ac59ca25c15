//! `qtjudge generate`: every model asked for `--samples` answers to a task
//! on a model server, appended to a JSONL file `grade` reads (resumable:
//! a rerun asks only what the file lacks); its arguments, shared with
//! `showdown`, its progress line and its summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::exit_codes;
use crate::generate::{self, answers_file::AnswersFile, backoff::Backoff, Api, Options, Settings};
use crate::task::{self, Task};

/// The model server and what to ask it (`generate` and `showdown`).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model server's base URL: `http://localhost:11434` for a local
    /// Ollama, `http://host:8000/v1` for an OpenAI-compatible one.
    #[arg(long)]
    pub endpoint: String,
    /// The server's API.
    #[arg(long, value_enum)]
    pub api: Api,
    /// The models to ask, comma-separated, as the server names them
    /// (`qwen3:8b,devstral`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Answers asked of each model (samples 1..=N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub samples: u32,
    /// Sampling temperature (default: the server's).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Seed of sample 1; sample n gets SEED + n − 1, so samples differ and
    /// a rerun asks each the same (default: none sent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most tokens an answer may take (Ollama's `num_predict`).
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Sent as `Authorization: Bearer` (an OpenAI-compatible server's key).
    #[arg(long, env = "QTJUDGE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests sent at most for one answer (on refused connections,
    /// timeouts, 429 and 5xx, with exponential backoff and jitter;
    /// `Retry-After` honoured); then the answer is recorded as failed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Seconds one whole answer may take (a cold model loads first).
    #[arg(long, default_value_t = 1200)]
    pub timeout_secs: u64,
    /// Ask for each answer whole instead of streamed.
    #[arg(long)]
    pub no_stream: bool,
}

impl ModelArgs {
    pub fn settings(&self) -> Result<Settings> {
        let mut models: Vec<String> = Vec::new();
        for model in self.models.iter().map(|m| m.trim()) {
            if model.is_empty() {
                bail!("--models has an empty name: give names separated by single commas");
            }
            if models.iter().any(|m| m == model) {
                bail!("--models names `{model}` twice");
            }
            models.push(model.to_string());
        }
        if let Some(t) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            bail!("--temperature {t} is outside 0..2");
        }
        Ok(Settings {
            endpoint: self.endpoint.clone(),
            api: self.api,
            api_key: self.api_key.clone(),
            models,
            samples: self.samples,
            options: Options {
                temperature: self.temperature,
                seed: self.seed,
                max_tokens: self.max_tokens,
            },
            concurrency: self.concurrency as usize,
            stream: !self.no_stream,
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            backoff: Backoff {
                attempts: self.attempts,
                ..Backoff::default()
            },
        })
    }
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task whose prompt and original are sent (a folder of the tasks dir).
    #[arg(long)]
    pub task: String,
    /// Where the tasks live.
    #[arg(long, env = "QTJUDGE_TASKS_DIR")]
    pub tasks_dir: Option<PathBuf>,
    /// The JSONL file the answers are appended to; rerun with the same
    /// file to ask only for the answers it lacks.
    #[arg(long, default_value = "qtjudge-answers.jsonl")]
    pub out: PathBuf,
}

pub(super) async fn generate_command(args: GenerateArgs) -> Result<i32> {
    let task = Task::load(
        &args
            .tasks_dir
            .clone()
            .unwrap_or_else(task::default_tasks_dir),
        &args.task,
    )?;
    let summary = generate_into(&args.model, &task, &args.out).await?;
    Ok(if summary.failed.is_empty() {
        exit_codes::OK
    } else {
        exit_codes::NOT_JUDGED
    })
}

/// Generates into `out`, showing progress, and says on stderr what was
/// done (`showdown` shares it).
pub(super) async fn generate_into(
    model: &ModelArgs,
    task: &Task,
    out: &Path,
) -> Result<generate::Summary> {
    let settings = model.settings()?;
    generate::message(task)?;
    let (file, existing) = AnswersFile::open(out)?;
    if existing.failed_lines > 0 {
        eprintln!(
            "qtjudge: {} holds {} failed answer(s); asking for them again",
            out.display(),
            existing.failed_lines
        );
    }
    let bar = super::grade::progress_bar(0);
    let terminal = std::io::stderr().is_terminal();
    let show = |p: &generate::Progress| {
        let line = format!(
            "{}/{} generated, {} failed, {:.1} answers/min",
            p.done,
            p.total,
            p.failed,
            p.rate_per_minute()
        );
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!(
            "{} failed · {:.1}/min · {}",
            p.failed,
            p.rate_per_minute(),
            p.last
        ));
        // Without a terminal (CI, a log) a line an answer stands in for the bar.
        if !terminal && p.done > 0 {
            eprintln!("qtjudge: {line} (last: {})", p.last);
        }
    };
    eprintln!(
        "qtjudge: asking {} model(s) × {} sample(s) on {} ({}) into {}",
        settings.models.len(),
        settings.samples,
        settings.endpoint,
        settings.api.name(),
        out.display()
    );
    let summary = generate::run(&settings, task, file, &existing, &show).await?;
    bar.finish_and_clear();
    eprintln!(
        "qtjudge: {} answer(s) written, {} already in {}, {} failed, in {:.1} s",
        summary.written,
        summary.skipped,
        out.display(),
        summary.failed.len(),
        summary.elapsed.as_secs_f64()
    );
    for ((model, _, sample), error) in &summary.failed {
        eprintln!("qtjudge: no answer from {model} #{sample}: {error}");
    }
    if !summary.failed.is_empty() {
        eprintln!(
            "qtjudge: the failed answers are recorded in {} (`error`, no `output`; `grade` leaves them out); rerun with the same --out to ask for them again",
            out.display()
        );
    }
    Ok(summary)
}
