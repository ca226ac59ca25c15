//! Issue 21's first task written as data: `temperature-control`'s gold,
//! through the real binary and the real sandbox. Its original fails with
//! the task's own code, its reference gets tier 1, and every fixture
//! answer its manifest's verdict (tier 1 in two styles, tier 2, tier 3 by
//! the scenario's codes and a snippet), with the reason a person reads.

use crate::support::{docker, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_temperature_task_passes_its_check_and_says_why_answers_fail() {
    let Some(_) = docker().await else {
        return;
    };
    let out = crate::support::qtjudge_cli(
        &[
            "task",
            "check",
            "temperature-control",
            "--runs",
            "1",
            "--format",
            "json",
            "--jobs",
            "2",
        ],
        None,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let items = report["items"].as_array().unwrap();
    let missed: Vec<String> = items
        .iter()
        .filter(|i| i["status"] != "pass")
        .map(|i| i.to_string())
        .collect();
    assert!(
        missed.is_empty(),
        "items that missed:\n{}",
        missed.join("\n")
    );
    assert_eq!(out.status.code(), Some(0));
    let manifest =
        std::fs::read_to_string(repo().join("fixtures/outputs/temperature-control/manifest.toml"))
            .unwrap();
    let answers = manifest.matches("[[answer]]").count();
    assert!(answers >= 6, "{answers} answers");
    // The original, a reference, every answer.
    assert_eq!(items.len(), 2 + answers);
    let reason = |name: &str| -> String {
        items
            .iter()
            .find(|i| i["name"] == name)
            .and_then(|i| i["runs"][0]["reason"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let stale = reason("stale-value");
    assert!(
        stale.starts_with(
            "`wrong_temperature`: the request after setting 0.2 had options.temperature 0.7"
        ),
        "{stale}"
    );
    let unscaled = reason("unscaled-slider");
    assert!(
        unscaled.contains("had options.temperature 20"),
        "{unscaled}"
    );
    let original = reason("original");
    assert!(
        original.starts_with("`no_temperature_control`: no control for the temperature"),
        "{original}"
    );
}
