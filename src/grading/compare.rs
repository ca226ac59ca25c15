//! Two runs compared (issue 22): the answers matched by their key (model,
//! task, sample), the verdicts that changed, the answers only one run
//! has, and per model (and model × task when there are several tasks) the
//! pass rate (tier 1 or 2) and the tier-1 rate in each run with the
//! change between them and its 95% interval.
//!
//! The interval: when every judged answer of a line is in both runs (the
//! same answers graded again), a paired bootstrap over the pairs
//! (`RESAMPLES` resamples from a fixed seed, so the same runs always give
//! the same interval), with McNemar's exact test on the discordant pairs;
//! otherwise Newcombe's hybrid score interval of two independent shares
//! (from each run's Wilson interval). Each line says which. Answers not
//! judged (`label: error`) are left out of every count, as in the
//! leaderboard. Pure computation; no IO.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::leaderboard::{wilson, Rate};
use super::verdict::Label;
use super::FailureCode;

/// Resamples of the paired bootstrap.
pub const RESAMPLES: usize = 2000;
/// The bootstrap's seed: the same runs give the same interval.
pub const SEED: u64 = 22;

/// One answer of a run, as the comparison reads it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub model: &'a str,
    pub task: &'a str,
    pub sample: Option<&'a str>,
    pub label: Label,
    pub failure: Option<FailureCode>,
    pub reason: &'a str,
}

impl<'a> Answer<'a> {
    fn judged(&self) -> bool {
        self.label != Label::Error
    }

    fn passed(&self) -> bool {
        matches!(self.label, Label::Flawless | Label::UnrequestedChanges)
    }

    fn flawless(&self) -> bool {
        self.label == Label::Flawless
    }

    fn key(&self) -> KeyRef<'a> {
        (self.model, self.task, self.sample)
    }

    fn verdict(&self) -> Verdict {
        Verdict {
            tier: self.label.tier(),
            label: self.label,
            failure: self.failure,
        }
    }
}

/// An answer's key: which of a model's answers to a task it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Key {
    pub model: String,
    pub task: String,
    pub sample: Option<String>,
}

impl Key {
    fn of(answer: &Answer<'_>) -> Key {
        Key {
            model: answer.model.to_string(),
            task: answer.task.to_string(),
            sample: answer.sample.map(String::from),
        }
    }

    /// `devstral #2 [reset-conversation]`.
    pub fn name(&self) -> String {
        match &self.sample {
            Some(sample) => format!("{} #{sample} [{}]", self.model, self.task),
            None => format!("{} [{}]", self.model, self.task),
        }
    }
}

/// A verdict: its tier and label, and for tier 3 its failure code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub tier: Option<u8>,
    pub label: Label,
    pub failure: Option<FailureCode>,
}

impl std::fmt::Display for Verdict {
    /// `1 flawless`, `3 snippet`, `- not judged`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.tier, self.failure) {
            (None, _) => f.write_str("- not judged"),
            (Some(tier), Some(failure)) if self.label == Label::Fail => {
                write!(f, "{tier} {failure}")
            }
            (Some(tier), _) => write!(f, "{tier} {}", self.label.as_str()),
        }
    }
}

/// Which way a changed verdict went, by the pass (tier 1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Passed in A, failed (or not judged) in B.
    Regressed,
    /// Failed (or not judged) in A, passed in B.
    Improved,
    /// Both passed or both did not (another tier or failure code).
    Changed,
}

/// An answer whose verdict changed from run A to run B.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub key: Key,
    pub old: Verdict,
    pub new: Verdict,
    pub direction: Direction,
    /// The reason of the new verdict.
    pub reason: String,
}

/// How a line's interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every judged answer in both runs: a paired bootstrap over the pairs.
    PairedBootstrap,
    /// Not all paired: Newcombe's hybrid score interval (independent shares).
    Newcombe,
    /// A run has no judged answer on the line: no change to speak of.
    None,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PairedBootstrap => "paired bootstrap",
            Method::Newcombe => "Newcombe",
            Method::None => "-",
        }
    }
}

/// One share in each run and the change B − A, with its 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    pub a: Rate,
    pub b: Rate,
    pub delta: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Paired answers that succeeded only in A, and only in B.
    pub only_a: usize,
    pub only_b: usize,
    /// McNemar's exact two-sided p on the discordant pairs (with pairs).
    pub mcnemar_p: Option<f64>,
}

/// One model's line (or one model × task's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub model: String,
    pub task: Option<String>,
    /// Judged answers in A and in B.
    pub n_a: usize,
    pub n_b: usize,
    /// Answers judged in both runs.
    pub paired: usize,
    pub method: Method,
    /// Tier 1 or 2.
    pub pass: Delta,
    pub tier1: Delta,
}

