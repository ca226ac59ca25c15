//! The CLI's exit codes, through the real binary: a CI stage tells a
//! passed answer (0), a failed one (1), bad usage (2) and a run that could
//! not be judged (3) apart without reading the output.

use std::process::Output;

use crate::support::{docker, repo};

fn qtjudge(args: &[&str], python: Option<&str>) -> Output {
    crate::support::qtjudge_cli(args, python)
}

fn answer(name: &str) -> String {
    repo()
        .join("fixtures/outputs/reset-conversation")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_has_its_own_exit_code() {
    let Some(_) = docker().await else {
        return;
    };
    let task = ["--task", "reset-conversation"];
    let code = |out: &Output| out.status.code();
    let verify = |file: &str, extra: &[&str], python: Option<&str>| {
        let mut args = vec!["verify", file];
        args.extend_from_slice(&task);
        args.extend_from_slice(extra);
        qtjudge(&args, python)
    };

    let passed = verify(&answer("correct.py"), &[], None);
    assert_eq!(
        code(&passed),
        Some(0),
        "{}",
        String::from_utf8_lossy(&passed.stdout)
    );

    let snippet = verify(&answer("trap-diff-only.md"), &[], None);
    let text = String::from_utf8_lossy(&snippet.stdout);
    assert!(text.contains("tier 3"), "{text}");
    assert_eq!(code(&snippet), Some(1), "{text}");

    let unknown = qtjudge(
        &["verify", &answer("correct.py"), "--task", "no-such-task"],
        None,
    );
    assert_eq!(code(&unknown), Some(2));

    // A harness that cannot start (its interpreter is `false`): an engine
    // of the judge's, never the answer's fault.
    let broken = verify(
        &answer("correct.py"),
        &["--sandbox", "local"],
        Some("/bin/false"),
    );
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(text.contains("not judged"), "{text}");
    assert_eq!(code(&broken), Some(3), "{text}");

    // `grade`: one answer not judged outranks any bar.
    let dir = tempfile::tempdir().unwrap();
    for name in ["correct.py", "trap-diff-only.md"] {
        std::fs::copy(answer(name), dir.path().join(name)).unwrap();
    }
    let answers = dir.path().join("answers");
    std::fs::create_dir(&answers).unwrap();
    for name in ["correct.py", "trap-diff-only.md"] {
        std::fs::rename(dir.path().join(name), answers.join(name)).unwrap();
    }
    let runs = dir.path().join("run");
    let grade = |python: Option<&str>, extra: &[&str]| {
        let mut args = vec![
            "grade",
            answers.to_str().unwrap(),
            "--run-dir",
            runs.to_str().unwrap(),
        ];
        args.extend_from_slice(&task);
        args.extend_from_slice(extra);
        qtjudge(&args, python)
    };
    assert_eq!(code(&grade(None, &[])), Some(0));
    assert_eq!(code(&grade(None, &["--fail-under", "0.9"])), Some(1));
    let outage = grade(
        Some("/bin/false"),
        &["--sandbox", "local", "--fail-under", "0.0"],
    );
    assert_eq!(
        code(&outage),
        Some(3),
        "{}",
        String::from_utf8_lossy(&outage.stderr)
    );
}
