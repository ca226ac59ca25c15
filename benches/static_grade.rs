//! Static grading throughput: extraction + tree-sitter grading of a ~20 KB
//! answer on one core. Prints answers per second (run by `scripts/bench`).

use std::time::{Duration, Instant};

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let task = qtjudge::task::Task::load(&root.join("fixtures/tasks"), "reset-conversation")
        .expect("task loads");
    let answer =
        std::fs::read_to_string(root.join("fixtures/outputs/reset-conversation/deepseek-r1.md"))
            .expect("fixture");
    // Pad to about 20 KB with a realistic prose preamble, as long answers have.
    let mut padded = String::new();
    while padded.len() + answer.len() < 20_000 {
        padded.push_str("Here is what changes and why: the reset button is added under Submit and clears the history.\n");
    }
    padded.push_str(&answer);
    let index = qtjudge::static_grade::OriginalIndex::new(&task);
    let run = Duration::from_secs(3);
    let started = Instant::now();
    let mut answers = 0u64;
    while started.elapsed() < run {
        let extracted =
            qtjudge::extract::extract(&padded, Some(&task.original_source)).expect("code found");
        let report = qtjudge::static_grade::grade_with(&extracted.script, &index);
        assert!(!report.is_snippet());
        answers += 1;
    }
    let per_second = answers as f64 / started.elapsed().as_secs_f64();
    // Where the time goes: parsing alone, for the same script.
    let script = qtjudge::extract::extract(&padded, Some(&task.original_source))
        .expect("code found")
        .script;
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("grammar loads");
    let parse_started = Instant::now();
    let mut parses = 0u64;
    while parse_started.elapsed() < Duration::from_secs(1) {
        parser.parse(&script, None).expect("a tree");
        parses += 1;
    }
    let parse_ms = parse_started.elapsed().as_secs_f64() * 1000.0 / parses as f64;
    println!(
        "tree-sitter parse alone: {parse_ms:.2} ms for the {} byte script",
        script.len()
    );
    println!("static grading: {} bytes per answer, {answers} answers in {:.1} s, {per_second:.0} answers/s (one core)", padded.len(), started.elapsed().as_secs_f64());
}
