//! The leaderboard: what many verdicts add up to, per model (and per model
//! × task when there are several tasks). Counts per tier, the tier-1 rate
//! and the pass rate (tier 1 or 2) with 95% Wilson score intervals, the
//! unbiased pass@k of Chen et al. (2021), the failure codes and the median
//! verification time. Pure computation over the verdicts it is given; the
//! renderers show it.
//!
//! Answers that could not be judged (`label: error`, an engine fault) are
//! counted apart and left out of `n`: they say nothing about the model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::verdict::Label;
use super::FailureCode;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// One verdict, as the leaderboard reads it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub model: &'a str,
    pub task: &'a str,
    pub label: Label,
    pub failure: Option<FailureCode>,
    pub duration_ms: u64,
}

/// A share with its 95% Wilson score interval; `None` parts when there
/// is nothing to count (n = 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub successes: usize,
    pub n: usize,
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Rate {
    pub fn of(successes: usize, n: usize) -> Rate {
        let (low, high) = match wilson(successes, n) {
            Some((low, high)) => (Some(low), Some(high)),
            None => (None, None),
        };
        Rate {
            successes,
            n,
            value: (n > 0).then(|| successes as f64 / n as f64),
            low,
            high,
        }
    }
}

/// The 95% Wilson score interval of `successes` out of `n` (none for n = 0).
pub fn wilson(successes: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // Clamped: rounding may step a hair outside [0, 1] at 0/n and n/n.
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The unbiased estimator of pass@k from `n` samples of which `c` pass:
/// 1 - C(n-c, k) / C(n, k), as the product 1 - Π_{i=n-c+1..n} (1 - k/i)
/// (no factorials, so no overflow). Undefined (none) when n < k.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || n < k || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let none_pass: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    Some(1.0 - none_pass)
}

/// pass@k of one row: its value, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAt {
    pub k: usize,
    /// None when a task has fewer than k judged samples.
    pub value: Option<f64>,
}

/// How many tier-3 answers failed with a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    pub code: String,
    pub count: usize,
}

/// One model's line (or one model × task's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    /// The task, on a model × task line; none on a model's line.
    pub task: Option<String>,
    /// Answers judged (tier 1, 2 or 3).
    pub n: usize,
    pub tier1: usize,
    pub tier2: usize,
    pub tier3: usize,
    /// Answers that could not be judged: not in `n`.
    pub not_judged: usize,
    pub tier1_rate: Rate,
    /// Tier 1 or 2: the reset works.
    pub pass_rate: Rate,
    /// Over several tasks, the mean of each task's pass@k (Chen et al.).
    pub pass_at: Vec<PassAt>,
    /// Most frequent first.
    pub failures: Vec<FailureCount>,
    /// Of the judged answers' verification times.
    pub median_ms: Option<u64>,
}

/// Per model, and per model × task when the answers span several tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The k of every pass@k, as asked (`--pass-at`).
    pub pass_at: Vec<usize>,
    /// The tasks the answers were graded against.
    pub tasks: Vec<String>,
    /// Best first: by tier-1 rate, then pass rate, then more answers.
    pub models: Vec<Row>,
    /// Empty with a single task.
    pub by_task: Vec<Row>,
}

