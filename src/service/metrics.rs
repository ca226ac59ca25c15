//! The service's counters for `/metrics` (verifications by label and
//! failure, their durations, callback attempts), kept since start-up, and
//! their Prometheus text with the gauges of the moment.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::service::engine_watch::EngineHealth;
use crate::service::store::Depth;
use crate::verify::Verification;

/// Upper bounds (seconds) of the duration histogram's buckets.
const DURATION_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];

/// Counters for `/metrics`, kept since start-up.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<MetricsInner>,
}

#[derive(Default)]
struct MetricsInner {
    /// (label, failure) → verifications finished.
    outcomes: BTreeMap<(String, String), u64>,
    /// Count per bucket of `DURATION_BUCKETS` (not cumulative), plus +Inf.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    duration_sum: f64,
    duration_count: u64,
    /// Per [`CallbackOutcome`], in `CallbackOutcome::ALL`'s order.
    callbacks: [u64; 3],
}

impl Metrics {
    pub(super) fn record(&self, v: &Verification) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (
            v.label.as_str().to_string(),
            v.failure
                .map(|f| f.as_str().to_string())
                .unwrap_or_default(),
        );
        *m.outcomes.entry(key).or_default() += 1;
        let seconds = v.duration_ms as f64 / 1000.0;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        m.buckets[bucket] += 1;
        m.duration_sum += seconds;
        m.duration_count += 1;
    }

    pub(super) fn record_callback(&self, outcome: CallbackOutcome) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.callbacks[outcome as usize] += 1;
    }

    /// The mean verification time so far (seconds), for Retry-After.
    pub fn mean_seconds(&self) -> Option<f64> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (m.duration_count > 0).then(|| m.duration_sum / m.duration_count as f64)
    }

    /// The Prometheus text exposition of the counters and the gauges given.
    pub fn render(&self, depth: Depth, workers: usize, engine: &EngineHealth) -> String {
        use std::fmt::Write as _;
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP qtjudge_verifications_total Verifications finished since start-up, by label (tier) and failure code.\n");
        out.push_str("# TYPE qtjudge_verifications_total counter\n");
        for ((label, failure), n) in &m.outcomes {
            let tier = match label.as_str() {
                "flawless" => "1",
                "unrequested_changes" => "2",
                "fail" => "3",
                _ => "",
            };
            let _ = writeln!(
                out,
                "qtjudge_verifications_total{{tier=\"{tier}\",label=\"{label}\",failure=\"{}\"}} {n}",
                failure.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        out.push_str(
            "# HELP qtjudge_verification_duration_seconds Wall time of one verification.\n",
        );
        out.push_str("# TYPE qtjudge_verification_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i];
            let _ = writeln!(
                out,
                "qtjudge_verification_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += m.buckets[DURATION_BUCKETS.len()];
        let _ = writeln!(
            out,
            "qtjudge_verification_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "qtjudge_verification_duration_seconds_sum {}",
            m.duration_sum
        );
        let _ = writeln!(
            out,
            "qtjudge_verification_duration_seconds_count {}",
            m.duration_count
        );
        out.push_str("# HELP qtjudge_callbacks_total Callback attempts since start-up: delivered, retried (failed, another attempt scheduled), failed (given up).\n");
        out.push_str("# TYPE qtjudge_callbacks_total counter\n");
        for outcome in CallbackOutcome::ALL {
            let _ = writeln!(
                out,
                "qtjudge_callbacks_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                m.callbacks[outcome as usize]
            );
        }
        let gauges = [
            (
                "qtjudge_queue_depth",
                "Jobs accepted and waiting for a worker.",
                depth.queued,
            ),
            (
                "qtjudge_verifications_running",
                "Verifications running now (one sandbox container each).",
                depth.running,
            ),
            (
                "qtjudge_workers",
                "Verifications that may run at once.",
                workers,
            ),
            (
                "qtjudge_engine_up",
                "1 when the sandbox engine answers.",
                usize::from(engine.reachable),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// Counted in `qtjudge_callbacks_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Delivered,
    /// An attempt failed and another is scheduled.
    Retried,
    /// Given up: refused, or out of attempts.
    Failed,
}

impl CallbackOutcome {
    pub const ALL: [CallbackOutcome; 3] = [
        CallbackOutcome::Delivered,
        CallbackOutcome::Retried,
        CallbackOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Delivered => "delivered",
            CallbackOutcome::Retried => "retried",
            CallbackOutcome::Failed => "failed",
        }
    }
}
