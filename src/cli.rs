//! The command line: `verify`, `grade`, `report`, `image`, `reap`, `serve`.
//! Parses arguments, runs the library, and maps outcomes to exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use futures_util::{FutureExt, StreamExt};

use crate::bundle::Bundle;
use crate::grading::verdict::Label;
use crate::render::{self, Counts, Format};
use crate::sandbox::{BackendKind, Sandbox, SandboxConfig};
use crate::task::{self, Task};
use crate::verify::{self, PreparedTask, Verification};

/// Exit codes of every command.
pub mod exit_codes {
    /// The work was done (for `verify`: tier 1 or 2).
    pub const OK: i32 = 0;
    /// Judged and failed: `verify` gave tier 3; `grade`: `--fail-under`
    /// not met.
    pub const FAILED: i32 = 1;
    /// Bad usage, or the environment (Docker, image, files) is not usable.
    pub const USAGE_OR_ENVIRONMENT: i32 = 2;
    /// Could not judge: the engine or the harness failed (`label: error`),
    /// for `verify` that answer, for `grade` at least one. Never the
    /// answer's fault: run it again once the engine is healthy.
    pub const NOT_JUDGED: i32 = 3;
    use crate::grading::verdict::Label;
    use crate::render::Counts;
    use crate::verify::Verification;

    /// `verify`'s code for its one answer.
    pub fn of_verification(label: Label) -> i32 {
        match label {
            Label::Flawless | Label::UnrequestedChanges => OK,
            Label::Fail => FAILED,
            Label::Error => NOT_JUDGED,
        }
    }

    /// `grade`'s code: an answer that could not be judged outranks the
    /// bar (a rate over answers some of which were never judged says
    /// nothing of the model: the run must be repeated, not gated on).
    pub fn of_grade(done: &[Verification], fail_under: Option<f64>) -> i32 {
        if done.iter().any(|v| v.label == Label::Error) {
            NOT_JUDGED
        } else if fail_under.is_some_and(|bar| Counts::of(done).tier1_rate() < bar) {
            FAILED
        } else {
            OK
        }
    }

    /// What `--help` says of them.
    pub const HELP: &str =
        "Exit codes: 0 judged and passed (tier 1 or 2; `grade`: done and any --fail-under met), \
1 judged and failed (tier 3; `grade`: --fail-under not met), \
2 usage or environment error (Docker unreachable, unknown task, unreadable file), \
3 could not judge (engine or harness fault; `grade`: at least one answer).";

    #[cfg(test)]
    mod tests {
        use super::*;

        fn graded(labels: &[Label]) -> Vec<Verification> {
            labels
                .iter()
                .map(|&label| {
                    let mut v = Verification::unjudged("m", "t", "docker");
                    v.label = label;
                    v.tier = match label {
                        Label::Flawless => Some(1),
                        Label::UnrequestedChanges => Some(2),
                        Label::Fail => Some(3),
                        Label::Error => None,
                    };
                    v
                })
                .collect()
        }

        #[test]
        fn verify_tells_a_failed_answer_from_one_that_could_not_be_judged() {
            assert_eq!(of_verification(Label::Flawless), OK);
            assert_eq!(of_verification(Label::UnrequestedChanges), OK);
            assert_eq!(of_verification(Label::Fail), FAILED);
            assert_eq!(of_verification(Label::Error), NOT_JUDGED);
        }

        #[test]
        fn grade_gates_on_the_bar_only_when_every_answer_was_judged() {
            let run = graded(&[Label::Flawless, Label::Fail]);
            assert_eq!(
                of_grade(&run, None),
                OK,
                "failures alone are the run's result"
            );
            assert_eq!(of_grade(&run, Some(0.5)), OK);
            assert_eq!(of_grade(&run, Some(0.6)), FAILED);
            let outage = graded(&[Label::Flawless, Label::Error]);
            assert_eq!(of_grade(&outage, None), NOT_JUDGED);
            assert_eq!(of_grade(&outage, Some(0.0)), NOT_JUDGED);
        }
    }
}

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
    /// Folder keeping each answer's result and screenshots.
    #[arg(long, default_value = "qtjudge-run")]
    pub run_dir: PathBuf,
    /// Skip answers already graded in --run-dir.
    #[arg(long)]
    pub resume: bool,
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
    pub run_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Verify(args) => verify_command(args).await,
        Command::Grade(args) => grade_command(args).await,
        Command::Report(args) => {
            let results = load_run(&args.run_dir)?;
            print!("{}", render::many(&results, args.format));
            Ok(exit_codes::OK)
        }
        Command::Image { action } => image_command(action).await,
        Command::Reap => {
            let removed = crate::sandbox::backend(&SandboxConfig::default())?
                .reap_orphans()
                .await?;
            println!("removed {removed} orphan container(s)");
            Ok(exit_codes::OK)
        }
        Command::Serve(args) => serve_command(args).await,
    }
}

