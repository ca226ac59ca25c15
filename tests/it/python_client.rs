//! Issue 22: the Python client (`clients/python`). Its package is built and
//! installed with pip (offline, from the folder, as `pip install
//! ./clients/python` would), type-checked with `mypy --strict` as a user of
//! the installed package sees it (its `py.typed`), and its pytest suite runs
//! against a real `qtjudge serve` that it starts itself (this build's
//! binary, real sandbox verifications of the fixture answers).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{docker, repo};

/// The tests of `clients/python/tests`: all must run and pass.
const EXPECTED_TESTS: usize = 15;

/// The Python of the client's test venv (`scripts/install-python-client`:
/// httpx, setuptools, pytest and mypy, pinned). `None`, loudly, outside CI
/// when it cannot be installed; in CI that is a failure.
fn python() -> Option<PathBuf> {
    let output = std::process::Command::new(repo().join("scripts/install-python-client")).output();
    let problem = match output {
        Ok(o) if o.status.success() => {
            let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if path.is_file() {
                return Some(path);
            }
            format!("it printed no interpreter: {}", path.display())
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the Python client's test tools cannot be installed: {problem}");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPING PYTHON CLIENT TEST: cannot install its tools: {problem} !!!!!!!!\n"
    );
    None
}

/// Copies the package's sources, not what a build or a run left there:
/// pip builds in the folder it is given.
fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "build"
            || name.ends_with(".egg-info")
            || name.starts_with('.')
            || name == "__pycache__"
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_package(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Runs `python args…` with the installed package on its path; gives up
/// (failing the test) after `limit`.
async fn run(python: &Path, args: &[&str], site: &Path, limit: Duration) -> Output {
    let mut command = tokio::process::Command::new(python);
    command
        .args(args)
        .current_dir(repo().join("clients/python"))
        .env("PYTHONPATH", site)
        // The repository's test folder stays as it is: no bytecode, no cache.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("QTJUDGE_BIN", env!("CARGO_BIN_EXE_qtjudge"))
        .env_remove("QTJUDGE_TOKEN")
        .kill_on_drop(true);
    tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("python {args:?} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("python {args:?} did not start: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `N passed` (and nothing failed, errored or skipped) from pytest's summary line.
fn passed(summary: &str) -> usize {
    let line = summary
        .lines()
        .rev()
        .find(|l| l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
        .unwrap_or_else(|| panic!("no pytest summary line:\n{summary}"));
    for bad in ["failed", "error", "skipped", "deselected"] {
        assert!(!line.contains(bad), "pytest: {line}\n{summary}");
    }
    line.split_whitespace()
        .zip(line.split_whitespace().skip(1))
        .find_map(|(n, word)| word.starts_with("passed").then(|| n.parse().ok()).flatten())
        .unwrap_or_else(|| panic!("no `N passed` in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_installs_type_checks_and_passes_its_tests_against_a_real_service() {
    let Some(_) = docker().await else { return };
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("clients-python");
    copy_package(&repo().join("clients/python"), &source);
    let site = dir.path().join("site");

    // `pip install ./clients/python`, offline: the build backend is in the venv.
    let started = Instant::now();
    let install = run(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            site.to_str().unwrap(),
            source.to_str().unwrap(),
        ],
        dir.path(),
        Duration::from_secs(180),
    )
    .await;
    assert!(
        install.status.success(),
        "pip install ./clients/python failed:\n{}",
        text(&install)
    );
    assert!(
        site.join("qtjudge_client/py.typed").is_file(),
        "the installed package has no py.typed marker"
    );
    eprintln!("python client: installed in {:?}", started.elapsed());

    // The package, strictly; then the tests as a user's type checker sees
    // the installed package (through its py.typed: without it, `Any`s).
    let started = Instant::now();
    let mypy_cache = dir.path().join("mypy-cache");
    let package = source.join("src/qtjudge_client");
    for target in [package.to_str().unwrap(), "tests"] {
        let mypy = run(
            &python,
            &[
                "-m",
                "mypy",
                "--strict",
                "--cache-dir",
                mypy_cache.to_str().unwrap(),
                target,
            ],
            &site,
            Duration::from_secs(300),
        )
        .await;
        assert!(
            mypy.status.success(),
            "mypy --strict {target} found problems:\n{}",
            text(&mypy)
        );
    }
    eprintln!(
        "python client: mypy --strict clean in {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let basetemp = dir.path().join("pytest");
    let pytest = run(
        &python,
        &[
            "-m",
            "pytest",
            "tests",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            basetemp.to_str().unwrap(),
            "-q",
            "-rfEs",
        ],
        &site,
        Duration::from_secs(900),
    )
    .await;
    let output = text(&pytest);
    assert!(
        pytest.status.success(),
        "the Python client's tests failed:\n{output}"
    );
    assert_eq!(passed(&output), EXPECTED_TESTS, "pytest:\n{output}");
    eprintln!(
        "python client: {EXPECTED_TESTS} tests passed in {:?}",
        started.elapsed()
    );
}
