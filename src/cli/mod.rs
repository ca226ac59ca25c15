//! The command line: `verify`, `grade`, `report`, `compare`, `generate`,
//! `showdown`, `tasks`, `task`, `image`, `reap`, `serve`.
//! This file holds clap's types and the dispatch; each command's body is
//! a file of its own, beside what only it needs (answer discovery, run
//! folders, task choice), and `exit_codes` maps outcomes to codes.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::render::{self, Format};
use crate::sandbox::{BackendKind, Sandbox, SandboxConfig};

mod answers;
mod compare;
pub mod exit_codes;
mod generate;
mod grade;
mod image;
mod run_dir;
mod serve;
mod showdown;
mod task_check;
mod task_new;
mod task_picker;
mod task_render;
mod tasks;
mod verify;

pub use answers::{collect_answers, load_input, Answer, Loaded};
pub use generate::{GenerateArgs, ModelArgs};
pub use run_dir::{load_run, sanitize};
pub use showdown::ShowdownArgs;

#[derive(Parser, Debug)]
#[command(
    name = "qtjudge",
    version,
    about = "Verifies LLM-written refactorings of a PyQt5 app by running them in a locked-down sandbox",
    after_help = exit_codes::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Verify one answer or app: a .py script, a model's raw Markdown answer,
    /// an app's folder, a .zip/.tar.gz of it, or a .ipynb notebook.
    Verify(VerifyArgs),
    /// Grade many answers into the experiment's tiers (a benchmark stage).
    Grade(GradeArgs),
    /// Re-render a grade run's results in another format, without re-running.
    Report(ReportArgs),
    /// Compare two grade runs: the verdicts that changed, the answers only
    /// one run has, and each model's pass and tier-1 rates with the change
    /// and its 95% interval.
    Compare(CompareArgs),
    /// Ask models on a model server (Ollama or OpenAI-compatible) for
    /// answers to a task, appended to a JSONL file `grade` reads; a rerun
    /// asks only for the answers the file lacks.
    Generate(GenerateArgs),
    /// Generate into the run folder, then grade it: the experiment in one
    /// go, ending with the leaderboard.
    Showdown(ShowdownArgs),
    /// List the tasks found: each one's title, prompt, original, and its
    /// fixture answers by expected tier.
    Tasks {
        /// Where the tasks live.
        #[arg(long, env = "QTJUDGE_TASKS_DIR")]
        tasks_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
    /// A task's own checks: its gold validated (`task check`), the tasks
    /// listed, a new task scaffolded (`task new`).
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Build the sandbox image (offline when no registry can be reached).
    Image {
        #[command(subcommand)]
        action: ImageAction,
    },
    /// Remove sandbox containers left behind by a qtjudge that is gone.
    Reap,
    /// Run the verifier as an HTTP service (see README "Service").
    Serve(ServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageAction {
    /// Build the image if it is missing (or always, with --force).
    Build {
        #[arg(long)]
        force: bool,
    },
    /// Print the tag of the image this binary uses.
    Tag,
}

#[derive(Subcommand, Debug)]
pub enum TaskAction {
    /// Validate a task as a benchmark checks its gold: its unchanged
    /// original must fail with the code its task.toml gives (`[gold]
    /// original_failure`), each reference solution must get tier 1 and
    /// each fixture answer its manifest's verdict, in every one of --runs
    /// runs. Reports each item's runs and its flakes (runs that disagree).
    Check(TaskCheckArgs),
    /// List the tasks with their references and fixture answers.
    List {
        /// Where the tasks live.
        #[arg(long, env = "QTJUDGE_TASKS_DIR")]
        tasks_dir: Option<PathBuf>,
    },
    /// Scaffold a task folder in the tasks dir: a commented task.toml with
    /// a scenario skeleton, the original app copied, reference/ and
    /// answers/manifest.toml. Refuses a name that exists.
    New {
        /// The task's name: lowercase letters, digits and hyphens (its folder).
        name: String,
        /// The app the models are asked to change, copied as original.py.
        #[arg(long, value_name = "ORIGINAL.py")]
        from: Option<PathBuf>,
        /// Where the tasks live.
        #[arg(long, env = "QTJUDGE_TASKS_DIR")]
        tasks_dir: Option<PathBuf>,
    },
}

/// Which of a task's items `task check` runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoldPart {
    /// The original, the references and the fixture answers.
    All,
    /// The original and the references only.
    Gold,
    /// The fixture answers only.
    Answers,
}

/// `task check`'s output.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct TaskCheckArgs {
    /// The task: a folder name in the tasks dir, or a task folder's path.
    pub task: String,
    /// Runs of each item (a flake shows only over several).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Run only part of the task's items.
    #[arg(long, value_enum, default_value = "all")]
    pub only: GoldPart,
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// Where the tasks live (when TASK is a name).
    #[arg(long, env = "QTJUDGE_TASKS_DIR")]
    pub tasks_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "docker")]
    pub sandbox: BackendKind,
    /// The Docker engine's OCI runtime to run answers under, e.g. `runsc`.
    #[arg(long, env = "QTJUDGE_RUNTIME")]
    pub runtime: Option<String>,
    /// Runs at once (each in its own container).
    #[arg(long, default_value_t = default_jobs())]
    pub jobs: usize,
    /// Containers kept started ahead with the harness warm (default: --jobs; 0 turns the pool off).
    #[arg(long)]
    pub warm: Option<usize>,
}