async fn serve_command(args: ServeArgs) -> Result<i32> {
    let config = crate::service::ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        workers: args.workers,
        token: args.token.filter(|t| !t.is_empty()),
        max_queue: args.max_queue,
        max_body: args.max_body_kb.saturating_mul(1024),
        max_batch: args.max_batch,
        max_batch_unpacked: args.max_batch_unpacked_mb.saturating_mul(1 << 20),
        retention: (args.retention_hours > 0)
            .then(|| std::time::Duration::from_secs(args.retention_hours * 3600)),
        grace: std::time::Duration::from_secs(args.grace_seconds),
        tasks_dir: args.tasks_dir.unwrap_or_else(task::default_tasks_dir),
        callback_secret: args.callback_secret.filter(|s| !s.is_empty()),
        callback_attempts: args.callback_attempts,
        sandbox: SandboxConfig {
            kind: args.sandbox,
            runtime: args.runtime.filter(|r| !r.is_empty()),
            // One warm container per worker.
            warm: args.workers,
        },
        max_connections: args.max_connections,
        header_timeout: std::time::Duration::from_secs(args.header_timeout_secs),
        body_timeout: std::time::Duration::from_secs(args.body_timeout_secs),
    };
    crate::service::serve(config).await?;
    Ok(exit_codes::OK)
}

fn progress_line(line: &str) {
    eprintln!("qtjudge: {line}");
}

async fn image_command(action: ImageAction) -> Result<i32> {
    match action {
        ImageAction::Tag => {
            println!("{}", crate::image::sandbox_tag());
            Ok(exit_codes::OK)
        }
        ImageAction::Build { force } => {
            let docker = crate::sandbox::docker::connect_engine().await?;
            let tag = if force {
                crate::image::build(&docker, &progress_line).await?
            } else {
                crate::image::ensure(&docker, &progress_line).await?
            };
            println!("{tag}");
            Ok(exit_codes::OK)
        }
    }
}

/// Picks each answer's task: the one given with `--task`, else the task
/// whose original the answer resembles, else `generic-reset`. Each task is
/// prepared once (its original's widget tree is cached per task).
struct TaskPicker {
    dir: PathBuf,
    given: Option<String>,
    candidates: Vec<Task>,
    prepared: std::sync::Mutex<std::collections::HashMap<String, Arc<PreparedTask>>>,
    /// `--window-class`: every task's window class for this run.
    window_class: Option<String>,
}

