//! Where one verification's time went: named phases, each with its start
//! (ms after the verification began) and its length. The host's phases
//! come from its own clock; the sandbox's (the supervisor's moments and
//! each harness step) from the supervisor's result, whose times are ms
//! after the job reached it, placed on the host's timeline by the caller.
//!
//! Phases may nest (`sandbox` holds `sandbox.write`, which precedes the
//! `harness.*` steps): they are a timeline to read, not parts to add up.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One named stretch of a verification.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Phase {
    /// `static_grade`, `sandbox.obtain`, `harness.turn_1`, …
    pub name: String,
    /// ms after the verification began (negative: before it, such as a
    /// pooled container's warm start).
    pub start_ms: f64,
    pub ms: f64,
}

/// Phases measured against one starting moment.
#[derive(Debug)]
pub struct Stopwatch {
    origin: Instant,
    phases: Vec<Phase>,
}

impl Default for Stopwatch {
    fn default() -> Self {
        Stopwatch::new()
    }
}

impl Stopwatch {
    /// Starts now.
    pub fn new() -> Stopwatch {
        Stopwatch::since(Instant::now())
    }

    pub fn since(origin: Instant) -> Stopwatch {
        Stopwatch {
            origin,
            phases: Vec::new(),
        }
    }

    /// ms from the start to `moment`.
    pub fn at(&self, moment: Instant) -> f64 {
        millis(moment.saturating_duration_since(self.origin))
    }

    /// A phase from `from` until now.
    pub fn lap(&mut self, name: &str, from: Instant) {
        self.record(name, from, Instant::now());
    }

    /// A phase from `from` to `to`.
    pub fn record(&mut self, name: &str, from: Instant, to: Instant) {
        self.phases.push(Phase {
            name: name.to_string(),
            start_ms: self.at(from),
            ms: millis(to.saturating_duration_since(from)),
        });
    }

    /// Phases measured elsewhere, whose starts are relative to a moment
    /// `offset_ms` after this stopwatch's start.
    pub fn extend(&mut self, phases: &[Phase], offset_ms: f64) {
        self.phases.extend(phases.iter().map(|p| Phase {
            name: p.name.clone(),
            start_ms: round(p.start_ms + offset_ms),
            ms: p.ms,
        }));
    }

    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    pub fn into_phases(self) -> Vec<Phase> {
        self.phases
    }
}

/// To a tenth of a millisecond: finer is noise.
fn millis(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0)
}

fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// The sandbox's own phases, read from the supervisor's result document,
/// with starts in ms after the job reached the supervisor: its warm start
/// (before the job: a negative start for a pooled container), the hand-over
/// to the harness, each harness step, the harness's wrap-up and exit, and
/// the collection of the result. Missing moments leave their phases out.
pub fn supervisor_phases(result: &Value) -> Vec<Phase> {
    let supervisor = &result["supervisor"];
    let moment = |name: &str| supervisor["moments_ms"][name].as_f64();
    let mut phases = Vec::new();
    let mut push = |name: &str, from: Option<f64>, to: Option<f64>| {
        if let (Some(from), Some(to)) = (from, to) {
            if to >= from {
                phases.push(Phase {
                    name: name.to_string(),
                    start_ms: round(from),
                    ms: round(to - from),
                });
            }
        }
    };
    push(
        "supervisor.warm_start",
        moment("started"),
        moment("harness_ready"),
    );
    push(
        "supervisor.cold_start",
        moment("cold_start"),
        moment("cold_ready"),
    );
    push(
        "supervisor.hand_over",
        moment("cold_ready").or(Some(0.0)),
        moment("job_handed"),
    );
    let reports = result["reports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let at = |report: &Value| report["at_ms"].as_f64();
    let mut step_started: Option<f64> = None;
    let mut first_step: Option<f64> = None;
    let mut last_end: Option<f64> = None;
    for report in reports {
        match report["type"].as_str() {
            Some("step_start") => {
                step_started = at(report);
                first_step = first_step.or(step_started);
            }
            Some("step") => {
                let name = format!("harness.{}", report["name"].as_str().unwrap_or("?"));
                push(&name, step_started.take(), at(report));
                last_end = at(report).or(last_end);
            }
            Some("done") => push("harness.wrap_up", last_end, at(report)),
            _ => {}
        }
    }
    push("harness.job_read", moment("job_handed"), first_step);
    let done = reports.iter().find(|r| r["type"] == "done").and_then(at);
    push("supervisor.harness_exit", done, moment("harness_exited"));
    push(
        "supervisor.collect",
        moment("harness_exited"),
        moment("result"),
    );
    phases
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_supervisors_moments_and_steps_become_phases() {
        let result = json!({
            "supervisor": {"moments_ms": {
                "started": -900.0, "harness_ready": -600.0, "job_received": 0.0,
                "job_handed": 0.4, "harness_exited": 181.0, "result": 183.5
            }},
            "reports": [
                {"type": "step_start", "name": "compile", "at_ms": 1.0},
                {"type": "step", "name": "compile", "ok": true, "at_ms": 3.0},
                {"type": "step_start", "name": "launch", "at_ms": 3.1},
                {"type": "artifact", "name": "x.png", "at_ms": 50.0},
                {"type": "step", "name": "launch", "ok": true, "at_ms": 170.0},
                {"type": "done", "at_ms": 180.0}
            ]
        });
        let phases = supervisor_phases(&result);
        let find = |name: &str| {
            phases
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("no {name} in {phases:?}"))
                .clone()
        };
        assert_eq!(
            find("supervisor.warm_start"),
            Phase {
                name: "supervisor.warm_start".into(),
                start_ms: -900.0,
                ms: 300.0
            }
        );
        assert_eq!(find("harness.compile").ms, 2.0);
        assert_eq!(find("harness.launch").start_ms, 3.1);
        assert_eq!(find("harness.launch").ms, 166.9);
        assert_eq!(find("harness.job_read").ms, 0.6);
        assert_eq!(find("harness.wrap_up").ms, 10.0);
        assert_eq!(find("supervisor.harness_exit").ms, 1.0);
        assert_eq!(find("supervisor.collect").ms, 2.5);
        assert!(
            phases.iter().all(|p| p.name != "supervisor.cold_start"),
            "no cold start happened"
        );
    }

    #[test]
    fn a_result_without_moments_gives_no_phases() {
        assert!(supervisor_phases(&json!({"reports": []})).is_empty());
        assert!(supervisor_phases(&json!({})).is_empty());
    }

    #[test]
    fn phases_measured_elsewhere_are_moved_by_their_offset() {
        let mut watch = Stopwatch::new();
        let start = Instant::now();
        watch.lap("here", start);
        watch.extend(
            &[Phase {
                name: "there".into(),
                start_ms: 2.0,
                ms: 1.0,
            }],
            10.5,
        );
        let phases = watch.into_phases();
        assert_eq!(phases[1].start_ms, 12.5);
        assert!(phases[0].ms >= 0.0);
    }
}
