//! Issue 22: two runs compared. `qtjudge compare` on two run folders
//! written by hand that differ in exactly one answer (that answer named,
//! `--fail-on-regression` exiting 1 on the drop and 0 without, an
//! unreadable folder a usage error), and `GET /v1/batches/{id}/compare/{other}`
//! through a real `qtjudge serve` on two batches of answers graded
//! statically; while either batch runs, 202 with its progress and
//! Retry-After instead of a comparison of half a batch.

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::samples::{merged, tier, write_result};
use crate::server::{service_ready, Server};
use crate::stores::Kind;
use crate::support::fixture;

fn qtjudge(args: &[&str]) -> Output {
    crate::support::qtjudge_cli(args, None)
}

/// Two models × five samples; `changed` gives model a's sample 3 tier 3.
fn write_run(dir: &Path, changed: bool) {
    for i in 1..=5u8 {
        let a = if changed && i == 3 { 3 } else { 1 };
        let b = if i <= 2 { 2 } else { 3 };
        for (model, t) in [("a", a), ("b", b)] {
            let reason = if t == 3 { "only a snippet" } else { "works" };
            write_result(
                dir,
                &format!("{model}_{i}.json"),
                merged(
                    json!({"model": model, "sample": i.to_string(), "reason": reason}),
                    tier(t),
                ),
            );
        }
    }
}