#[derive(Args, Debug)]
pub struct Common {
    /// The task the answers were written for (a folder of the tasks dir, or
    /// the built-in `generic-reset`). Without it, each answer is graded
    /// against the task whose original it resembles, else `generic-reset`.
    #[arg(long)]
    pub task: Option<String>,
    /// Where the tasks live.
    #[arg(long, env = "QTJUDGE_TASKS_DIR")]
    pub tasks_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "docker")]
    pub sandbox: BackendKind,
    /// The Docker engine's OCI runtime to run answers under, e.g. `runsc`
    /// (gVisor) for isolation stronger than a container's.
    #[arg(long, env = "QTJUDGE_RUNTIME")]
    pub runtime: Option<String>,
    /// The app's window class, built with no arguments when the app shows
    /// no window itself (a module whose launcher lives elsewhere). Without
    /// it, the one `QWidget` subclass the entry defines is built.
    #[arg(long)]
    pub window_class: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The answer: a .py script, a raw model answer (Markdown), an app's
    /// folder, a .zip or .tar.gz of one, or a .ipynb notebook.
    pub file: PathBuf,
    /// The app's file run as `__main__` (a folder or archive), relative to
    /// the app's folder. Default: the one file with an
    /// `if __name__ == "__main__":` guard.
    #[arg(long)]
    pub entry: Option<String>,
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Where to save the screenshots (default: a folder beside the answer's name in the temp dir).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GradeArgs {
    /// Answer files, folders of answers named by model, or JSONL files of
    /// {"model", "output"}. Apps (.zip, .tar.gz, .ipynb, or a subfolder of a
    /// folder of answers) are graded whole, each named by its file.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub grading: Grading,
    /// Folder keeping each answer's result and screenshots.
    #[arg(long, default_value = "qtjudge-run")]
    pub run_dir: PathBuf,
    /// Skip answers already graded in --run-dir.
    #[arg(long)]
    pub resume: bool,
}

/// How answers are judged and reported: `grade`'s flags, which `showdown`
/// takes too for the grading after its generation.
#[derive(Args, Debug)]
pub struct Grading {
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Answers verified at once (each in its own container).
    #[arg(long, default_value_t = default_jobs())]
    pub jobs: usize,
    /// Exit 1 when the share of tier-1 answers is below this (0..1).
    #[arg(long)]
    pub fail_under: Option<f64>,
    /// Containers kept started ahead with the harness warm (default: --jobs; 0 turns the pool off).
    #[arg(long)]
    pub warm: Option<usize>,
    /// Send the answers to a running `qtjudge serve` at this URL instead of
    /// running containers here; the output is the same.
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
    /// The k of each pass@k the leaderboard shows, comma-separated
    /// (`1,5,10`); undefined for a model with fewer than k judged answers
    /// to a task.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pass_at: Vec<u32>,
    /// Answers per batch request (with --server).
    #[arg(long, default_value_t = crate::client::DEFAULT_BATCH_SIZE, requires = "server")]
    pub batch_size: usize,
}