impl Leaderboard {
    /// The leaderboard of `outcomes` with pass@k for each of `ks`.
    pub fn of(outcomes: &[Outcome<'_>], ks: &[usize]) -> Leaderboard {
        let mut tasks: Vec<String> = outcomes.iter().map(|o| o.task.to_string()).collect();
        tasks.sort();
        tasks.dedup();
        // model → task → its outcomes
        let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&Outcome>>> = BTreeMap::new();
        for o in outcomes {
            grouped
                .entry(o.model)
                .or_default()
                .entry(o.task)
                .or_default()
                .push(o);
        }
        let mut models = Vec::new();
        let mut by_task = Vec::new();
        for (model, per_task) in &grouped {
            let all: Vec<&Outcome> = per_task.values().flatten().copied().collect();
            let task_rows: Vec<Row> = per_task
                .iter()
                .map(|(task, list)| row(model, Some(*task), list, ks, None))
                .collect();
            models.push(row(model, None, &all, ks, Some(&task_rows)));
            if tasks.len() > 1 {
                by_task.extend(task_rows);
            }
        }
        let rank = |a: &Row, b: &Row| {
            let value = |r: &Rate| r.value.unwrap_or(-1.0);
            value(&b.tier1_rate)
                .total_cmp(&value(&a.tier1_rate))
                .then(value(&b.pass_rate).total_cmp(&value(&a.pass_rate)))
                .then(b.n.cmp(&a.n))
                .then(a.model.cmp(&b.model))
                .then(a.task.cmp(&b.task))
        };
        models.sort_by(rank);
        by_task.sort_by(rank);
        Leaderboard {
            pass_at: ks.to_vec(),
            tasks,
            models,
            by_task,
        }
    }

    /// Whether any pass@k is undefined (a task with fewer than k samples).
    pub fn any_undefined_pass_at(&self) -> bool {
        self.models
            .iter()
            .chain(&self.by_task)
            .any(|r| r.n > 0 && r.pass_at.iter().any(|p| p.value.is_none()))
    }
}

/// One line. A model's pass@k over several tasks is the mean of its
/// tasks' (`tasks`), undefined when any task's is.
fn row(
    model: &str,
    task: Option<&str>,
    outcomes: &[&Outcome],
    ks: &[usize],
    tasks: Option<&[Row]>,
) -> Row {
    let count = |label: Label| outcomes.iter().filter(|o| o.label == label).count();
    let (tier1, tier2, tier3) = (
        count(Label::Flawless),
        count(Label::UnrequestedChanges),
        count(Label::Fail),
    );
    let n = tier1 + tier2 + tier3;
    let pass_at = ks
        .iter()
        .map(|&k| PassAt {
            k,
            value: match tasks {
                Some(rows) if rows.len() > 1 => {
                    let values: Option<Vec<f64>> = rows
                        .iter()
                        .filter(|r| r.n > 0)
                        .map(|r| r.pass_at.iter().find(|p| p.k == k).and_then(|p| p.value))
                        .collect();
                    values
                        .filter(|v| !v.is_empty())
                        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
                }
                _ => pass_at_k(n, tier1 + tier2, k),
            },
        })
        .collect();
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.label == Label::Fail) {
        *failures
            .entry(o.failure.map_or("fail", |f| f.as_str()))
            .or_default() += 1;
    }
    let mut failures: Vec<FailureCount> = failures
        .into_iter()
        .map(|(code, count)| FailureCount {
            code: code.to_string(),
            count,
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    let mut times: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.label != Label::Error)
        .map(|o| o.duration_ms)
        .collect();
    times.sort_unstable();
    let median_ms = match times.len() {
        0 => None,
        len if len % 2 == 1 => Some(times[len / 2]),
        len => Some((times[len / 2 - 1] + times[len / 2]) / 2),
    };
    Row {
        model: model.to_string(),
        task: task.map(String::from),
        n,
        tier1,
        tier2,
        tier3,
        not_judged: count(Label::Error),
        tier1_rate: Rate::of(tier1, n),
        pass_rate: Rate::of(tier1 + tier2, n),
        pass_at,
        failures,
        median_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 5e-5, "got {got}, want {want}");
    }

    /// Against the textbook values (Wilson 1927; e.g. Newcombe 1998's
    /// table): 0/10 → [0, 0.2775], 5/10 → [0.2366, 0.7634], 10/10 →
    /// [0.7225, 1].
    #[test]
    fn wilson_intervals_match_known_values() {
        let (low, high) = wilson(0, 10).unwrap();
        close(low, 0.0);
        close(high, 0.277_53);
        let (low, high) = wilson(5, 10).unwrap();
        close(low, 0.236_59);
        close(high, 0.763_41);
        let (low, high) = wilson(10, 10).unwrap();
        close(low, 0.722_47);
        close(high, 1.0);
        assert_eq!(wilson(0, 0), None);
        let rate = Rate::of(0, 0);
        assert_eq!((rate.value, rate.low, rate.high), (None, None, None));
    }

