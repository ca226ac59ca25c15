//! The comparison's statistics on cases small enough to check on paper,
//! and the matching of two runs' answers.

use super::*;

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 5e-5, "got {got}, want {want}");
}

/// By hand: n = b + c discordant pairs, p = 2 · Σ_{i ≤ min(b,c)} C(n,i) / 2^n.
#[test]
fn mcnemar_exact_matches_the_binomial_by_hand() {
    // 2 · 1/32
    close(mcnemar_exact(0, 5), 0.0625);
    close(mcnemar_exact(5, 0), 0.0625);
    // 2 · (1 + 5)/32
    close(mcnemar_exact(1, 4), 0.375);
    // 2 · (1 + 10 + 45)/1024
    close(mcnemar_exact(2, 8), 0.109_375);
    // 2 · 42/64 > 1: capped
    assert_eq!(mcnemar_exact(3, 3), 1.0);
    assert_eq!(mcnemar_exact(0, 0), 1.0, "no discordant pair: no evidence");
    // Far past 2^-1074 the logs keep it finite (and tiny).
    let p = mcnemar_exact(0, 2000);
    assert!((0.0..1e-300).contains(&p), "{p}");
}

/// Newcombe (1998), table II example (a): 56/70 against 48/80, method 10
/// gives 0.0524 to 0.3339; and two cases from the Wilson bounds by hand:
/// 0/10 → 10/10 is 1 − √2 · 0.27753 up to 1; 5/10 → 5/10 is 0 ± √2 · 0.26341.
#[test]
fn newcombe_matches_the_published_example_and_hand_cases() {
    let (low, high) = newcombe((48, 80), (56, 70)).unwrap();
    close(low, 0.052_43);
    close(high, 0.333_87);
    let (low, high) = newcombe((0, 10), (10, 10)).unwrap();
    close(low, 0.607_51);
    close(high, 1.0);
    let (low, high) = newcombe((5, 10), (5, 10)).unwrap();
    close(low, -0.372_51);
    close(high, 0.372_51);
    assert_eq!(newcombe((0, 0), (1, 1)), None);
}

/// Pairs that all agree resample to no change at all; pairs that all
/// regress to −1 exactly; one regression among 10 pairs: a resample's
/// change is −X/10 with X ~ Binomial(10, 0.1), P(X = 0) = 0.349 so the
/// upper bound is 0, and P(X ≥ 4) = 0.013 < 2.5% < P(X ≥ 3) = 0.070 so
/// the lower bound is −0.3.
#[test]
fn the_paired_bootstrap_gives_the_hand_computed_bounds() {
    let same = [(true, true), (false, false), (true, true)];
    assert_eq!(paired_bootstrap(&same, RESAMPLES, SEED), (0.0, 0.0));
    let worse = [(true, false); 4];
    assert_eq!(paired_bootstrap(&worse, RESAMPLES, SEED), (-1.0, -1.0));
    let mut one = vec![(true, true); 9];
    one.push((true, false));
    let (low, high) = paired_bootstrap(&one, RESAMPLES, SEED);
    close(low, -0.3);
    close(high, 0.0);
    assert_eq!(
        paired_bootstrap(&one, RESAMPLES, SEED),
        (low, high),
        "the same seed, the same interval"
    );
    assert_eq!(paired_bootstrap(&[], RESAMPLES, SEED), (0.0, 0.0));
}

fn answer<'a>(model: &'a str, task: &'a str, sample: &'a str, tier: u8) -> Answer<'a> {
    let (label, failure) = match tier {
        1 => (Label::Flawless, None),
        2 => (Label::UnrequestedChanges, None),
        3 => (Label::Fail, Some(FailureCode::Snippet)),
        _ => (Label::Error, None),
    };
    Answer {
        model,
        task,
        sample: Some(sample),
        label,
        failure,
        reason: "why",
    }
}