impl TaskPicker {
    fn new(common: &Common) -> Result<TaskPicker> {
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

    /// The task for an answer whose code is `candidate`.
    fn pick(&self, candidate: &str) -> Result<(Arc<PreparedTask>, task::TaskChoice)> {
        let choice = match &self.given {
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

/// An input read from disk: a raw answer to extract, or an app.
pub enum Loaded {
    Answer(String),
    App(Bundle),
}

impl Loaded {
    /// What verification takes.
    pub fn input(&self) -> verify::Input<'_> {
        match self {
            Loaded::Answer(text) => verify::Input::Answer(text),
            Loaded::App(bundle) => verify::Input::Bundle(bundle),
        }
    }

    /// The code to compare with the tasks' originals (an app's Python
    /// files, the entry first).
    pub fn code(&self) -> String {
        match self {
            Loaded::Answer(text) => text.clone(),
            Loaded::App(bundle) => bundle.python_sources().join("\n"),
        }
    }
}

/// Reads `path` as `verify` takes it: a folder, an archive or a notebook
/// becomes an app (its entry from `entry` or its `__main__` guard);
/// anything else is an answer to extract.
pub fn load_input(path: &Path, entry: Option<&str>) -> Result<Loaded> {
    match Bundle::from_path(path, entry) {
        Some(bundle) => Ok(Loaded::App(bundle.with_context(|| {
            format!("cannot use {} as an app", path.display())
        })?)),
        None if entry.is_some() => bail!(
            "--entry applies to an app given as a folder, a .zip/.tar.gz or a .ipynb; {} is one script",
            path.display()
        ),
        None => Ok(Loaded::Answer(read_answer(path)?)),
    }
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

async fn verify_command(args: VerifyArgs) -> Result<i32> {
    let picker = TaskPicker::new(&args.common)?;
    let loaded = load_input(&args.file, args.entry.as_deref())?;
    let (prepared, choice) = picker.pick(&loaded.code())?;
    // One answer: a warm container would only be paid for and thrown away.
    let sandbox = make_sandbox(&args.common, 0).await?;
    let model = model_name(&args.file);
    eprintln!(
        "qtjudge: verifying {} in the {} sandbox (task {}: {})…",
        args.file.display(),
        sandbox.name(),
        choice.task,
        choice.reason
    );
    let mut result =
        crate::verify::verify_guarded(loaded.input(), &model, &prepared, sandbox.as_ref())
            .await
            .unwrap_or_else(|crate::verify::Panicked(v)| v);
    result.task_choice = Some(choice);
    // Its container is removed in the background: wait for that before exiting.
    sandbox.shutdown().await;
    let dir = args
        .artifacts
        .unwrap_or_else(|| std::env::temp_dir().join(format!("qtjudge-{}", sanitize(&model))));
    verify::save_artifacts(&mut result, &dir)
        .with_context(|| format!("saving screenshots under {}", dir.display()))?;
    print!("{}", render::one(&result, args.format));
    Ok(exit_codes::of_verification(result.label))
}

/// Reads an answer as text; invalid UTF-8 is replaced, not refused.
fn read_answer(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the answer {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn model_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `app.tar.gz` is the model `app`, like `app.zip`.
    let stem = name
        .strip_suffix(".tar.gz")
        .map(String::from)
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if stem.is_empty() {
        "answer".into()
    } else {
        stem
    }
}

/// A model label made safe as a file name.
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "answer".into()
    } else {
        cleaned.chars().take(100).collect()
    }
}

/// One answer to grade.
#[derive(Debug, Clone)]
pub struct Answer {
    pub model: String,
    pub output: String,
    /// An app of several files (or a notebook); `output` is then empty.
    pub bundle: Option<Bundle>,
}

const ANSWER_EXTENSIONS: [&str; 4] = ["md", "py", "txt", "markdown"];

/// Collects answers from files, folders and JSONL files.
pub fn collect_answers(paths: &[PathBuf]) -> Result<Vec<Answer>> {
    let mut answers = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    // A subfolder is an app of its own (hidden ones are not).
                    let hidden = p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                    (p.is_dir() && !hidden)
                        || (p.is_file()
                            && (is_app_file(p)
                                || p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                                    ANSWER_EXTENSIONS.contains(&e) || e == "jsonl"
                                })))
                })
                .collect();
            files.sort();
            for file in files {
                answers.extend(answers_of_file(&file)?);
            }
        } else if path.is_file() {
            answers.extend(answers_of_file(path)?);
        } else {
            bail!("no such answer file or folder: {}", path.display());
        }
    }
    let mut seen = std::collections::HashMap::new();
    for answer in &mut answers {
        let n = seen.entry(answer.model.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            answer.model = format!("{}#{}", answer.model, n);
        }
    }
    Ok(answers)
}

/// A `.zip`, `.tar.gz` or `.ipynb`: an app, not an answer to extract.
fn is_app_file(path: &Path) -> bool {
    crate::bundle::InputKind::of_name(&path.to_string_lossy()) != crate::bundle::InputKind::Answer
}

fn answers_of_file(path: &Path) -> Result<Vec<Answer>> {
    if path.is_dir() || is_app_file(path) {
        let Loaded::App(bundle) = load_input(path, None)? else {
            bail!("{} is not an app", path.display());
        };
        return Ok(vec![Answer {
            model: model_name(path),
            output: String::new(),
            bundle: Some(bundle),
        }]);
    }
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut answers = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
            let output = value["output"].as_str().with_context(|| {
                format!("{} line {}: no \"output\" string", path.display(), i + 1)
            })?;
            let model = value["model"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("line-{}", i + 1));
            answers.push(Answer {
                model,
                output: output.to_string(),
                bundle: None,
            });
        }
        return Ok(answers);
    }
    Ok(vec![Answer {
        model: model_name(path),
        output: read_answer(path)?,
        bundle: None,
    }])
}

