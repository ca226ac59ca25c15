//! Issue 8's first slice: chat front ends nobody wrote for qtjudge
//! (`fixtures/apps/`), graded through the real Docker sandbox with the
//! built-in `generic-reset` task: no original, no names, discovery only.

use serde::Deserialize;

use qtjudge::task::Task;
use qtjudge::verify::PreparedTask;

use crate::support::{docker, repo};

#[derive(Deserialize)]
struct Manifest {
    app: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    file: String,
    tier: u8,
    #[serde(default)]
    failure: String,
    why: String,
    /// The Qt binding the app must have run with (PyQt5 when absent).
    #[serde(default)]
    binding: Option<String>,
    /// The kind of reset control discovery must find (`shortcut`).
    #[serde(default)]
    reset: Option<String>,
    /// A display widget class discovery must find (`QListView`).
    #[serde(default)]
    display: Option<String>,
    /// Words the reason must hold (the missing modules it names).
    #[serde(default)]
    reason_has: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_gets_its_expected_verdict_by_discovery_alone() {
    let dir = repo().join("fixtures/apps");
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(dir.join("manifest.toml")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest.app.iter().map(|a| a.file.as_str()).collect();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".py") || listed.contains(&name.as_str()),
            "{name} is not in fixtures/apps/manifest.toml"
        );
    }
    // An empty tasks dir: the task must come from the binary, not a folder.
    let no_tasks = tempfile::tempdir().unwrap();
    let task = Task::load(no_tasks.path(), "generic-reset").expect("generic-reset is built in");
    assert!(!task.has_original() && task.app.prompt_entry.is_empty());
    let prepared = PreparedTask::new(task, None);
    let Some(sandbox) = docker().await else {
        return;
    };

    let mut wrong = Vec::new();
    for expected in &manifest.app {
        // A script, or an app of several files (a folder, an archive, a notebook).
        let loaded = qtjudge::cli::load_input(&dir.join(&expected.file), None)
            .unwrap_or_else(|e| panic!("{}: {e:#}", expected.file));
        let source = loaded.code();
        let v = qtjudge::verify::verify_input(
            loaded.input(),
            &expected.file,
            &prepared,
            sandbox.as_ref(),
        )
        .await;
        crate::support::assert_container_gone(&sandbox, &v.run_id, &expected.file).await;
        let failure = v.failure.map(|f| f.as_str()).unwrap_or_default();
        let mut problems = Vec::new();
        if v.tier != Some(expected.tier) || failure != expected.failure {
            problems.push(format!(
                "expected tier {} {:?}, got {:?} {:?}: {}",
                expected.tier, expected.failure, v.tier, failure, v.reason
            ));
        }
        if !v.unrequested_changes.is_empty() {
            problems.push(format!(
                "no original, yet unrequested changes: {:?}",
                v.unrequested_changes
            ));
        }
        for words in &expected.reason_has {
            if !v.reason.contains(words.as_str()) {
                problems.push(format!("the reason should name {words}: {}", v.reason));
            }
        }
        if failure == "history_broken" && !v.reason.contains("no conversation memory to reset") {
            problems.push(format!("the baseline's reason should say so: {}", v.reason));
        }
        // What was found is reported, and found by discovery.
        let found = v.behaviour.as_ref().and_then(|b| b.discovered.clone());
        // The host's choice of binding, and the one the harness really ran.
        let binding = expected.binding.as_deref().unwrap_or("PyQt5");
        if qtjudge::harness::detect_binding([source.as_str()]) != binding {
            problems.push(format!(
                "detected {} from the imports, expected {binding}",
                qtjudge::harness::detect_binding([source.as_str()])
            ));
        }
        let ran = found.as_ref().and_then(|d| d.binding.clone());
        if !ran
            .as_deref()
            .is_some_and(|b| b.starts_with(&format!("{binding} ")))
        {
            problems.push(format!("ran with {ran:?}, expected {binding}"));
        }
        if let (Some(kind), Some(d)) = (&expected.reset, &found) {
            if d.reset.as_ref().map(|r| r.kind.as_str()) != Some(kind.as_str()) {
                problems.push(format!("reset should be a {kind}: {:?}", d.reset));
            }
        }
        if let (Some(class), Some(d)) = (&expected.display, &found) {
            if !d.display.iter().any(|c| &c.class == class) {
                problems.push(format!("display should include a {class}: {:?}", d.display));
            }
        }
        match (&found, expected.tier) {
            (None, _) => problems.push("no `discovered` report".into()),
            (Some(d), 1) => {
                let how = |c: &Option<qtjudge::harness::Control>| {
                    c.as_ref().map(|c| c.how.clone()).unwrap_or_default()
                };
                if how(&d.prompt_input) != "discovered"
                    || how(&d.send) != "discovered"
                    || how(&d.reset) != "discovered"
                    || d.display.is_empty()
                    || d.memory.is_empty()
                {
                    problems.push(format!("incomplete discovery: {d:?}"));
                }
            }
            _ => {}
        }
        if !problems.is_empty() {
            let steps: Vec<String> = v
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {}",
                        if s.ok { "ok" } else { "FAIL" },
                        s.name,
                        s.detail
                    )
                })
                .collect();
            wrong.push(format!(
                "{} ({}):\n    {}\n    steps: {}\n    found: {:?}\n    stderr: {}",
                expected.file,
                expected.why,
                problems.join("\n    "),
                steps.join(" | "),
                found,
                v.behaviour
                    .as_ref()
                    .map(|b| b
                        .stderr
                        .chars()
                        .rev()
                        .take(600)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect::<String>())
                    .unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "misgraded apps:\n{}", wrong.join("\n"));
}