/// What changed from run A to run B.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub resamples: usize,
    pub seed: u64,
    /// Answers in both runs with the same verdict.
    pub unchanged: usize,
    pub changed: Vec<Change>,
    pub only_in_a: Vec<Key>,
    pub only_in_b: Vec<Key>,
    /// A line per model, by name.
    pub models: Vec<Line>,
    /// A line per model × task; empty with a single task.
    pub by_task: Vec<Line>,
}

type KeyRef<'a> = (&'a str, &'a str, Option<&'a str>);

/// Keys in report order: model, task, then sample (numbers as numbers).
fn order(a: &KeyRef<'_>, b: &KeyRef<'_>) -> std::cmp::Ordering {
    let sample = |s: Option<&str>| {
        let text = s.unwrap_or("");
        (text.parse::<u64>().ok(), text.to_string())
    };
    (a.0, a.1)
        .cmp(&(b.0, b.1))
        .then_with(|| sample(a.2).cmp(&sample(b.2)))
}

impl Comparison {
    /// Run A's answers against run B's. A key given twice in a run keeps
    /// its last answer (a run folder and a batch never hold one twice).
    pub fn of<'a>(a: &[Answer<'a>], b: &[Answer<'a>]) -> Comparison {
        let (in_a, in_b) = (index(a), index(b));
        let mut keys: Vec<KeyRef<'_>> = in_a.keys().chain(in_b.keys()).copied().collect();
        keys.sort_by(order);
        keys.dedup();
        let mut comparison = Comparison {
            resamples: RESAMPLES,
            seed: SEED,
            unchanged: 0,
            changed: Vec::new(),
            only_in_a: Vec::new(),
            only_in_b: Vec::new(),
            models: Vec::new(),
            by_task: Vec::new(),
        };
        for key in &keys {
            match (in_a.get(key), in_b.get(key)) {
                (Some(old), Some(new)) if old.verdict() == new.verdict() => {
                    comparison.unchanged += 1
                }
                (Some(old), Some(new)) => comparison.changed.push(Change {
                    key: Key::of(new),
                    old: old.verdict(),
                    new: new.verdict(),
                    direction: match (old.passed(), new.passed()) {
                        (true, false) => Direction::Regressed,
                        (false, true) => Direction::Improved,
                        _ => Direction::Changed,
                    },
                    reason: new.reason.to_string(),
                }),
                (Some(old), None) => comparison.only_in_a.push(Key::of(old)),
                (None, Some(new)) => comparison.only_in_b.push(Key::of(new)),
                (None, None) => {}
            }
        }
        let models: BTreeSet<&str> = keys.iter().map(|k| k.0).collect();
        let tasks: BTreeSet<&str> = keys.iter().map(|k| k.1).collect();
        for model in models {
            comparison
                .models
                .push(line(model, None, &in_a, &in_b, &keys));
            if tasks.len() > 1 {
                let mine: BTreeSet<&str> =
                    keys.iter().filter(|k| k.0 == model).map(|k| k.1).collect();
                for task in mine {
                    comparison
                        .by_task
                        .push(line(model, Some(task), &in_a, &in_b, &keys));
                }
            }
        }
        comparison
    }

    /// The models whose pass rate dropped by more than `threshold` (a
    /// share, 0.05 for five points), worst first.
    pub fn regressions(&self, threshold: f64) -> Vec<&Line> {
        let mut worse: Vec<&Line> = self
            .models
            .iter()
            .filter(|l| l.pass.delta.is_some_and(|d| d < -threshold - 1e-12))
            .collect();
        worse.sort_by(|x, y| {
            x.pass
                .delta
                .unwrap_or(0.0)
                .total_cmp(&y.pass.delta.unwrap_or(0.0))
        });
        worse
    }
}

fn index<'a>(run: &[Answer<'a>]) -> BTreeMap<KeyRef<'a>, Answer<'a>> {
    run.iter().map(|x| (x.key(), *x)).collect()
}

/// `run`'s judged answers among `keys` that pass `mine`.
fn judged<'a>(
    run: &BTreeMap<KeyRef<'a>, Answer<'a>>,
    keys: &[KeyRef<'a>],
    mine: impl Fn(&&KeyRef<'a>) -> bool,
) -> Vec<Answer<'a>> {
    keys.iter()
        .filter(mine)
        .filter_map(|k| run.get(k).copied())
        .filter(|x| x.judged())
        .collect()
}

