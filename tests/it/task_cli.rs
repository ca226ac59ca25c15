//! Issue 21's commands for task authors, through the real binary in temp
//! dirs: `qtjudge tasks` lists what it finds (text and JSON, a broken task
//! named, not fatal), and `qtjudge task new` scaffolds a folder that loads,
//! refuses a bad or taken name before writing anything, and leaves a task
//! that `task check` says is incomplete (what it lacks) rather than crashing.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::repo;

/// The real binary on `tasks_dir`, quiet logs; `python` for the local sandbox.
fn qtjudge_in(tasks_dir: &Path, args: &[&str], python: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qtjudge"));
    command
        .args(args)
        .env("QTJUDGE_TASKS_DIR", tasks_dir)
        .env("QTJUDGE_LOG", "warn");
    if let Some(python) = python {
        command.env("QTJUDGE_PYTHON", python);
    }
    command.output().expect("qtjudge runs")
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn tasks_lists_the_shipped_tasks_with_their_answers_by_tier() {
    let tasks_dir = repo().join("fixtures/tasks");
    let out = qtjudge_in(&tasks_dir, &["tasks", "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = json["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in [
        "reset-conversation",
        "system-prompt",
        "temperature-control",
        "generic-reset",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    let system = tasks.iter().find(|t| t["name"] == "system-prompt").unwrap();
    assert_eq!(system["original"], "original.py");
    assert_eq!(system["scenario"], true);
    assert_eq!(system["references"], 1);
    // Counted from the manifest here, as a person would count them: the
    // listing must agree with it, whatever answers are added later.
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo().join("fixtures/outputs/system-prompt/manifest.toml"))
            .unwrap(),
    )
    .unwrap();
    let answers = manifest["answer"].as_array().unwrap();
    let tiers: Vec<usize> = (1..=3)
        .map(|tier| {
            answers
                .iter()
                .filter(|a| a["tier"].as_integer() == Some(tier))
                .count()
        })
        .collect();
    assert!(
        answers.len() >= 6 && tiers.iter().all(|&n| n > 0),
        "{tiers:?}"
    );
    assert_eq!(system["answers"], answers.len(), "{system}");
    assert_eq!(system["tiers"], serde_json::json!(tiers), "{system}");
    assert!(system["prompt"]
        .as_str()
        .unwrap()
        .starts_with("can you add a field where i can type a system prompt"));
    assert!(system["problem"].is_null(), "{system}");
    let reset = tasks
        .iter()
        .find(|t| t["name"] == "reset-conversation")
        .unwrap();
    assert_eq!(reset["scenario"], false);
    let generic = tasks.iter().find(|t| t["name"] == "generic-reset").unwrap();
    assert_eq!(generic["builtin"], true);
    assert!(generic["original"].is_null());

    let out = qtjudge_in(&tasks_dir, &["tasks"], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        text.contains("system-prompt  Add a system prompt field sent as the first message"),
        "{text}"
    );
    let listed = format!(
        "original: original.py · scenario · 1 reference(s) · {} answer(s) (tier 1 ×{}, tier 2 ×{}, tier 3 ×{})",
        answers.len(),
        tiers[0],
        tiers[1],
        tiers[2]
    );
    assert!(text.contains(&listed), "{listed} not in {text}");
    assert!(
        text.contains("original: none (built in: any Qt chat app)"),
        "{text}"
    );
}

#[test]
fn tasks_names_a_task_that_does_not_load_and_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let broken = root.path().join("broken-task");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("task.toml"),
        "id = \"broken-task\"\ntitle = 3\n",
    )
    .unwrap();
    let out = qtjudge_in(root.path(), &["tasks", "--format", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{json}");
    assert_eq!(tasks[0]["name"], "broken-task");
    let problem = tasks[0]["problem"].as_str().unwrap();
    assert!(problem.contains("invalid task file"), "{problem}");
    assert_eq!(tasks[1]["name"], "generic-reset");
    let text = stdout(&qtjudge_in(root.path(), &["tasks"], None));
    assert!(text.contains("2 task(s) in"), "{text}");
    assert!(text.contains("  problem:  invalid task file"), "{text}");
}

#[test]
fn task_new_scaffolds_a_task_that_loads_and_check_says_what_it_lacks() {
    let root = tempfile::tempdir().unwrap();
    let tasks = root.path().join("tasks");
    let app = root.path().join("tinychat.py");
    let original = repo().join("fixtures/tasks/system-prompt/original.py");
    std::fs::copy(&original, &app).unwrap();
    let app_arg = app.to_str().unwrap();

    let out = qtjudge_in(
        &tasks,
        &["task", "new", "stop-button", "--from", app_arg],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = stdout(&out);
    assert!(text.contains("created task stop-button"), "{text}");
    assert!(
        text.contains("window class read from the original: TinyChat"),
        "{text}"
    );
    let dir = tasks.join("stop-button");
    assert_eq!(
        std::fs::read_to_string(dir.join("original.py")).unwrap(),
        std::fs::read_to_string(&original).unwrap()
    );
    assert!(dir.join("reference").is_dir());
    let manifest = std::fs::read_to_string(dir.join("answers/manifest.toml")).unwrap();
    assert!(manifest.contains("# [[answer]]"), "{manifest}");
    let toml = std::fs::read_to_string(dir.join("task.toml")).unwrap();
    for line in [
        "id = \"stop-button\"",
        "window_class = \"TinyChat\"",
        "ui_builder = \"setup_widgets\"",
        "[[scenario]]\nstep = \"turn\"",
    ] {
        assert!(toml.contains(line), "{line}:\n{toml}");
    }
    // The library loads it as it is.
    let task = qtjudge::task::Task::load(&tasks, "stop-button").unwrap();
    assert_eq!(task.scenario.len(), 1);

    // It is listed; `task check` says everything it lacks, exit 2, no panic.
    let listed = stdout(&qtjudge_in(&tasks, &["tasks"], None));
    assert!(
        listed.contains("stop-button  TODO: what the task asks for"),
        "{listed}"
    );
    let out = qtjudge_in(&tasks, &["task", "check", "stop-button"], None);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(
        said.contains("task `stop-button` is not ready to check; it lacks:"),
        "{said}"
    );
    assert!(said.contains("[gold] original_failure"), "{said}");
    assert!(
        said.contains("a reference solution: put a correct full script"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");

    // Filled in, the check runs its items (here in a local sandbox whose
    // interpreter is `false`: every run is not judged, exit 3).
    let filled = toml.replace(
        "# original_failure = \"no_todo_control\"",
        "original_failure = \"turn_failed\"",
    );
    assert_ne!(filled, toml);
    std::fs::write(dir.join("task.toml"), filled).unwrap();
    std::fs::copy(
        repo().join("fixtures/tasks/system-prompt/reference/correct.py"),
        dir.join("reference/correct.py"),
    )
    .unwrap();
    let out = qtjudge_in(
        &tasks,
        &[
            "task",
            "check",
            "stop-button",
            "--sandbox",
            "local",
            "--runs",
            "1",
            "--jobs",
            "1",
        ],
        Some("/bin/false"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let report = stdout(&out);
    assert!(
        report.contains("task stop-button: 2 item(s), 1 run(s) each"),
        "{report}"
    );

    // A name that exists, a built-in one, a bad one, an unreadable original:
    // refused with what to do, nothing written.
    let out = qtjudge_in(
        &tasks,
        &["task", "new", "stop-button", "--from", app_arg],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(
        stderr(&out).contains("task `stop-button` already exists"),
        "{}",
        explain(&out)
    );
    let out = qtjudge_in(&tasks, &["task", "new", "generic-reset"], None);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(
        stderr(&out).contains("is built into qtjudge: pick another name"),
        "{}",
        explain(&out)
    );
    for bad in ["Stop_Button", "../escape", "x--y"] {
        let out = qtjudge_in(&tasks, &["task", "new", bad], None);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", explain(&out));
        assert!(
            stderr(&out).contains("lowercase letters, digits and single hyphens"),
            "{bad}: {}",
            explain(&out)
        );
    }
    let missing = root.path().join("no-such-app.py");
    let out = qtjudge_in(
        &tasks,
        &[
            "task",
            "new",
            "save-button",
            "--from",
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(
        stderr(&out).contains("cannot read the original app"),
        "{}",
        explain(&out)
    );
    assert!(!tasks.join("save-button").exists());
    assert!(!root.path().join("escape").exists());
}

#[test]
fn task_new_without_an_original_says_to_copy_one() {
    let root = tempfile::tempdir().unwrap();
    let out = qtjudge_in(root.path(), &["task", "new", "save-button"], None);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(!root.path().join("save-button/original.py").exists());
    assert!(
        stdout(&out).contains("the original app: copy the app's script to"),
        "{}",
        explain(&out)
    );
    let out = qtjudge_in(root.path(), &["task", "check", "save-button"], None);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let said = stderr(&out);
    assert!(
        said.contains("the original app: copy the app's script to"),
        "{said}"
    );
    assert!(said.contains("[gold] original_failure"), "{said}");
}
