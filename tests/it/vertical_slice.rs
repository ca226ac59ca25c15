//! Issue 3's cases: one verification at a time, through the real Docker
//! sandbox, each checking the failure code, the planes and the clean-up.

use qtjudge::grading::verdict::Label;
use qtjudge::harness::Planes;

use crate::support::{fixture, task, verify_in_docker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_app_passes_the_baseline_and_has_no_reset_control() {
    let Some(v) = verify_in_docker(&task().original_source, "original").await else {
        return;
    };
    assert_eq!(
        v.failure.map(|f| f.as_str()),
        Some("no_reset_control"),
        "{v:#?}"
    );
    for step in ["launch", "turn_1", "turn_2"] {
        assert!(
            v.steps.iter().any(|s| s.name == step && s.ok),
            "baseline step {step} should pass: {:#?}",
            v.steps
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_refactoring_clears_history_on_all_three_planes() {
    let Some(v) = verify_in_docker(&fixture("correct.py"), "correct").await else {
        return;
    };
    assert_eq!(v.label, Label::Flawless, "{v:#?}");
    assert_eq!(
        v.history_cleared,
        Some(Planes {
            memory: Some(true),
            screen: Some(true),
            next_request: Some(true)
        })
    );
    let names: Vec<&str> = v.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["before_reset.png", "after_reset.png", "final.png"]);
    assert!(v.artifacts.iter().all(|a| a.data.starts_with(b"\x89PNG")));
    // The host's reading of the frames the supervisor took over VNC: both
    // earlier replies drawn before the reset, none after it, and the later
    // turns' replies drawn after it.
    let check = v
        .behaviour
        .as_ref()
        .and_then(|b| b.screen_check.clone())
        .expect("the host read the frames");
    assert_eq!(check.before, [1, 2], "{check:?}");
    assert!(check.old_after.is_empty(), "{check:?}");
    assert!(check.after.contains(&3), "{check:?}");
    assert!(check.frames >= 3, "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_that_only_clears_the_display_is_caught_in_memory_and_next_request() {
    let Some(v) = verify_in_docker(&fixture("trap-display-only.md"), "display-only").await else {
        return;
    };
    assert_eq!(
        v.failure.map(|f| f.as_str()),
        Some("history_not_cleared"),
        "{v:#?}"
    );
    let planes = v.history_cleared.expect("the planes were checked");
    assert_eq!(planes.memory, Some(false));
    assert_eq!(planes.next_request, Some(false));
    assert_eq!(planes.screen, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_set_to_none_breaks_the_app_after_reset() {
    let Some(v) = verify_in_docker(&fixture("trap-history-none.md"), "history-none").await else {
        return;
    };
    assert_eq!(
        v.failure.map(|f| f.as_str()),
        Some("broken_after_reset"),
        "{v:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_never_added_to_a_layout_cannot_be_clicked() {
    let Some(v) = verify_in_docker(&fixture("trap-not-in-layout.md"), "not-in-layout").await else {
        return;
    };
    assert_eq!(
        v.failure.map(|f| f.as_str()),
        Some("no_reset_control"),
        "{v:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_in_init_times_out_within_its_limit() {
    let started = std::time::Instant::now();
    let Some(v) = verify_in_docker(&fixture("trap-init-loop.md"), "init-loop").await else {
        return;
    };
    assert_eq!(v.failure.map(|f| f.as_str()), Some("timeout"), "{v:#?}");
    let limit = task().limits.wall_seconds as f64;
    // What a busy machine added, as the report says (never over the limit).
    let busy = busy_seconds(&v.reason);
    assert!(
        busy <= limit,
        "a busy machine added {busy} s to a {limit} s limit"
    );
    assert!(
        started.elapsed().as_secs_f64() < limit + busy + 10.0,
        "took {:?} for a {limit} s limit and {busy} s for a busy machine",
        started.elapsed()
    );
}

/// The seconds a timeout's reason says a busy machine added, or 0.
fn busy_seconds(reason: &str) -> f64 {
    reason
        .split(" s more for a busy machine")
        .next()
        .filter(|before| before.len() < reason.len())
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_is_reported_as_such() {
    let Some(v) = verify_in_docker(&fixture("trap-syntax-error.md"), "syntax-error").await else {
        return;
    };
    assert_eq!(
        v.failure.map(|f| f.as_str()),
        Some("syntax_error"),
        "{v:#?}"
    );
}