/// A task file overrides discovery: the app whose reset is a bare icon
/// fails by discovery alone (the manifest says so) and passes once
/// `fixtures/app-tasks/icon-only-reset` names its parts, each reported as
/// configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_file_names_what_discovery_cannot_find() {
    let task = Task::load(&repo().join("fixtures/app-tasks"), "icon-only-reset")
        .expect("the app's task loads");
    assert_eq!(task.reset_control.attribute, "wipe_btn");
    let prepared = PreparedTask::new(task, None);
    let Some(sandbox) = docker().await else {
        return;
    };
    let app = repo().join("fixtures/apps/icon_only_reset.py");
    let loaded = qtjudge::cli::load_input(&app, None).unwrap();
    let v = qtjudge::verify::verify_input(
        loaded.input(),
        "icon_only_reset",
        &prepared,
        sandbox.as_ref(),
    )
    .await;
    crate::support::assert_container_gone(&sandbox, &v.run_id, "icon_only_reset").await;
    assert_eq!(v.tier, Some(1), "{}: {:?}", v.reason, v.steps);
    let found = v
        .behaviour
        .as_ref()
        .and_then(|b| b.discovered.clone())
        .expect("a discovered report");
    let how = |c: &Option<qtjudge::harness::Control>| c.as_ref().map(|c| c.how.clone());
    let attribute =
        |c: &Option<qtjudge::harness::Control>| c.as_ref().and_then(|c| c.attribute.clone());
    assert_eq!(
        how(&found.reset).as_deref(),
        Some("configured"),
        "{found:?}"
    );
    assert_eq!(attribute(&found.reset).as_deref(), Some("wipe_btn"));
    assert_eq!(how(&found.prompt_input).as_deref(), Some("configured"));
    assert_eq!(how(&found.send).as_deref(), Some("configured"));
    assert!(
        found
            .display
            .iter()
            .any(|d| d.attribute.as_deref() == Some("screen") && d.how == "configured"),
        "{:?}",
        found.display
    );
    assert_eq!(found.memory_configured, ["self.log"]);
    assert!(
        found.memory.iter().any(|m| m == "self.log"),
        "{:?}",
        found.memory
    );

    // A name that holds no button is refused with what the window holds.
    let mut wrong = Task::load(&repo().join("fixtures/app-tasks"), "icon-only-reset").unwrap();
    wrong.reset_control.attribute = "screen".into();
    let v = qtjudge::verify::verify_input(
        loaded.input(),
        "icon_only_reset",
        &PreparedTask::new(wrong, None),
        sandbox.as_ref(),
    )
    .await;
    crate::support::assert_container_gone(&sandbox, &v.run_id, "icon_only_reset, wrong name").await;
    assert_eq!(
        v.failure.map(|f| f.as_str()),
        Some("no_reset_control"),
        "{}",
        v.reason
    );
    assert!(
        v.reason.contains("self.screen") && v.reason.contains("QTextEdit"),
        "{}",
        v.reason
    );
}