/// Ten samples of a model graded twice, one going from tier 1 to tier 3:
/// exactly that answer changed, the pass rate drops by 10 points with the
/// bootstrap's [−30, 0] points, McNemar's p = 1 (one discordant pair), and
/// the drop is a regression past 5 points but not past 10.
#[test]
fn one_changed_answer_is_named_and_its_drop_measured() {
    let samples: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    let a: Vec<Answer> = samples.iter().map(|s| answer("m", "t", s, 1)).collect();
    let mut b = a.clone();
    b[9] = answer("m", "t", &samples[9], 3);
    b[9].reason = "a snippet";
    let c = Comparison::of(&a, &b);
    assert_eq!(c.unchanged, 9);
    assert_eq!(c.changed.len(), 1);
    let change = &c.changed[0];
    assert_eq!(change.key.name(), "m #10 [t]");
    assert_eq!(change.old.to_string(), "1 flawless");
    assert_eq!(change.new.to_string(), "3 snippet");
    assert_eq!(change.direction, Direction::Regressed);
    assert_eq!(change.reason, "a snippet");
    assert!(c.only_in_a.is_empty() && c.only_in_b.is_empty() && c.by_task.is_empty());
    let line = &c.models[0];
    assert_eq!((line.n_a, line.n_b, line.paired), (10, 10, 10));
    assert_eq!(line.method, Method::PairedBootstrap);
    close(line.pass.delta.unwrap(), -0.1);
    close(line.pass.low.unwrap(), -0.3);
    close(line.pass.high.unwrap(), 0.0);
    assert_eq!((line.pass.only_a, line.pass.only_b), (1, 0));
    assert_eq!(line.pass.mcnemar_p, Some(1.0));
    close(line.tier1.delta.unwrap(), -0.1);
    assert_eq!(c.regressions(0.05).len(), 1);
    assert!(
        c.regressions(0.1).is_empty(),
        "a drop of exactly 0.1 is not more than 0.1"
    );
    assert!(
        Comparison::of(&b, &a).regressions(0.0).is_empty(),
        "an improvement"
    );
}

/// Answers only in one run are listed and make the line unpaired
/// (Newcombe's interval); answers not judged are out of n but a change to
/// or from not judged is still a changed verdict; several tasks give a
/// model × task line each.
#[test]
fn unpaired_runs_and_several_tasks() {
    let a = [
        answer("m", "t1", "1", 1),
        answer("m", "t1", "2", 3),
        answer("m", "t2", "1", 2),
        answer("n", "t1", "1", 0),
        answer("n", "t1", "9", 3),
    ];
    let b = [
        answer("m", "t1", "1", 1),
        answer("m", "t1", "2", 3),
        answer("m", "t2", "1", 2),
        answer("m", "t2", "2", 1),
        answer("n", "t1", "1", 1),
    ];
    let c = Comparison::of(&a, &b);
    assert_eq!(c.unchanged, 3);
    let changed: Vec<String> = c.changed.iter().map(|x| x.key.name()).collect();
    assert_eq!(changed, ["n #1 [t1]"]);
    assert_eq!(c.changed[0].old.to_string(), "- not judged");
    assert_eq!(c.changed[0].direction, Direction::Improved);
    assert_eq!(
        c.only_in_a.iter().map(Key::name).collect::<Vec<_>>(),
        ["n #9 [t1]"]
    );
    assert_eq!(
        c.only_in_b.iter().map(Key::name).collect::<Vec<_>>(),
        ["m #2 [t2]"]
    );
    let m = &c.models[0];
    assert_eq!((m.model.as_str(), m.n_a, m.n_b, m.paired), ("m", 3, 4, 3));
    assert_eq!(m.method, Method::Newcombe);
    // 2/3 → 3/4
    close(m.pass.delta.unwrap(), 0.75 - 2.0 / 3.0);
    let (low, high) = newcombe((2, 3), (3, 4)).unwrap();
    assert_eq!((m.pass.low, m.pass.high), (Some(low), Some(high)));
    // n: a's sample 1 not judged, so 1 judged in A and 1 in B, none paired.
    let n = &c.models[1];
    assert_eq!(
        (n.n_a, n.n_b, n.paired, n.method),
        (1, 1, 0, Method::Newcombe)
    );
    assert_eq!(n.pass.mcnemar_p, None, "no pairs");
    let lines: Vec<(&str, Option<&str>, Method)> = c
        .by_task
        .iter()
        .map(|l| (l.model.as_str(), l.task.as_deref(), l.method))
        .collect();
    assert_eq!(
        lines,
        [
            ("m", Some("t1"), Method::PairedBootstrap),
            ("m", Some("t2"), Method::Newcombe),
            ("n", Some("t1"), Method::Newcombe),
        ]
    );
    // A model only in one run has no change to speak of.
    let gone = Comparison::of(&a[..1], &[]);
    assert_eq!(gone.models[0].method, Method::None);
    assert_eq!(gone.models[0].pass.delta, None);
    assert!(gone.regressions(0.0).is_empty());
}
