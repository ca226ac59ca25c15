//! Snapshots of every format over a few fixture results (a tier 1, a tier 2
//! with unrequested changes, a tier 3 snippet, a tier 3 behavioural failure
//! with its planes, a run not judged), one at a time and all together.
//! Run ids, times, durations and temp paths are redacted, so a snapshot
//! changes only when what a reader sees does. Written under `snapshots/`;
//! CI (`CI=true`) refuses new ones, so every one is committed.

use serde_json::json;

use super::*;

/// A result as a worker would store it, with the parts every fixture shares.
fn result(fields: serde_json::Value) -> Verification {
    let mut base = json!({
        "model": "", "task": "reset-conversation", "tier": null, "label": "error",
        "failure": null, "reason": "", "history_cleared": null,
        "unrequested_changes": [], "missing": [], "steps": [], "artifacts": [],
        "extraction": null, "static": null, "behaviour": null, "error": null,
        "sandbox": "docker", "run_id": "3f9a1c2b7d4e", "duration_ms": 8734,
        "timings": [{"name": "sandbox", "start_ms": 12.5, "ms": 8100.25}],
        "script": "import sys\nprint('<b>')\n",
    });
    for (key, value) in fields.as_object().expect("an object") {
        base[key] = value.clone();
    }
    serde_json::from_value(base).expect("a fixture result")
}

fn steps(failing: Option<&str>) -> serde_json::Value {
    let names = [
        "compile",
        "launch",
        "find_window",
        "turn_1",
        "turn_2",
        "find_reset",
        "click_reset",
        "check_cleared",
        "turn_3",
        "idle",
        "turn_4",
    ];
    let steps: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ok = failing != Some(name);
            let detail = if ok {
                ""
            } else {
                "TypeError: 'NoneType' object is not callable"
            };
            json!({"name": name, "ok": ok, "ms": 101.5 + i as f64 * 37.25, "detail": detail})
        })
        .collect();
    json!(steps)
}

fn fixtures() -> Vec<(&'static str, Verification)> {
    vec![
        (
            "tier1",
            result(json!({
                "model": "alpha-flawless", "tier": 1, "label": "flawless",
                "reason": "reset clears memory, screen and next request; nothing else changed",
                "history_cleared": {"memory": true, "screen": true, "next_request": true},
                "steps": steps(None),
                "artifacts": [{"name": "before_reset.png", "media_type": "image/png", "size": 2048,
                               "path": "/tmp/qtjudge-alpha-flawless/before_reset.png"}],
            })),
        ),
        (
            "tier2",
            result(json!({
                "model": "beta <changes>", "tier": 2, "label": "unrequested_changes",
                "reason": "reset works, but with unrequested changes: new_layout, widget_moved",
                "history_cleared": {"memory": true, "screen": true, "next_request": true},
                "unrequested_changes": [
                    {"source": "static", "kind": "new_layout", "detail": "button_layout = QHBoxLayout()", "line": 80},
                    {"source": "layout", "kind": "widget_moved", "detail": "QPushButton \"Send\" moved | right", "line": null}
                ],
                "steps": steps(None),
            })),
        ),
        (
            "snippet",
            result(json!({
                "model": "gamma-snippet", "tier": 3, "label": "fail", "failure": "snippet",
                "reason": "snippet instead of the full script: 2 original definition(s) missing",
                "missing": [
                    {"kind": "method", "name": "ChatWindow.init_ui", "original_line": 40},
                    {"kind": "main_entry", "name": "__main__", "original_line": 120}
                ],
                "duration_ms": 41, "timings": [],
            })),
        ),
        (
            "behaviour",
            result(json!({
                "model": "delta-history", "tier": 3, "label": "fail", "failure": "history_not_cleared",
                "reason": "the request after the reset still carries turn 1 & turn 2",
                "history_cleared": {"memory": true, "screen": false, "next_request": false},
                "steps": steps(None),
                "artifacts": [
                    {"name": "after_reset.png", "media_type": "image/png", "size": 4096,
                     "path": "/tmp/qtjudge-delta-history/after_reset.png"}
                ],
            })),
        ),
        (
            "error",
            result(json!({
                "model": "epsilon-outage",
                "reason": "not judged: the sandbox engine is unreachable",
                "error": "the sandbox engine is unreachable: connection refused",
                "steps": [], "duration_ms": 3, "timings": [],
            })),
        ),
    ]
}

