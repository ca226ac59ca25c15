//! `--runtime`: the containers run under the engine's OCI runtime asked
//! for (gVisor's `runsc` where installed), and an unknown one is refused
//! before any answer runs.

use qtjudge::grading::verdict::Label;
use qtjudge::sandbox::SandboxError;

use crate::support::{docker, fixture, prepared, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_run_under_the_runtime_asked_for_and_an_unknown_one_is_refused() {
    let Some(sandbox) = docker().await else {
        return;
    };
    let refused = (*sandbox)
        .clone()
        .with_runtime("no-such-runtime")
        .await
        .err()
        .expect("an unknown runtime is refused");
    let message = refused.to_string();
    assert!(
        matches!(refused, SandboxError::UnknownRuntime { .. }),
        "{message}"
    );
    assert!(
        message.contains("no-such-runtime") && message.contains("runc"),
        "the error names what was asked and what the engine has: {message}"
    );

    // runc is every engine's; runsc too where gVisor is installed.
    let mut runtimes = vec!["runc"];
    if (*sandbox).clone().with_runtime("runsc").await.is_ok() {
        runtimes.push("runsc");
    } else {
        eprintln!("runtime test: gVisor's runsc is not installed here; only runc is exercised");
    }
    for runtime in runtimes {
        let under = (*sandbox).clone().with_runtime(runtime).await.unwrap();
        let v = qtjudge::verify::verify(&fixture("correct.py"), runtime, &prepared(), &under).await;
        assert_eq!(v.label, Label::Flawless, "under {runtime}: {v:#?}");
        under.shutdown().await;
    }
}

#[test]
fn the_cli_refuses_an_unknown_runtime_with_exit_code_2() {
    if std::process::Command::new("docker")
        .arg("info")
        .output()
        .map_or(true, |o| !o.status.success())
        && std::env::var("CI").as_deref() != Ok("true")
    {
        eprintln!("\n!!!!!!!! SKIPPING DOCKER TEST: the engine is unreachable !!!!!!!!\n");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qtjudge"))
        .args(["verify", "--runtime", "no-such-runtime"])
        .arg(repo().join("fixtures/outputs/reset-conversation/correct.py"))
        .env_remove("QTJUDGE_RUNTIME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no runtime `no-such-runtime`"), "{stderr}");
}
