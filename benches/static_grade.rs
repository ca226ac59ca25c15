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
    let index = qtjudge::grading::static_grade::OriginalIndex::new(&task);
    // A fixed number of answers and nothing else, for instruction counts
    // (`valgrind --tool=callgrind`), which a timed loop would blur.
    if let Some(calls) = std::env::var("QTJUDGE_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        for _ in 0..calls {
            let extracted =
                qtjudge::grading::extract::extract(&padded, Some(&task.original_source))
                    .expect("code found");
            qtjudge::grading::static_grade::grade_with(&extracted.script, &index);
        }
        println!("{calls} answers extracted and graded");
        return;
    }
    let run = Duration::from_secs(3);
    let started = Instant::now();
    let mut answers = 0u64;
    while started.elapsed() < run {
        let extracted = qtjudge::grading::extract::extract(&padded, Some(&task.original_source))
            .expect("code found");
        let report = qtjudge::grading::static_grade::grade_with(&extracted.script, &index);
        assert!(!report.is_snippet());
        answers += 1;
    }
    let took = started.elapsed().as_secs_f64();
    let per_second = answers as f64 / took;
    // Where the time goes: each stage alone, for the same answer.
    let script = qtjudge::grading::extract::extract(&padded, Some(&task.original_source))
        .expect("code found")
        .script;
    let extract_ms = per_call_ms(|| {
        qtjudge::grading::extract::extract(&padded, Some(&task.original_source))
            .expect("code found");
    });
    let grade_ms = per_call_ms(|| {
        qtjudge::grading::static_grade::grade_with(&script, &index);
    });
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("grammar loads");
    let parse_ms = per_call_ms(|| {
        parser.parse(&script, None).expect("a tree");
    });
    println!(
        "per answer: extract {extract_ms:.3} ms, static_grade {grade_ms:.3} ms (a fresh tree-sitter parse alone: {parse_ms:.3} ms for the {} byte script)",
        script.len()
    );
    println!("static grading: {} bytes per answer, {answers} answers in {took:.1} s, {per_second:.0} answers/s (one core)", padded.len());
    hostile_sizes(&task, &index);
}

/// The worst cases a hostile answer can make of each stage: they must stay
/// in seconds, not minutes.
fn hostile_sizes(
    task: &qtjudge::task::Task,
    index: &qtjudge::grading::static_grade::OriginalIndex,
) {
    let mut methods = String::from("Here it is:\n```python\n");
    for i in 0..20_000 {
        methods.push_str(&format!("    def method_{i}(self):\n        return {i}\n"));
    }
    methods.push_str("```\n");
    let started = Instant::now();
    qtjudge::grading::extract::extract(&methods, Some(&task.original_source)).expect("code found");
    println!(
        "hostile: extracting a {} byte answer of 20,000 methods took {:.0} ms",
        methods.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let mut buttons = task.original_source.clone();
    for i in 0..3000 {
        buttons.push_str(&format!(
            "b{i} = QPushButton(\"Reset\")\nb{i}.clicked.connect(f)\nlayout.addWidget(b{i})\n"
        ));
    }
    let started = Instant::now();
    qtjudge::grading::static_grade::grade_with(&buttons, index);
    println!(
        "hostile: grading a {} byte script of 3,000 reset buttons took {:.0} ms",
        buttons.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
}

/// Milliseconds per call of `f`, over about half a second.
fn per_call_ms(mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < Duration::from_millis(500) {
        f();
        calls += 1;
    }
    started.elapsed().as_secs_f64() * 1000.0 / calls as f64
}