/// `qtjudge serve`'s raw arguments; `serve_command` validates them into
/// a `service::ServeConfig`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, env = "QTJUDGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Folder of the job store (qtjudge.db) and caches.
    #[arg(long, env = "QTJUDGE_DATA_DIR", default_value = "qtjudge-data")]
    pub data_dir: PathBuf,
    /// The job store: `postgres://user:password@host:port/db` for one
    /// queue shared by any number of replicas, or `sqlite:FOLDER`.
    /// Default: the embedded SQLite store in --data-dir. Replicas sharing
    /// one engine need distinct hostnames, or QTJUDGE_REPLICA_NAME each.
    #[arg(long, env = "QTJUDGE_STORE", hide_env_values = true, value_parser = crate::service::store::StoreSpec::parse)]
    pub store: Option<crate::service::store::StoreSpec>,
    /// Seconds a replica's claim on a job lasts without its heartbeat
    /// (a shared store): a dead replica's jobs run again after this.
    #[arg(long, env = "QTJUDGE_LEASE_TTL_SECS", default_value_t = crate::service::store::DEFAULT_LEASE_TTL.as_secs())]
    pub lease_ttl_secs: u64,
    /// Verifications run at once (each in its own container).
    #[arg(long, env = "QTJUDGE_WORKERS", default_value_t = default_jobs())]
    pub workers: usize,
    /// Bearer token required on every /v1 route.
    #[arg(long, env = "QTJUDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Jobs that may wait in the queue; more are refused with 429.
    #[arg(long, env = "QTJUDGE_MAX_QUEUE", default_value_t = 1000)]
    pub max_queue: usize,
    /// Largest answer accepted, in KiB (a batch body may be 32 times this).
    #[arg(long, env = "QTJUDGE_MAX_BODY_KB", default_value_t = 1024)]
    pub max_body_kb: usize,
    /// Most answers in one batch.
    #[arg(long, env = "QTJUDGE_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,
    /// MiB a batch's apps (zips, .tar.gz, notebooks) may unpack to in all,
    /// as their archives declare (each app is also capped at 8 MiB).
    #[arg(long, env = "QTJUDGE_MAX_BATCH_UNPACKED_MB", default_value_t = 1024)]
    pub max_batch_unpacked_mb: u64,
    /// Finished jobs older than this are deleted (0 keeps them forever).
    #[arg(long, env = "QTJUDGE_RETENTION_HOURS", default_value_t = 168)]
    pub retention_hours: u64,
    /// Seconds running verifications get to finish at shutdown.
    #[arg(long, env = "QTJUDGE_GRACE_SECONDS", default_value_t = 60)]
    pub grace_seconds: u64,
    /// Where the tasks live.
    #[arg(long, env = "QTJUDGE_TASKS_DIR")]
    pub tasks_dir: Option<PathBuf>,
    /// Signs every callback: `X-Qtjudge-Signature: sha256=<HMAC-SHA256 of "<timestamp>.<body>">`.
    #[arg(long, env = "QTJUDGE_CALLBACK_SECRET", hide_env_values = true)]
    pub callback_secret: Option<String>,
    /// Attempts per callback (backoff 1 s, 2 s, 4 s … at most 5 min apart).
    #[arg(long, env = "QTJUDGE_CALLBACK_ATTEMPTS", default_value_t = crate::service::callbacks::DEFAULT_ATTEMPTS)]
    pub callback_attempts: u32,
    /// Where the answers run (`local`: host processes, NOT a sandbox;
    /// development with trusted answers only).
    #[arg(long, value_enum, env = "QTJUDGE_SANDBOX", default_value = "docker")]
    pub sandbox: BackendKind,
    /// The Docker engine's OCI runtime to run answers under, e.g. `runsc`.
    #[arg(long, env = "QTJUDGE_RUNTIME")]
    pub runtime: Option<String>,
    /// Client connections open at once; at the cap the oldest idle or
    /// half-open one is closed to make room (kept below `ulimit -n`).
    #[arg(long, env = "QTJUDGE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's head (and the next one
    /// on a kept-alive connection) before it is closed.
    #[arg(long, env = "QTJUDGE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body once its head
    /// came (a body trickled in slowly is refused with 408).
    #[arg(long, env = "QTJUDGE_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A folder `qtjudge grade` wrote (`--run-dir`).
    pub run_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The k of each pass@k the leaderboard shows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pass_at: Vec<u32>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The run before: a folder `qtjudge grade` wrote (`--run-dir`).
    pub run_a: PathBuf,
    /// The run after, compared with it.
    pub run_b: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: render::CompareFormat,
    /// Exit 1 when any model's pass rate dropped by more than this share
    /// (0.05: five points) from RUN_A to RUN_B.
    #[arg(long, value_parser = share)]
    pub fail_on_regression: Option<f64>,
}

/// A share from 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "{text:?} is not a share from 0 to 1 (0.05 for five points)"
        )),
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Verify(args) => verify::verify_command(args).await,
        Command::Grade(args) => grade::grade_command(args).await,
        Command::Report(args) => {
            let results = load_run(&args.run_dir)?;
            if results.is_empty() {
                anyhow::bail!(
                    "{} holds no results: give the --run-dir of a `qtjudge grade` run",
                    args.run_dir.display()
                );
            }
            let pass_at: Vec<usize> = args.pass_at.iter().map(|&k| k as usize).collect();
            print!("{}", render::report(&results, args.format, &pass_at));
            Ok(exit_codes::OK)
        }
        Command::Compare(args) => compare::compare_command(args),
        Command::Generate(args) => generate::generate_command(args).await,
        Command::Showdown(args) => showdown::showdown_command(args).await,
        Command::Tasks { tasks_dir, format } => tasks::tasks_command(tasks_dir, format),
        Command::Task { action } => match action {
            TaskAction::Check(args) => task_check::check_command(args).await,
            TaskAction::List { tasks_dir } => task_check::list_command(tasks_dir),
            TaskAction::New {
                name,
                from,
                tasks_dir,
            } => task_new::new_command(&name, from, tasks_dir),
        },
        Command::Image { action } => image::image_command(action).await,
        Command::Reap => {
            let removed = crate::sandbox::backend(&SandboxConfig::default())?
                .reap_orphans()
                .await?;
            println!("removed {removed} orphan container(s)");
            Ok(exit_codes::OK)
        }
        Command::Serve(args) => serve::serve_command(args).await,
    }
}

fn progress_line(line: &str) {
    eprintln!("qtjudge: {line}");
}

/// The sandbox `--sandbox` and its options ask for, ready; `warm`
/// containers are kept started ahead.
async fn make_sandbox(common: &Common, warm: usize) -> Result<Arc<dyn Sandbox>> {
    let config = SandboxConfig {
        kind: common.sandbox,
        runtime: common.runtime.clone(),
        warm,
    };
    Ok(crate::sandbox::open(&config, &progress_line).await?)
}