async fn grade_command(args: GradeArgs) -> Result<i32> {
    let answers = collect_answers(&args.paths)?;
    if answers.is_empty() {
        bail!(
            "no answers found in {:?} (answers are .md, .py, .txt or .jsonl files; apps are folders, .zip, .tar.gz or .ipynb)",
            args.paths
        );
    }
    std::fs::create_dir_all(&args.run_dir)
        .with_context(|| format!("cannot create the run folder {}", args.run_dir.display()))?;

    let mut done: Vec<Verification> = Vec::new();
    let mut todo = Vec::new();
    for answer in answers {
        if args.resume {
            let saved = args
                .run_dir
                .join(format!("{}.json", sanitize(&answer.model)));
            if let Some(previous) = std::fs::read(&saved)
                .ok()
                .and_then(|b| serde_json::from_slice::<Verification>(&b).ok())
            {
                done.push(previous);
                continue;
            }
        }
        todo.push(answer);
    }
    match &args.server {
        Some(url) => done.extend(grade_remotely(&args, url, todo).await?),
        None => done.extend(grade_here(&args, todo).await?),
    }
    done.sort_by(|a, b| a.model.cmp(&b.model));
    let rendered = render::many(&done, args.format);
    match &args.out {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{rendered}"),
    }
    let code = exit_codes::of_grade(&done, args.fail_under);
    let not_judged = done.iter().filter(|v| v.label == Label::Error).count();
    if code == exit_codes::NOT_JUDGED {
        eprintln!(
            "qtjudge: {not_judged} answer(s) could not be judged (engine or harness fault, `label: error`); rerun with --resume once the engine is healthy"
        );
    } else if code == exit_codes::FAILED {
        eprintln!(
            "qtjudge: tier-1 rate {:.2} is below --fail-under {:.2}",
            Counts::of(&done).tier1_rate(),
            args.fail_under.unwrap_or_default()
        );
    }
    Ok(code)
}

/// Keeps one result in the run folder: its JSON and its screenshots.
fn keep_result(run_dir: &Path, v: &mut Verification) {
    let name = sanitize(&v.model);
    if let Err(e) = verify::save_artifacts(v, &run_dir.join(&name)) {
        tracing::warn!(error = %e, "could not save screenshots");
    }
    if let Ok(json) = serde_json::to_vec_pretty(&v) {
        let _ = std::fs::write(run_dir.join(format!("{name}.json")), json);
    }
}

/// Verifies the answers in containers on this machine, `--jobs` at once.
async fn grade_here(args: &GradeArgs, todo: Vec<Answer>) -> Result<Vec<Verification>> {
    let picker = Arc::new(TaskPicker::new(&args.common)?);
    let sandbox = make_sandbox(&args.common, args.warm.unwrap_or(args.jobs)).await?;
    let done = grade_with(args, todo, picker, sandbox.clone()).await;
    sandbox.shutdown().await;
    Ok(done)
}

/// Judges every answer in `sandbox`, keeping each result in the run
/// folder as it comes. A panic while judging one answer is that answer's
/// `error` (see `verify::verify_guarded`): the others are still judged and
/// the report still written.
async fn grade_with(
    args: &GradeArgs,
    todo: Vec<Answer>,
    picker: Arc<TaskPicker>,
    sandbox: Arc<dyn Sandbox>,
) -> Vec<Verification> {
    let bar = progress_bar(todo.len() as u64);
    let run_dir = args.run_dir.clone();
    let mut stream = futures_util::stream::iter(todo.into_iter().map(|answer| {
        let picker = picker.clone();
        let sandbox = sandbox.clone();
        let run_dir = run_dir.clone();
        let bar = bar.clone();
        async move {
            bar.set_message(answer.model.clone());
            let model = answer.model.clone();
            // Choosing the task can panic too: caught here, with no task known.
            let judged = std::panic::AssertUnwindSafe(judge_one(answer, &picker, sandbox.as_ref()))
                .catch_unwind()
                .await;
            let mut v = judged.unwrap_or_else(|payload| {
                crate::verify::panicked(&model, "?", sandbox.name(), payload.as_ref())
            });
            keep_result(&run_dir, &mut v);
            bar.inc(1);
            v
        }
    }))
    .buffer_unordered(args.jobs.max(1));
    let mut done = Vec::new();
    while let Some(v) = stream.next().await {
        done.push(v);
    }
    bar.finish_and_clear();
    done
}