#[test]
fn compare_names_the_one_changed_answer_and_gates_on_regressions() {
    let dir = tempfile::tempdir().unwrap();
    let (run_a, run_b) = (dir.path().join("a"), dir.path().join("b"));
    for (run, changed) in [(&run_a, false), (&run_b, true)] {
        std::fs::create_dir(run).unwrap();
        write_run(run, changed);
    }
    let (a, b) = (run_a.to_str().unwrap(), run_b.to_str().unwrap());

    let out = qtjudge(&["compare", a, b, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &report["comparison"];
    assert_eq!(c["unchanged"], 9, "{c}");
    let changed = c["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{c}");
    assert_eq!(
        changed[0]["key"],
        json!({"model": "a", "task": "reset-conversation", "sample": "3"})
    );
    assert_eq!(changed[0]["old"]["tier"], 1);
    assert_eq!(changed[0]["new"]["failure"], "snippet");
    assert_eq!(changed[0]["direction"], "regressed");
    assert_eq!(changed[0]["reason"], "only a snippet");
    assert_eq!(c["only_in_a"], json!([]));
    assert_eq!(c["only_in_b"], json!([]));
    let line = &c["models"][0];
    assert_eq!(line["model"], "a");
    assert_eq!(line["method"], "paired_bootstrap");
    assert!(
        (line["pass"]["delta"].as_f64().unwrap() + 0.2).abs() < 1e-9,
        "{line}"
    );
    assert_eq!(c["models"][1]["pass"]["delta"], 0.0, "b did not change");

    let text = qtjudge(&["compare", a, b]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "a #3 [reset-conversation]: 1 flawless → 3 snippet (regressed): only a snippet"
        ),
        "{text}"
    );
    assert!(text.contains("changed verdicts (1):"), "{text}");
    assert!(text.contains("paired bootstrap (2000 resamples"), "{text}");
    let markdown = qtjudge(&["compare", a, b, "--format", "markdown"]);
    let markdown = String::from_utf8_lossy(&markdown.stdout);
    assert!(
        markdown.contains("| a #3 [reset-conversation] | 1 flawless | 3 snippet | regressed |"),
        "{markdown}"
    );

    // A drop of 20 points: past 5, not past 50; none from a run to itself.
    let out = qtjudge(&["compare", a, b, "--fail-on-regression", "0.05"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a's pass rate dropped by 20.0 points"),
        "{stderr}"
    );
    let out = qtjudge(&["compare", a, b, "--fail-on-regression", "0.5"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = qtjudge(&["compare", b, a, "--fail-on-regression", "0.05"]);
    assert_eq!(out.status.code(), Some(0), "an improvement: {out:?}");

    // Usage errors: a folder that cannot be read, a bar that is no share.
    let missing = dir.path().join("missing");
    let out = qtjudge(&["compare", a, missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUN_B") && stderr.contains("give the --run-dir"),
        "{stderr}"
    );
    let out = qtjudge(&["compare", a, b, "--fail-on-regression", "5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Submits a batch of `(sample, output)` answers of model `m` and waits for it.
async fn batch(server: &Server, answers: &[(&str, &str)]) -> String {
    let id = submit_batch(server, answers).await;
    let view = server.get_json(&format!("/v1/batches/{id}?wait=240")).await;
    assert_eq!(view["status"], "done", "{view}");
    id
}

/// Submits a batch of `(sample, output)` answers of model `m`.
async fn submit_batch(server: &Server, answers: &[(&str, &str)]) -> String {
    let body: Vec<Value> = answers
        .iter()
        .map(|(sample, output)| json!({"model": "m", "sample": sample, "output": output}))
        .collect();
    let response = server
        .post("/v1/batches?task=reset-conversation")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_route_names_the_changed_answer_of_two_batches() {
    let Some((server, _, _dir)) = service_ready(Kind::Sqlite, &["--workers", "2"]).await else {
        return;
    };
    // Snippets and a refusal: graded statically, no container run.
    let snippet = fixture("trap-diff-only.md");
    let refusal = "Sorry, I cannot help with that.";
    let a = batch(&server, &[("1", &snippet), ("2", &snippet)]).await;
    let b = batch(&server, &[("1", &snippet), ("2", refusal)]).await;

    let response = server
        .get(&format!("/v1/batches/{a}/compare/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let report: Value = response.json().await.unwrap();
    let c = &report["comparison"];
    let changed = c["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{c}");
    assert_eq!(changed[0]["key"]["sample"], "2");
    assert_eq!(
        (&changed[0]["old"]["failure"], &changed[0]["new"]["failure"]),
        (&json!("snippet"), &json!("no_code"))
    );
    assert_eq!(c["unchanged"], 1);

    for (format, media_type, needle) in [
        (
            "text",
            "text/plain; charset=utf-8",
            "m #2 [reset-conversation]: 3 snippet → 3 no_code",
        ),
        (
            "markdown",
            "text/markdown; charset=utf-8",
            "| m #2 [reset-conversation] | 3 snippet | 3 no_code |",
        ),
    ] {
        let response = server
            .get(&format!("/v1/batches/{a}/compare/{b}?format={format}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], media_type);
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{body}");
    }
    let unknown = server
        .get(&format!("/v1/batches/{a}/compare/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"], "not_found", "{error}");
    let bad = server
        .get(&format!("/v1/batches/{a}/compare/{b}?format=pdf"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_route_answers_202_with_progress_while_either_batch_runs() {
    let Some((server, _, _dir)) = service_ready(Kind::Sqlite, &["--workers", "2"]).await else {
        return;
    };
    let snippet = fixture("trap-diff-only.md");
    let done = batch(&server, &[("1", &snippet)]).await;
    // An answer that hangs until the 30 s limit keeps the other batch running.
    let hang = fixture("trap-init-loop.md");
    let running = submit_batch(&server, &[("1", &snippet), ("2", &hang)]).await;

    for (a, b, format) in [
        (&done, &running, ""),
        (&running, &done, ""),
        (&done, &running, "?format=markdown"),
    ] {
        let response = server
            .get(&format!("/v1/batches/{a}/compare/{b}{format}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "not a comparison of half a batch");
        assert_eq!(response.headers()["content-type"], "application/json");
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["running"], json!([running]), "{body}");
        assert!(
            body["status"] == "running" || body["status"] == "queued",
            "{body}"
        );
        let (this, that) = if a == &running {
            (&body["a"], &body["b"])
        } else {
            (&body["b"], &body["a"])
        };
        assert_eq!(this["id"], json!(running), "{body}");
        assert_eq!(this["total"], 2, "{body}");
        assert!(this["finished"].as_u64().unwrap() < 2, "{body}");
        assert_ne!(this["status"], "done", "{body}");
        assert_eq!(
            (
                &that["id"],
                &that["status"],
                &that["total"],
                &that["finished"]
            ),
            (&json!(done), &json!("done"), &json!(1), &json!(1)),
            "{body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("batch {running} (")) && message.contains("of 2 answers"),
            "{message}"
        );
    }
    // Finished: the comparison itself.
    let view = server
        .get_json(&format!("/v1/batches/{running}?wait=240"))
        .await;
    assert_eq!(view["status"], "done", "{view}");
    let response = server
        .get(&format!("/v1/batches/{done}/compare/{running}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("retry-after").is_none());
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["comparison"]["unchanged"], 1, "{report}");
    assert_eq!(
        report["comparison"]["only_in_b"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    server.stop();
}
