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

    /// The Prometheus text exposition of the counters and the gauges given:
    /// `local` is this replica's queue and running verifications, `cluster`
    /// the store's counts (every replica's; the same as `local` on a store
    /// of one process), `None` when the store does not answer.
    pub fn render(&self, gauges: &Gauges, engine: &EngineHealth) -> String {
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
        let mut rows = Vec::new();
        if let Some(local) = gauges.local {
            rows.push((
                "qtjudge_queue_depth",
                "Jobs accepted and waiting for a worker, in the queue this replica takes work from (a shared store has one queue: the cluster's).",
                local.queued,
            ));
        }
        rows.push((
            "qtjudge_verifications_running",
            "Verifications this replica runs now (one sandbox container each).",
            gauges.local.map_or(gauges.running_here, |l| l.running),
        ));
        if let Some(cluster) = gauges.cluster {
            rows.push((
                "qtjudge_cluster_queue_depth",
                "Jobs waiting for a worker in the store, every replica's (the same as qtjudge_queue_depth on one machine).",
                cluster.queued,
            ));
            rows.push((
                "qtjudge_cluster_running",
                "Verifications running on every replica of the store (the same as qtjudge_verifications_running on one machine).",
                cluster.running,
            ));
        }
        rows.push((
            "qtjudge_workers",
            "Verifications that may run at once.",
            gauges.workers,
        ));
        rows.push((
            "qtjudge_engine_up",
            "1 when the sandbox engine answers.",
            usize::from(engine.reachable),
        ));
        rows.push((
            "qtjudge_store_up",
            "1 when the job store answers.",
            usize::from(gauges.cluster.is_some()),
        ));
        for (name, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// The gauges of the moment `/metrics` shows beside the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// This replica's queue and running verifications (`None`: the store
    /// does not answer).
    pub local: Option<Depth>,
    /// The store's counts, every replica's (`None`: it does not answer).
    pub cluster: Option<Depth>,
    /// Verifications this process runs, known without the store.
    pub running_here: usize,
    pub workers: usize,
}

impl Gauges {
    /// From the store's counts (`Err`: it does not answer). A store of one
    /// process (`shared` false) counts this process's jobs, so its figures
    /// are the local ones too; a shared store's queue is the cluster's,
    /// and only `running_here` runs here.
    pub fn new<E>(
        cluster: Result<Depth, E>,
        shared: bool,
        running_here: usize,
        workers: usize,
    ) -> Gauges {
        let cluster = cluster.ok();
        let local = cluster.map(|c| {
            if shared {
                Depth {
                    queued: c.queued,
                    running: running_here,
                }
            } else {
                c
            }
        });
        Gauges {
            local,
            cluster,
            running_here,
            workers,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::store::{self, NewJob, StoreError};

    fn engine() -> EngineHealth {
        EngineHealth {
            reachable: true,
            sandbox_ready: true,
            image: None,
            problem: None,
        }
    }

    /// A gauge's value in the text, or `None` when it is not there.
    fn gauge(text: &str, name: &str) -> Option<usize> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.parse().unwrap())
    }

    #[tokio::test]
    async fn on_sqlite_the_cluster_figures_are_the_local_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(dir.path()).unwrap();
        assert!(!store.is_shared());
        let jobs = (0..3)
            .map(|n| NewJob {
                task: "reset-conversation".into(),
                model: "m".into(),
                sample: None,
                output: format!("print({n})"),
                upload: None,
                metadata: None,
                callback_url: None,
                task_choice: None,
            })
            .collect();
        store.enqueue(jobs, None, 10).await.unwrap();
        assert!(store.claim_next().await.unwrap().is_some());
        // No worker of this process runs it yet: one process's store
        // counts the claim as running all the same.
        let gauges = Gauges::new(store.depth().await, store.is_shared(), 0, 2);
        let text = Metrics::default().render(&gauges, &engine());
        assert_eq!(gauge(&text, "qtjudge_queue_depth"), Some(2), "{text}");
        assert_eq!(gauge(&text, "qtjudge_verifications_running"), Some(1));
        assert_eq!(gauge(&text, "qtjudge_cluster_queue_depth"), Some(2));
        assert_eq!(gauge(&text, "qtjudge_cluster_running"), Some(1));
        assert_eq!(gauge(&text, "qtjudge_store_up"), Some(1));
        assert_eq!(gauge(&text, "qtjudge_workers"), Some(2));
    }

    #[test]
    fn a_shared_store_gives_the_cluster_figures_beside_this_replicas() {
        let cluster = Depth {
            queued: 7,
            running: 3,
        };
        let gauges = Gauges::new(Ok::<_, StoreError>(cluster), true, 1, 2);
        let text = Metrics::default().render(&gauges, &engine());
        assert_eq!(gauge(&text, "qtjudge_queue_depth"), Some(7), "{text}");
        assert_eq!(gauge(&text, "qtjudge_verifications_running"), Some(1));
        assert_eq!(gauge(&text, "qtjudge_cluster_queue_depth"), Some(7));
        assert_eq!(gauge(&text, "qtjudge_cluster_running"), Some(3));
        for name in [
            "qtjudge_cluster_queue_depth",
            "qtjudge_cluster_running",
            "qtjudge_store_up",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} gauge")),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn without_the_store_the_counters_stay_and_its_counts_go() {
        let down: Result<Depth, &str> = Err("unreachable");
        let gauges = Gauges::new(down, true, 1, 2);
        let text = Metrics::default().render(&gauges, &engine());
        assert_eq!(gauge(&text, "qtjudge_store_up"), Some(0), "{text}");
        assert_eq!(gauge(&text, "qtjudge_verifications_running"), Some(1));
        assert_eq!(gauge(&text, "qtjudge_queue_depth"), None, "{text}");
        assert_eq!(gauge(&text, "qtjudge_cluster_queue_depth"), None);
        assert_eq!(gauge(&text, "qtjudge_cluster_running"), None);
        assert!(text.contains("qtjudge_verification_duration_seconds_count 0"));
    }
}
