//! `qtjudge task check` and `task list`: a task's gold (its original, its
//! references, its fixture answers) run `--runs` times each through the
//! same verification and sandbox as `grade`, `--jobs` at once, and
//! reported per item with its flakes; the tasks listed with their gold.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;

use super::answers::{load_input, Loaded};
use super::grade::progress_bar;
use super::{exit_codes, make_sandbox, task_render, Common, GoldPart, TaskCheckArgs};
use crate::gold::{CheckReport, Gold, GoldItem, ItemKind, ItemReport, RunGot};
use crate::sandbox::Sandbox;
use crate::task::{self, Task};
use crate::verify::{self, PreparedTask};

pub(super) async fn check_command(args: TaskCheckArgs) -> Result<i32> {
    let (tasks_dir, id) = resolve(&args.task, args.tasks_dir.clone());
    let folder = tasks_dir.join(&id);
    if folder.join("task.toml").is_file() {
        // A task being written (`task new`): everything it lacks at once.
        let lacks = crate::task_scaffold::missing(&folder);
        if !lacks.is_empty() {
            bail!(
                "task `{id}` is not ready to check; it lacks:\n  - {}",
                lacks.join("\n  - ")
            );
        }
    }
    let task = Task::load(&tasks_dir, &id)?;
    let gold = Gold::load(&tasks_dir.join(&id), &task)?;
    let items: Vec<GoldItem> = gold
        .items
        .into_iter()
        .filter(|item| match args.only {
            GoldPart::All => true,
            GoldPart::Gold => item.kind != ItemKind::Answer,
            GoldPart::Answers => item.kind == ItemKind::Answer,
        })
        .collect();
    if items.is_empty() {
        bail!("task `{id}` has no fixture answers to check (name their folder with `answers` in its task.toml's [gold] table)");
    }
    // Read before any container starts: an unreadable item is a usage error.
    let loaded = items
        .iter()
        .map(|item| {
            load_input(&item.path, None)
                .with_context(|| format!("task `{id}`'s {} {}", item.kind.as_str(), item.name))
        })
        .collect::<Result<Vec<Loaded>>>()?;
    let prepared = PreparedTask::new(task, verify::default_cache_dir());
    let common = Common {
        task: None,
        tasks_dir: None,
        sandbox: args.sandbox,
        runtime: args.runtime.clone(),
        window_class: None,
    };
    let sandbox = make_sandbox(&common, args.warm.unwrap_or(args.jobs)).await?;
    eprintln!(
        "qtjudge: checking task {id}: {} item(s), {} run(s) each, in the {} sandbox…",
        items.len(),
        args.runs,
        sandbox.name()
    );
    let report = check_with(
        &id,
        &items,
        &loaded,
        args.runs as usize,
        args.jobs,
        &prepared,
        sandbox.clone(),
    )
    .await;
    sandbox.shutdown().await;
    print!("{}", task_render::render(&report, args.format));
    let code = exit_codes::of_task_check(&report);
    if code == exit_codes::FAILED {
        eprintln!("qtjudge: task {id} failed its check: an item did not get its expected verdict in every run (see above)");
    } else if code == exit_codes::NOT_JUDGED {
        eprintln!("qtjudge: some runs could not be judged (engine or harness fault); check again once the engine is healthy");
    }
    Ok(code)
}

/// A task given as a path (anything with a `/`, or `.`/`..`) is that
/// folder; else a name in the tasks dir.
fn resolve(given: &str, tasks_dir: Option<PathBuf>) -> (PathBuf, String) {
    let is_path = given.contains('/')
        || given.contains(std::path::MAIN_SEPARATOR)
        || given == "."
        || given == "..";
    if is_path {
        // `./t/` and `.` name a folder: its own name is the task's id.
        let folder = std::fs::canonicalize(given).unwrap_or_else(|_| PathBuf::from(given));
        let id = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = folder.parent().map(Path::to_path_buf).unwrap_or_default();
        return (parent, id);
    }
    (
        tasks_dir.unwrap_or_else(task::default_tasks_dir),
        given.to_string(),
    )
}

