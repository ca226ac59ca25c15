//! Verdicts on a loaded machine: fork bombs beside benign answers on more
//! workers than cores, and a machine kept busy by threads outside Docker.
//! Load may delay a verdict (a busy machine's CPU stall lengthens the wall
//! clock, capped: `sandbox::machine_load`), never make one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::hostile::{epoch_ms, tightened_task, WALL_MARGIN, WALL_SECONDS};
use crate::server::{containers_of, Server};
use crate::support::{docker, fixture, repo, BOTH_CORES};

/// Fork bombs sent to run while both cores are busy with other
/// verifications (four workers: bombs beside each other and beside benign
/// answers). Each must be stopped at its pids limit (`resource_limit`,
/// tier 3) within its wall clock, however starved: the supervisor notes the
/// pids counters on its stderr the moment its deadline comes, and the host
/// reads the engine's counters when no result came (before these, 1 bomb
/// of 4 came back as `timeout` in two CI runs).
const BOMBS: usize = 4;
/// Benign answers after each bomb, and after the last, to keep the cores busy.
const BENIGN_AFTER_BOMB: usize = 2;
const BENIGN_TAIL: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fork_bombs_under_load_are_stopped_at_their_pids_limit() {
    let Some(_) = docker().await else {
        return;
    };
    let _turn = BOTH_CORES.lock().await;
    let temp = tempfile::tempdir().unwrap();
    let server = warmed_up_server(temp.path(), 4).await;

    let bomb = std::fs::read_to_string(repo().join("fixtures/hostile/fork-bomb.py")).unwrap();
    let benign = fixture("correct.py");
    let mut sent: Vec<(bool, String)> = Vec::new();
    for n in 0..BOMBS {
        sent.push((true, server.submit(&format!("fork bomb {n}"), &bomb).await));
        for _ in 0..BENIGN_AFTER_BOMB {
            sent.push((false, server.submit("benign", &benign).await));
        }
    }
    for _ in 0..BENIGN_TAIL {
        sent.push((false, server.submit("benign", &benign).await));
    }
    let cpu_before = cpu_ticks();
    let mut views = Vec::new();
    for (is_bomb, id) in &sent {
        views.push((*is_bomb, server.finished(id).await));
    }
    let (busy, total) = cpu_ticks();
    let busy_share = (busy - cpu_before.0) as f64 / (total - cpu_before.1).max(1) as f64;

    let span = |view: &Value| {
        let at = |key: &str| view[key].as_str().map(epoch_ms).unwrap_or(0);
        (at("started_at"), at("finished_at"))
    };
    let mut wrong = Vec::new();
    let mut lines = Vec::new();
    let mut stopped_at_limit = 0;
    for (is_bomb, view) in &views {
        let result = &view["result"];
        let got = (result["tier"].as_u64(), result["failure"].as_str());
        if !is_bomb {
            if got.0 != Some(1) {
                wrong.push(format!("a benign answer got {got:?}: {}", result["reason"]));
            }
            continue;
        }
        let (start, end) = span(view);
        // Other verifications that ran while this bomb ran.
        let beside = views
            .iter()
            .filter(|(_, other)| other["id"] != view["id"])
            .filter(|(_, other)| {
                let (s, e) = span(other);
                s < end && e > start
            })
            .count();
        lines.push(format!(
            "{:.1} s, {beside} verification(s) beside it: {} {}",
            (end - start) as f64 / 1000.0,
            result["failure"],
            result["reason"]
        ));
        if got.1 == Some("resource_limit") {
            stopped_at_limit += 1;
        }
        if got != (Some(3), Some("resource_limit")) {
            wrong.push(format!(
                "a fork bomb got {got:?} instead of resource_limit: {} ({})",
                result["reason"], view["error"]
            ));
        }
        if beside == 0 {
            wrong.push(format!("a fork bomb ran alone: {view}"));
        }
    }
    eprintln!(
        "fork bombs under load (machine busy {:.0}% of the time), {stopped_at_limit} of {BOMBS} stopped at the pids limit:\n{}",
        busy_share * 100.0,
        lines.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "{}\nthe service's log:\n{}",
        wrong.join("\n"),
        server.log()
    );
    let pid = server.pid();
    server.stop();
    assert_eq!(containers_of(pid).await, 0, "a container was left behind");
}