/// The line of `model` (on `task`, or all its tasks).
fn line<'a>(
    model: &str,
    task: Option<&str>,
    in_a: &BTreeMap<KeyRef<'a>, Answer<'a>>,
    in_b: &BTreeMap<KeyRef<'a>, Answer<'a>>,
    keys: &[KeyRef<'a>],
) -> Line {
    let mine = |k: &&KeyRef<'a>| k.0 == model && task.is_none_or(|t| k.1 == t);
    let (a, b) = (judged(in_a, keys, mine), judged(in_b, keys, mine));
    let pairs: Vec<(Answer<'a>, Answer<'a>)> = keys
        .iter()
        .filter(mine)
        .filter_map(|k| Some((*in_a.get(k)?, *in_b.get(k)?)))
        .filter(|(x, y)| x.judged() && y.judged())
        .collect();
    let method = if a.is_empty() || b.is_empty() {
        Method::None
    } else if pairs.len() == a.len() && pairs.len() == b.len() {
        Method::PairedBootstrap
    } else {
        Method::Newcombe
    };
    let measure = |success: fn(&Answer<'_>) -> bool| {
        let paired: Vec<(bool, bool)> = pairs
            .iter()
            .map(|(x, y)| (success(x), success(y)))
            .collect();
        delta(
            Rate::of(a.iter().filter(|x| success(x)).count(), a.len()),
            Rate::of(b.iter().filter(|x| success(x)).count(), b.len()),
            &paired,
            method,
        )
    };
    Line {
        model: model.to_string(),
        task: task.map(String::from),
        n_a: a.len(),
        n_b: b.len(),
        paired: pairs.len(),
        method,
        pass: measure(|x: &Answer<'_>| x.passed()),
        tier1: measure(|x: &Answer<'_>| x.flawless()),
    }
}

fn delta(a: Rate, b: Rate, pairs: &[(bool, bool)], method: Method) -> Delta {
    let only_a = pairs.iter().filter(|&&(x, y)| x && !y).count();
    let only_b = pairs.iter().filter(|&&(x, y)| !x && y).count();
    let interval = match method {
        Method::PairedBootstrap => Some(paired_bootstrap(pairs, RESAMPLES, SEED)),
        Method::Newcombe => newcombe((a.successes, a.n), (b.successes, b.n)),
        Method::None => None,
    };
    Delta {
        delta: a.value.zip(b.value).map(|(a, b)| b - a),
        low: interval.map(|i| i.0),
        high: interval.map(|i| i.1),
        only_a,
        only_b,
        mcnemar_p: (!pairs.is_empty()).then(|| mcnemar_exact(only_a, only_b)),
        a,
        b,
    }
}

/// The 95% percentile interval of the change in share (B − A) over
/// `pairs` (success in A, success in B), from `resamples` resamples of
/// the pairs with replacement, drawn from `seed`.
pub fn paired_bootstrap(pairs: &[(bool, bool)], resamples: usize, seed: u64) -> (f64, f64) {
    let n = pairs.len();
    if n == 0 || resamples == 0 {
        return (0.0, 0.0);
    }
    // Only a pair's difference matters: -1, 0 or +1.
    let diffs: Vec<i64> = pairs.iter().map(|&(x, y)| y as i64 - x as i64).collect();
    let mut rng = SplitMix64(seed);
    let mut deltas: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: i64 = (0..n).map(|_| diffs[rng.below(n)]).sum();
            sum as f64 / n as f64
        })
        .collect();
    deltas.sort_by(f64::total_cmp);
    let cut = (resamples as f64 * 0.025) as usize;
    (deltas[cut], deltas[resamples - 1 - cut])
}

/// McNemar's exact test: the two-sided binomial p of `b` pairs that
/// succeeded only in A against `c` only in B (each 1/2 under no change),
/// min(1, 2 · P(X ≤ min(b, c))) for X ~ Binomial(b + c, 1/2).
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // In logs: 2^-n underflows past n = 1074.
    let mut ln_term = -(n as f64) * std::f64::consts::LN_2;
    let mut tail = 0.0;
    for i in 0..=b.min(c) {
        tail += ln_term.exp();
        ln_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    (2.0 * tail).min(1.0)
}

/// Newcombe's hybrid score interval (method 10 of Newcombe 1998) for the
/// change in share from `a` (successes, n) to `b`, from their Wilson
/// intervals; none when either n is 0.
pub fn newcombe(a: (usize, usize), b: (usize, usize)) -> Option<(f64, f64)> {
    let (l1, u1) = wilson(a.0, a.1)?;
    let (l2, u2) = wilson(b.0, b.1)?;
    let (p1, p2) = (a.0 as f64 / a.1 as f64, b.0 as f64 / b.1 as f64);
    let d = p2 - p1;
    let low = d - ((p2 - l2).powi(2) + (u1 - p1).powi(2)).sqrt();
    let high = d + ((u2 - p2).powi(2) + (p1 - l1).powi(2)).sqrt();
    Some((low.max(-1.0), high.min(1.0)))
}

/// SplitMix64 (Steele, Lea and Flood 2014): small, fast and the same on
/// every platform, which is all a reproducible bootstrap needs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (Lemire's multiply-shift; its bias is below 2^-40
    /// for any run's size).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests;