/// One answer of a local `grade`: its task chosen, then verified.
async fn judge_one(answer: Answer, picker: &TaskPicker, sandbox: &dyn Sandbox) -> Verification {
    let loaded = match answer.bundle {
        Some(bundle) => Loaded::App(bundle),
        None => Loaded::Answer(answer.output),
    };
    match picker.pick(&loaded.code()) {
        Ok((prepared, choice)) => {
            let mut v =
                crate::verify::verify_guarded(loaded.input(), &answer.model, &prepared, sandbox)
                    .await
                    .unwrap_or_else(|crate::verify::Panicked(v)| v);
            v.task_choice = Some(choice);
            v
        }
        Err(e) => {
            let mut v = Verification::unjudged(&answer.model, "?", sandbox.name());
            v.error = Some(format!("{e:#}"));
            v.reason = format!("no task to grade against: {e:#}");
            v
        }
    }
}

/// Sends the answers to a running service and collects its results.
async fn grade_remotely(
    args: &GradeArgs,
    url: &str,
    todo: Vec<Answer>,
) -> Result<Vec<Verification>> {
    let service = crate::client::Service::new(url, args.token.clone())?;
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    // Without --task the service picks each answer's task as `grade_here` does.
    let task = args.common.task.as_deref().filter(|t| !t.is_empty());
    match task {
        Some(task) => service.check_task(task).await?,
        None => service.check_reachable().await?,
    }
    eprintln!("qtjudge: sending {} answer(s) to {url}…", todo.len());
    let bar = progress_bar(todo.len() as u64);
    let mut done = Vec::new();
    service
        .grade(
            task,
            todo,
            args.batch_size,
            |finished, _| bar.set_position(finished as u64),
            |mut v| {
                keep_result(&args.run_dir, &mut v);
                done.push(v);
            },
        )
        .await?;
    bar.finish_and_clear();
    Ok(done)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Reads the results a grade run saved.
pub fn load_run(dir: &Path) -> Result<Vec<Verification>> {
    let mut results = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the run folder {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let bytes = std::fs::read(&path)?;
            results.push(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a qtjudge result", path.display()))?,
            );
        }
    }
    results.sort_by(|a: &Verification, b| a.model.cmp(&b.model));
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::workers::tests::PanickySandbox;

    #[tokio::test]
    async fn a_panic_while_judging_one_answer_does_not_end_the_grade_run() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let run_dir = tempfile::tempdir().unwrap();
        let cli = Cli::try_parse_from([
            "qtjudge".as_ref(),
            "grade".as_ref(),
            "unused".as_ref(),
            "--task".as_ref(),
            "reset-conversation".as_ref(),
            "--tasks-dir".as_ref(),
            root.join("fixtures/tasks").as_os_str(),
            "--run-dir".as_ref(),
            run_dir.path().as_os_str(),
            "--jobs".as_ref(),
            "2".as_ref(),
        ] as [&std::ffi::OsStr; 11])
        .unwrap();
        let Command::Grade(args) = cli.command else {
            panic!("not a grade command")
        };
        let correct =
            std::fs::read_to_string(root.join("fixtures/outputs/reset-conversation/correct.py"))
                .unwrap();
        let answer = |model: &str, output: String| Answer {
            model: model.into(),
            output,
            bundle: None,
        };
        let todo = vec![
            answer("first", correct.clone()),
            answer("crafted", format!("{correct}\n# PANIC_IN_SANDBOX\n")),
            answer("last", correct.clone()),
        ];
        let picker = Arc::new(TaskPicker::new(&args.common).unwrap());
        let mut done = grade_with(&args, todo, picker, Arc::new(PanickySandbox)).await;
        done.sort_by(|a, b| a.model.cmp(&b.model));
        let models: Vec<_> = done.iter().map(|v| v.model.as_str()).collect();
        assert_eq!(models, ["crafted", "first", "last"]);
        let crafted = &done[0];
        assert_eq!((crafted.tier, crafted.label), (None, Label::Error));
        assert!(
            crafted
                .reason
                .starts_with("qtjudge bug: panicked while judging: decoding went wrong")
                && crafted.reason.ends_with("please report it"),
            "{}",
            crafted.reason
        );
        assert_eq!(crafted.task, "reset-conversation");
        for other in &done[1..] {
            assert_eq!(
                (other.tier, other.failure.map(|f| f.as_str())),
                (Some(3), Some("timeout")),
                "{}",
                other.model
            );
        }
        // Every result is kept in the run folder, the panicked one too.
        for model in models {
            assert!(run_dir.path().join(format!("{model}.json")).is_file());
        }
    }
}
