//! `qtjudge grade`: many answers judged here (`--jobs` at once) or by a
//! running service (`--server`), each result kept in the run folder, the
//! report rendered and the run's exit code.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures_util::{FutureExt, StreamExt};

use super::answers::{collect_answers, Answer, Loaded};
use super::run_dir::keep_result;
use super::task_picker::TaskPicker;
use super::{exit_codes, make_sandbox, GradeArgs};
use crate::grading::verdict::Label;
use crate::render::{self, Counts};
use crate::sandbox::Sandbox;
use crate::verify::Verification;

pub(super) async fn grade_command(args: GradeArgs) -> Result<i32> {
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
            let saved = args.run_dir.join(format!("{}.json", answer.stem()));
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
    match &args.grading.server {
        Some(url) => done.extend(grade_remotely(&args, url, todo).await?),
        None => done.extend(grade_here(&args, todo).await?),
    }
    done.sort_by(Verification::report_order);
    let pass_at: Vec<usize> = args.grading.pass_at.iter().map(|&k| k as usize).collect();
    let rendered = render::report(&done, args.grading.format, &pass_at);
    match &args.grading.out {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{rendered}"),
    }
    let code = exit_codes::of_grade(&done, args.grading.fail_under);
    let not_judged = done.iter().filter(|v| v.label == Label::Error).count();
    if code == exit_codes::NOT_JUDGED {
        eprintln!(
            "qtjudge: {not_judged} answer(s) could not be judged (engine or harness fault, `label: error`); rerun with --resume once the engine is healthy"
        );
    } else if code == exit_codes::FAILED {
        eprintln!(
            "qtjudge: tier-1 rate {:.2} is below --fail-under {:.2}",
            Counts::of(&done).tier1_rate(),
            args.grading.fail_under.unwrap_or_default()
        );
    }
    Ok(code)
}

/// Verifies the answers in containers on this machine, `--jobs` at once.
async fn grade_here(args: &GradeArgs, todo: Vec<Answer>) -> Result<Vec<Verification>> {
    let picker = Arc::new(TaskPicker::new(&args.common)?);
    let mut named: Vec<&str> = todo.iter().filter_map(|a| a.task.as_deref()).collect();
    named.sort_unstable();
    named.dedup();
    for task in named {
        picker.check(task)?;
    }
    let sandbox =
        make_sandbox(&args.common, args.grading.warm.unwrap_or(args.grading.jobs)).await?;
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
            let (model, stem) = (answer.model.clone(), answer.stem());
            let (sample, metadata) = (answer.sample.clone(), answer.metadata.clone());
            // Choosing the task can panic too: caught here, with no task known.
            let judged = std::panic::AssertUnwindSafe(judge_one(answer, &picker, sandbox.as_ref()))
                .catch_unwind()
                .await;
            let mut v = judged.unwrap_or_else(|payload| {
                crate::verify::panicked(&model, "?", sandbox.name(), payload.as_ref())
            });
            (v.sample, v.metadata) = (sample, metadata);
            keep_result(&run_dir, &stem, &mut v);
            bar.inc(1);
            v
        }
    }))
    .buffer_unordered(args.grading.jobs.max(1));
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
    match picker.pick(answer.task.as_deref(), &loaded.code()) {
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
    let service = crate::client::Service::new(url, args.grading.token.clone())?;
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
            args.grading.batch_size,
            |finished, _| bar.set_position(finished as u64),
            |mut v, answer| {
                keep_result(&args.run_dir, &answer.stem(), &mut v);
                done.push(v);
            },
        )
        .await?;
    bar.finish_and_clear();
    Ok(done)
}

pub(super) fn progress_bar(total: u64) -> indicatif::ProgressBar {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
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
        let answer = Answer::text;
        let todo = vec![
            answer("first", correct.clone()),
            answer("crafted", format!("{correct}\n# PANIC_IN_SANDBOX\n")),
            answer("last", correct.clone()),
        ];
        let picker = Arc::new(TaskPicker::new(&args.common).unwrap());
        let mut done = grade_with(&args, todo, picker, Arc::new(PanickySandbox)).await;
        done.sort_by(Verification::report_order);
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
