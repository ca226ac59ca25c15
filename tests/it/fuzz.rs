//! Property tests: extraction and static grading never panic, whatever a
//! model (or an attacker) sends: arbitrary text, and fixture answers with
//! random bytes cut, repeated or replaced.

use proptest::prelude::*;

use crate::support::{fixture, prepared};

fn graded(answer: &str) {
    let prepared = prepared();
    if let Ok(extracted) = qtjudge::extract::extract(answer, Some(&prepared.task.original_source)) {
        let _ = qtjudge::static_grade::grade_with(&extracted.script, &prepared.index);
    }
    let _ = qtjudge::static_grade::grade_with(answer, &prepared.index);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(answer in "\\\\PC{0,2000}") {
        graded(&answer);
    }

    #[test]
    fn arbitrary_markdown_shapes_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("```python\\n".to_string()), Just("```\\n".to_string()), Just("~~~\\n".to_string()),
                Just("<think>".to_string()), Just("</think>".to_string()), Just("@@ -1 +1 @@\\n".to_string()),
                Just("    def f(self):\\n".to_string()), Just("class A(QMainWindow):\\n".to_string()),
                Just("# ... rest unchanged ...\\n".to_string()), "[ -~]{0,40}\\n",
            ],
            0..60,
        )
    ) {
        graded(&parts.concat());
    }

    #[test]
    fn mutated_fixture_answers_never_panic(cuts in proptest::collection::vec((0usize..40_000, 0usize..400, 0u8..3), 1..8)) {
        let mut answer = fixture("magistral.md").into_bytes();
        for (at, len, how) in cuts {
            let at = at % (answer.len() + 1);
            let end = (at + len).min(answer.len());
            match how {
                0 => { answer.drain(at..end); }
                1 => { let piece = answer[at..end].to_vec(); answer.splice(at..at, piece); }
                _ => { for b in &mut answer[at..end] { *b = b.wrapping_mul(31).wrapping_add(7); } }
            }
        }
        graded(&String::from_utf8_lossy(&answer));
    }
}

/// Inputs shaped to make a careless grader quadratic: many fences, deep
/// brackets on one line, one endless line, many definitions, unclosed
/// strings and `<think>` tags, stray backticks, a long diff.
fn pathological(kind: usize, size: usize) -> String {
    if kind == 8 {
        // A script whose last line opens brackets forever.
        return format!(
            "import sys\n\n\ndef main():\n    x = {}",
            "([{".repeat(size / 3)
        );
    }
    let unit = match kind {
        0 => "```python\nx = 1\n```\n",
        1 => "(((((((((([[[[[[[[[[{{{{{{{{{{",
        2 => "x = 1; ",
        3 => "class A(QMainWindow):\n    def f(self):\n        self.a.b.c(d, e)\n",
        4 => "s = '''unclosed \" ' \\\n",
        5 => "<think>```python\ndef f(:\n",
        6 => "a = `b` $ c\n",
        _ => "@@ -1,3 +1,4 @@\n-old\n+new\n context\n",
    };
    unit.repeat(size / unit.len() + 1)
}

/// What `verify` does before any container: extraction, then static
/// grading of the script extracted.
fn static_stage(answer: &str) -> std::time::Duration {
    let prepared = prepared();
    // The best of three: one slow run under load is the machine, not us.
    (0..3)
        .map(|_| {
            let started = std::time::Instant::now();
            if let Ok(e) = qtjudge::extract::extract(answer, Some(&prepared.task.original_source)) {
                let _ = qtjudge::static_grade::grade_with(&e.script, &prepared.index);
            }
            started.elapsed()
        })
        .min()
        .unwrap()
}

/// Extraction and static grading stay linear in the answer's size: 16
/// times the input may cost at most 48 times the time (a quadratic step
/// would cost 256 times). A ratio, not a speed target: the benchmark
/// measures speed.
#[test]
fn grading_time_grows_linearly_with_the_answer() {
    let small = 24 * 1024;
    let mut slow = Vec::new();
    for kind in 0..9 {
        let base = static_stage(&pathological(kind, small));
        let big = static_stage(&pathological(kind, small * 16));
        // Below a millisecond, timer noise dominates the ratio.
        let floor = std::time::Duration::from_millis(1);
        let ratio = big.as_secs_f64() / base.max(floor).as_secs_f64();
        eprintln!("shape {kind}: {base:?} for 24 KiB, {big:?} for 384 KiB ({ratio:.1}×)");
        if ratio > 48.0 {
            slow.push(format!(
                "shape {kind}: {ratio:.0}× the time for 16× the input"
            ));
        }
    }
    assert!(slow.is_empty(), "superlinear grading: {slow:?}");
}
