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