    /// n = 10, c = 3, k = 5 by hand: C(7,5)/C(10,5) = 21/252 = 1/12, so
    /// pass@5 = 11/12; pass@1 is c/n; below k samples it is undefined.
    #[test]
    fn pass_at_k_matches_a_hand_computation() {
        close(pass_at_k(10, 3, 5).unwrap(), 11.0 / 12.0);
        close(pass_at_k(10, 3, 1).unwrap(), 0.3);
        // C(7,10) = 0: every draw of 10 holds a pass.
        assert_eq!(pass_at_k(10, 3, 10), Some(1.0));
        assert_eq!(pass_at_k(10, 0, 5), Some(0.0));
        assert_eq!(pass_at_k(4, 2, 5), None, "n < k: undefined");
        // Large n stays finite (the product, not factorials): 1 -
        // C(900,100)/C(1000,100) = 0.9999853031619732 (Python's math.comb).
        close(pass_at_k(1000, 100, 100).unwrap(), 0.999_985_303_161_973_2);
    }

    fn outcome<'a>(model: &'a str, task: &'a str, tier: u8, ms: u64) -> Outcome<'a> {
        let (label, failure) = match tier {
            1 => (Label::Flawless, None),
            2 => (Label::UnrequestedChanges, None),
            3 => (Label::Fail, Some(FailureCode::Snippet)),
            _ => (Label::Error, None),
        };
        Outcome {
            model,
            task,
            label,
            failure,
            duration_ms: ms,
        }
    }

    /// Three models × ten samples, as the benchmark: counts, rates
    /// with their intervals and pass@k as computed by hand above.
    #[test]
    fn three_models_of_ten_samples() {
        let mut outcomes = Vec::new();
        // a: 3 tier 1, 7 tier 3; b: 5 tier 1, 5 tier 2; c: 10 tier 3, and one not judged.
        for i in 0..10u64 {
            outcomes.push(outcome("a", "t", if i < 3 { 1 } else { 3 }, 100 * (i + 1)));
            outcomes.push(outcome("b", "t", if i < 5 { 1 } else { 2 }, 50));
            outcomes.push(outcome("c", "t", 3, 10));
        }
        outcomes.push(outcome("c", "t", 0, 99_999));
        let board = Leaderboard::of(&outcomes, &[1, 5, 10, 20]);
        let order: Vec<&str> = board.models.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        assert!(board.by_task.is_empty(), "one task: no model × task lines");
        let a = &board.models[1];
        assert_eq!(
            (a.n, a.tier1, a.tier2, a.tier3, a.not_judged),
            (10, 3, 0, 7, 0)
        );
        close(a.pass_at[0].value.unwrap(), 0.3);
        close(a.pass_at[1].value.unwrap(), 11.0 / 12.0);
        assert_eq!(a.pass_at[2].value, Some(1.0));
        assert_eq!(a.pass_at[3].value, None, "20 > 10 samples");
        assert_eq!(
            a.failures,
            [FailureCount {
                code: "snippet".into(),
                count: 7
            }]
        );
        assert_eq!(
            a.median_ms,
            Some(550),
            "mean of the middle two of 100..1000"
        );
        let b = &board.models[0];
        close(b.tier1_rate.low.unwrap(), 0.236_59);
        close(b.pass_rate.low.unwrap(), 0.722_47);
        let c = &board.models[2];
        assert_eq!((c.n, c.not_judged, c.median_ms), (10, 1, Some(10)));
        close(c.pass_rate.high.unwrap(), 0.277_53);
        assert_eq!(c.pass_at[0].value, Some(0.0));
        assert!(board.any_undefined_pass_at());
    }

    /// Several tasks: a line per model × task, and the model's pass@k the
    /// mean of its tasks'.
    #[test]
    fn several_tasks_give_model_by_task_lines() {
        let outcomes = [
            outcome("m", "t1", 1, 1),
            outcome("m", "t1", 3, 1),
            outcome("m", "t2", 3, 1),
            outcome("m", "t2", 3, 1),
        ];
        let board = Leaderboard::of(&outcomes, &[1, 2]);
        assert_eq!(board.tasks, ["t1", "t2"]);
        assert_eq!(board.by_task.len(), 2);
        assert_eq!(board.by_task[0].task.as_deref(), Some("t1"));
        let m = &board.models[0];
        assert_eq!((m.n, m.tier1), (4, 1));
        // t1: pass@1 0.5, pass@2 1; t2: 0 and 0.
        close(m.pass_at[0].value.unwrap(), 0.25);
        close(m.pass_at[1].value.unwrap(), 0.5);
    }
}