/// Runs every item `runs` times in `sandbox`, `jobs` at once, and
/// reports each item's runs in order. A panic while judging a run is that
/// run's `error` (see `verify::verify_guarded`), not the check's end.
async fn check_with(
    task: &str,
    items: &[GoldItem],
    loaded: &[Loaded],
    runs: usize,
    jobs: usize,
    prepared: &PreparedTask,
    sandbox: Arc<dyn Sandbox>,
) -> CheckReport {
    let bar = progress_bar((items.len() * runs) as u64);
    let work = (0..runs).flat_map(|run| (0..items.len()).map(move |item| (item, run)));
    let mut stream = futures_util::stream::iter(work.map(|(i, run)| {
        let sandbox = sandbox.clone();
        let bar = bar.clone();
        let name = format!("{} (run {}/{runs})", items[i].name, run + 1);
        async move {
            bar.set_message(name.clone());
            let v = verify::verify_guarded(loaded[i].input(), &name, prepared, sandbox.as_ref())
                .await
                .unwrap_or_else(|verify::Panicked(v)| v);
            bar.inc(1);
            (i, run, RunGot::of(&v))
        }
    }))
    .buffer_unordered(jobs.max(1));
    let mut got: Vec<Vec<Option<RunGot>>> = vec![vec![None; runs]; items.len()];
    while let Some((i, run, outcome)) = stream.next().await {
        got[i][run] = Some(outcome);
    }
    bar.finish_and_clear();
    CheckReport {
        task: task.to_string(),
        runs,
        items: items
            .iter()
            .zip(got)
            .map(|(item, runs)| ItemReport::new(item, runs.into_iter().flatten().collect()))
            .collect(),
    }
}

/// `task list`: each task, its original's expected failure, its
/// references and fixture answers (nothing is run).
pub(super) fn list_command(tasks_dir: Option<PathBuf>) -> Result<i32> {
    let dir = tasks_dir.unwrap_or_else(task::default_tasks_dir);
    for id in Task::list(&dir) {
        let loaded = Task::load(&dir, &id).map(|task| {
            let gold = Gold::load(&dir.join(&id), &task);
            (task, gold)
        });
        match loaded {
            Ok((task, gold)) => {
                println!("{id}  {}", task.title);
                print!("{}", task_render::gold_summary(&dir.join(&id), gold));
            }
            Err(e) => println!("{id}  (does not load: {e})"),
        }
    }
    Ok(exit_codes::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::{Status, Verdict};
    use crate::service::workers::tests::PanickySandbox;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_task_is_a_name_or_a_folder() {
        let (dir, id) = resolve("reset-conversation", Some("/tasks".into()));
        assert_eq!(
            (dir, id.as_str()),
            (PathBuf::from("/tasks"), "reset-conversation")
        );
        let folder = repo().join("fixtures/tasks/reset-conversation/");
        let (dir, id) = resolve(folder.to_str().unwrap(), Some("/elsewhere".into()));
        assert_eq!(
            (dir, id.as_str()),
            (repo().join("fixtures/tasks"), "reset-conversation")
        );
    }

    /// Through the real verification, in a sandbox whose every run hits the
    /// wall clock: a snippet is judged without running (as it must be), the
    /// correct reference gets `timeout`, and each item its own report.
    #[tokio::test]
    async fn every_item_is_run_each_time_and_judged_against_its_expectation() {
        let dir = repo().join("fixtures/tasks");
        let task = Task::load(&dir, "reset-conversation").unwrap();
        let answers = repo().join("fixtures/outputs/reset-conversation");
        let item = |kind, name: &str, file: &str, tier, failure: &str| GoldItem {
            kind,
            name: name.into(),
            path: answers.join(file),
            expected: Verdict {
                tier,
                failure: failure.into(),
            },
        };
        let items = vec![
            item(
                ItemKind::Answer,
                "snippet",
                "trap-diff-only.md",
                3,
                "snippet",
            ),
            item(
                ItemKind::Reference,
                "reference/correct.py",
                "correct.py",
                1,
                "",
            ),
        ];
        let loaded: Vec<Loaded> = items
            .iter()
            .map(|i| load_input(&i.path, None).unwrap())
            .collect();
        let prepared = PreparedTask::new(task, None);
        let report = check_with(
            "reset-conversation",
            &items,
            &loaded,
            2,
            2,
            &prepared,
            Arc::new(PanickySandbox),
        )
        .await;
        assert_eq!(report.items.len(), 2);
        let snippet = &report.items[0];
        assert_eq!((snippet.status, snippet.runs.len()), (Status::Pass, 2));
        let reference = &report.items[1];
        assert_eq!(reference.status, Status::Mismatch);
        assert_eq!(
            reference.tally(),
            vec![(
                Some(&Verdict {
                    tier: 3,
                    failure: "timeout".into()
                }),
                2
            )]
        );
        assert_eq!(exit_codes::of_task_check(&report), exit_codes::FAILED);
    }
}