/// Redacts what changes from run to run: run ids, times, durations, temp paths.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[run_id]");
    settings.add_filter(
        r#""(duration_ms|ms|start_ms)":\s*-?[0-9.]+"#,
        r#""$1": "[ms]""#,
    );
    settings.add_filter(r#"time="[0-9.]+""#, r#"time="[duration]""#);
    // The text account's step times (a column 7 wide), and the page's.
    settings.add_filter(r"[ 0-9]{4}[0-9]\.[0-9] ms", "   [ms] ms");
    settings.add_filter(
        r"(ok|FAILED</strong>|history left</strong>)</td><td>[0-9]+</td>",
        "$1</td><td>[ms]</td>",
    );
    settings.add_filter(r"/tmp/[^\s<>]*?([A-Za-z_]+\.png)", "[temp]/$1");
    settings
}

#[test]
fn every_format_of_each_fixture_result() {
    let _bound = settings().bind_to_scope();
    for (name, v) in fixtures() {
        for format in Format::ALL {
            insta::assert_snapshot!(format!("one_{name}_{}", format.name()), one(&v, format));
        }
    }
}

#[test]
fn every_format_of_the_fixture_results_together() {
    let _bound = settings().bind_to_scope();
    let all: Vec<Verification> = fixtures().into_iter().map(|(_, v)| v).collect();
    for format in Format::ALL {
        insta::assert_snapshot!(format!("many_{}", format.name()), many(&all, format));
    }
}

/// A benchmark's results: two models, two tasks, several samples each
/// (one not judged), with metadata.
fn benchmark() -> Vec<Verification> {
    let runs: [(&str, &str, &[u8]); 3] = [
        ("alpha", "generic-reset", &[1, 3]),
        ("alpha", "reset-conversation", &[1, 1, 2, 3, 3]),
        ("beta", "reset-conversation", &[2, 2, 3, 0]),
    ];
    let mut all = Vec::new();
    for (model, task, tiers) in runs {
        for (i, &tier) in tiers.iter().enumerate() {
            let (label, failure) = match tier {
                1 => ("flawless", None),
                2 => ("unrequested_changes", None),
                3 => ("fail", Some("snippet")),
                _ => ("error", None),
            };
            all.push(result(json!({
                "model": model, "task": task, "sample": (i + 1).to_string(),
                "tier": (1..=3).contains(&tier).then_some(tier), "label": label,
                "failure": failure, "reason": label, "duration_ms": 1000 * (i + 1),
                "metadata": {"temperature": 0.7}, "timings": [], "script": null,
            })));
        }
    }
    all
}

/// Every format of many results ends with their leaderboard (here with
/// pass@1 and pass@5: undefined below five samples), per model and per
/// model × task; JUnit keeps a case per answer.
#[test]
fn every_format_of_a_benchmark_with_its_leaderboard() {
    let _bound = settings().bind_to_scope();
    let all = benchmark();
    for format in Format::ALL {
        insta::assert_snapshot!(
            format!("board_{}", format.name()),
            report(&all, format, &[1, 5])
        );
    }
    let json: serde_json::Value = serde_json::from_str(&report(&all, Format::Json, &[1])).unwrap();
    assert_eq!(json["results"][0]["metadata"], json!({"temperature": 0.7}));
    assert_eq!(json["leaderboard"]["models"][0]["model"], "alpha");
    assert_eq!(
        report(&all, Format::Junit, &[1])
            .matches("<testcase")
            .count(),
        11
    );
}

/// `table`, the text format's old name, is still accepted everywhere.
#[test]
fn formats_are_named_once_and_table_is_still_text() {
    use clap::ValueEnum as _;
    let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        ["text", "json", "jsonl", "junit", "markdown", "html"]
    );
    for format in Format::ALL {
        assert_eq!(
            Format::from_str(format.name(), false),
            Ok(format),
            "clap knows {}",
            format.name()
        );
        assert_eq!(
            serde_json::from_value::<Format>(json!(format.name())).unwrap(),
            format
        );
    }
    assert_eq!(Format::from_str("table", false), Ok(Format::Text));
    assert_eq!(
        serde_json::from_value::<Format>(json!("table")).unwrap(),
        Format::Text
    );
    assert_eq!(
        Format::accepted_names(),
        ["text", "table", "json", "jsonl", "junit", "markdown", "html"]
    );
}

/// The JSON formats leave the extracted script out; the pages show it.
#[test]
fn scripts_stay_out_of_json() {
    let (_, v) = fixtures().remove(0);
    for format in [Format::Json, Format::Jsonl] {
        assert!(!one(&v, format).contains("print("), "{format:?}");
    }
    assert!(one(&v, Format::Html).contains("print(&#39;&lt;b&gt;&#39;)"));
}