/// A machine kept busy beside the sandbox (spinning threads of this test's
/// own process, outside Docker's cgroups, as a model server beside qtjudge
/// would be) must delay verdicts, never make them: a benign answer stays
/// tier 1 on the tightened wall clock, and an answer that spins forever is
/// still a `timeout`, within its wall clock plus the busy machine's
/// allowance, which its reason reports (never more than the wall again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_machine_delays_verdicts_but_never_makes_them() {
    let Some(_) = docker().await else {
        return;
    };
    let _turn = BOTH_CORES.lock().await;
    let temp = tempfile::tempdir().unwrap();
    let server = warmed_up_server(temp.path(), 2).await;

    let hogs = Hogs::start(3);
    let spin = std::fs::read_to_string(repo().join("fixtures/hostile/loop-init.py")).unwrap();
    let spinning = server.submit("spins", &spin).await;
    let correct = fixture("correct.py");
    let benign: Vec<String> =
        futures_util::future::join_all((0..3).map(|_| server.submit("benign", &correct))).await;
    let spun = server.finished(&spinning).await;
    let mut views = Vec::new();
    for id in &benign {
        views.push(server.finished(id).await);
    }
    let spun_load = hogs.stop();

    let result = &spun["result"];
    let reason = result["reason"].as_str().unwrap_or_default();
    assert_eq!(result["failure"], "timeout", "{spun}");
    let busy: f64 = reason
        .split(" s more for a busy machine")
        .next()
        .filter(|before| before.len() < reason.len())
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("the timeout's reason names no busy allowance: {reason}"));
    assert!(
        busy > 0.0 && busy <= WALL_SECONDS as f64,
        "a busy machine added {busy} s to a {WALL_SECONDS} s wall clock"
    );
    let took = |view: &Value| {
        let at = |key: &str| view[key].as_str().map(epoch_ms).unwrap_or(0);
        (at("finished_at") - at("started_at")) as f64 / 1000.0
    };
    assert!(
        took(&spun) <= WALL_SECONDS as f64 + busy + WALL_MARGIN as f64,
        "the spinning answer took {:.1} s for {WALL_SECONDS} s + {busy} s",
        took(&spun)
    );
    for view in &views {
        assert_eq!(
            view["result"]["tier"], 1,
            "a benign answer on a busy machine: {}",
            view["result"]
        );
    }
    eprintln!(
        "busy machine ({spun_load} hog threads): the spin timed out after {:.1} s with {busy} s added; benign answers took {:?} s",
        took(&spun),
        views.iter().map(|v| (took(v) * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    let pid = server.pid();
    server.stop();
    assert_eq!(containers_of(pid).await, 0, "a container was left behind");
}

/// A service on the tightened task with `workers` workers, the original's
/// run (for the layout comparison) done before any load.
async fn warmed_up_server(temp: &Path, workers: usize) -> Server {
    let tasks = temp.join("tasks");
    tightened_task(&tasks);
    let workers = workers.to_string();
    let server = Server::start(
        &temp.join("data"),
        &[
            "--workers",
            &workers,
            "--tasks-dir",
            tasks.to_str().unwrap(),
        ],
    );
    server.wait_ready().await;
    let warm_up = server.submit("warm-up", &fixture("correct.py")).await;
    assert_eq!(server.finished(&warm_up).await["result"]["tier"], 1);
    server
}

/// Threads of this process that keep cores busy until stopped.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn start(count: usize) -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = 1;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }

    /// Stops them; how many there were.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let count = self.threads.len();
        for thread in self.threads {
            let _ = thread.join();
        }
        count
    }
}

/// (busy, total) jiffies of all CPUs since boot, from /proc/stat.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .expect("the cpu line of /proc/stat")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}
