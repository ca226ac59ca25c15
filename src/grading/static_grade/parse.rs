//! Parsing: one tree-sitter parser per thread, under a work limit, and
//! incremental from the original's tree (an answer is mostly the original
//! with a few edits, so only the subtrees around them are parsed again).

use std::cell::RefCell;

use tree_sitter::{Parser, Tree};

thread_local! {
    /// One parser per thread: creating one per grade costs more than the grade.
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Parses `source`; with `base` (a text and its tree), incrementally: each
/// changed run of lines becomes one edit of the old tree, so only the
/// subtrees around the changes are re-parsed. Tree-sitter guarantees the
/// result is the tree a fresh parse gives.
pub(super) fn parse(source: &str, base: Option<(&str, &Tree)>) -> Option<Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_python::LANGUAGE.into())
                .ok()?;
            *slot = Some(parser);
        }
        let parser = slot.as_mut()?;
        let Some((old_text, old_tree)) = base else {
            return budgeted_parse(parser, source, None, PARSE_WORK_LIMIT);
        };
        let mut tree = old_tree.clone();
        for edit in line_edits(old_text, source) {
            tree.edit(&edit);
        }
        budgeted_parse(parser, source, Some(&tree), PARSE_WORK_LIMIT)
    })
}

/// The same tree, re-parsed from itself until tree-sitter can reuse it
/// whole: a fresh parse leaves nodes that an incremental parse re-lexes
/// (reparsing the original's own text costs 0.18 ms from its fresh tree,
/// 0.01 ms from this one), and every answer is parsed from the original's
/// tree. Tree-sitter guarantees each re-parse is the tree a fresh parse
/// gives.
pub(super) fn settle(source: &str, fresh: Tree) -> Tree {
    let mut tree = fresh;
    for _ in 0..2 {
        match parse(source, Some((source, &tree))) {
            Some(again) => tree = again,
            None => break,
        }
    }
    tree
}

/// Most work a parse may do, in tree-sitter's progress checks (one per
/// hundred parser operations). A 12 KB answer takes ~100, 5 MB of prose
/// ~50,000 (seconds; `parse_work_figures` prints them); tree-sitter's error recovery can turn quadratic
/// on text that is nothing like Python (thousands of Markdown fences inside
/// a block), and a hostile answer must not hold a grading thread for
/// minutes. Past the limit the text is graded as one the parser gave up on.
///
/// Counted in work, not wall-clock time: the same answer must get the same
/// report on an idle machine and on one under load.
const PARSE_WORK_LIMIT: u64 = 100_000;

/// A backstop against a pathological case the work count misses; no input
/// we know of comes near it.
const PARSE_TIME_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(60);

fn budgeted_parse(
    parser: &mut Parser,
    source: &str,
    old_tree: Option<&Tree>,
    work_limit: u64,
) -> Option<Tree> {
    let started = std::time::Instant::now();
    let mut checks: u64 = 0;
    let mut over_budget = |_: &tree_sitter::ParseState| {
        checks += 1;
        checks > work_limit || started.elapsed() > PARSE_TIME_BACKSTOP
    };
    let options = tree_sitter::ParseOptions::new().progress_callback(&mut over_budget);
    let bytes = source.as_bytes();
    let tree = parser.parse_with_options(
        &mut |at, _| bytes.get(at..).unwrap_or_default(),
        old_tree,
        Some(options),
    );
    if tree.is_none() {
        // A cancelled parse would otherwise be resumed by the next one.
        parser.reset();
        tracing::warn!(
            bytes = source.len(),
            "the parser gave up on an answer after {work_limit} units of work"
        );
    }
    tree
}

/// Longest time spent diffing before settling for a coarser (still
/// correct) set of edits: a hostile answer must not make grading slow. A
/// coarser set costs the parser more work, so a deadline that real answers
/// reach on a busy host would make grading depend on the load: typical
/// answers diff in well under a millisecond, ten times under this.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(50);

/// The edits that turn `old` into `new`, one per changed run of lines,
/// last first: applied in that order, each edit's positions are still
/// those of `old`, since nothing before it has moved yet.
fn line_edits(old: &str, new: &str) -> Vec<tree_sitter::InputEdit> {
    let old_starts = line_starts(old);
    let new_starts = line_starts(new);
    let (old_lines, new_lines) = (lines(old, &old_starts), lines(new, &new_starts));
    let ops = similar::capture_diff_slices_deadline(
        similar::Algorithm::Myers,
        &old_lines,
        &new_lines,
        Some(std::time::Instant::now() + DIFF_DEADLINE),
    );
    let mut edits = Vec::new();
    for op in &ops {
        let (tag, old_lines, new_lines) = op.as_tag_tuple();
        if tag == similar::DiffTag::Equal {
            continue;
        }
        let start_byte = old_starts[old_lines.start];
        let old_end_byte = old_starts[old_lines.end];
        let inserted = &new[new_starts[new_lines.start]..new_starts[new_lines.end]];
        let start_position = tree_sitter::Point {
            row: old_lines.start,
            column: 0,
        };
        edits.push(tree_sitter::InputEdit {
            start_byte,
            old_end_byte,
            new_end_byte: start_byte + inserted.len(),
            start_position,
            old_end_position: point_after(start_position, &old[start_byte..old_end_byte]),
            new_end_position: point_after(start_position, inserted),
        });
    }
    edits.reverse();
    edits
}

/// Byte offsets where each line starts, and the text's end (so line `n`
/// spans `starts[n]..starts[n + 1]`, whether or not the text ends in `\n`).
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    // A byte loop here was a twentieth of grading.
    starts.extend(
        memchr::memchr_iter(b'\n', text.as_bytes())
            .map(|i| i + 1)
            .filter(|&i| i < text.len()),
    );
    starts.push(text.len());
    starts
}

fn lines<'t>(text: &'t str, starts: &[usize]) -> Vec<&'t str> {
    starts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

/// The position reached from `start` after `text`.
fn point_after(start: tree_sitter::Point, text: &str) -> tree_sitter::Point {
    match text.rfind('\n') {
        Some(last) => tree_sitter::Point {
            row: start.row + text.bytes().filter(|b| *b == b'\n').count(),
            column: text.len() - last - 1,
        },
        None => tree_sitter::Point {
            row: start.row,
            column: start.column + text.len(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Incremental parsing must give exactly the tree a fresh parse gives,
    /// for every real answer and hostile input we have, and for edits at
    /// the very start and end and of a text with no final newline.
    #[test]
    fn incremental_parses_equal_fresh_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let original =
            std::fs::read_to_string(root.join("fixtures/tasks/reset-conversation/original.py"))
                .unwrap();
        let base = parse(&original, None).unwrap();
        let mut candidates = vec![
            String::new(),
            format!("# header\n{original}"),
            format!("{original}\nprint('tail')"),
            original.trim_end().to_string(),
            original.replace("\n", "\r\n"),
            original.replacen("class ", "klass ", 1),
        ];
        for dir in ["fixtures/outputs/reset-conversation", "fixtures/hostile"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
                let bytes = std::fs::read(entry.path()).unwrap();
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Ok(e) = crate::grading::extract::extract(&text, Some(&original)) {
                    candidates.push(e.script);
                }
                // Megabytes of prose parsed as Python only measure the
                // parser's work limit (`PARSE_WORK_LIMIT`), not the trees.
                if text.len() <= 256 * 1024 {
                    candidates.push(text);
                }
            }
        }
        assert!(candidates.len() > 40);
        for candidate in &candidates {
            let fresh = parse(candidate, None).unwrap().root_node().to_sexp();
            let incremental = parse(candidate, Some((&original, &base)))
                .unwrap()
                .root_node()
                .to_sexp();
            assert_eq!(
                fresh,
                incremental,
                "incremental parse differs for {:?}",
                candidate.chars().take(80).collect::<String>()
            );
        }
    }

    /// The work limit, not the clock, decides: a text past it is given up
    /// on every time, however fast the machine, and one inside it never.
    #[test]
    fn the_parse_limit_counts_work_not_time() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let answer = std::fs::read_to_string(
            root.join("fixtures/outputs/reset-conversation/deepseek-r1.md"),
        )
        .unwrap();
        let mut parser = Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .unwrap();
        // The answer takes about a hundred units of work.
        for _ in 0..3 {
            assert!(budgeted_parse(&mut parser, &answer, None, 10).is_none());
            assert!(budgeted_parse(&mut parser, &answer, None, 10_000).is_some());
        }
    }

    /// Prints the work and time each fixture's parse takes, to set
    /// `PARSE_WORK_LIMIT`: `cargo test --release --lib parse_work_figures -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints figures for calibration"]
    fn parse_work_figures() {
        /// The progress checks one whole parse makes, and its time (a
        /// parse still running after 30 s is stopped: the figure is then
        /// a floor).
        fn work(text: &str) -> (u64, std::time::Duration) {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_python::LANGUAGE.into())
                .unwrap();
            let started = std::time::Instant::now();
            let mut checks: u64 = 0;
            let mut count = |_: &tree_sitter::ParseState| {
                checks += 1;
                started.elapsed().as_secs() > 30
            };
            let options = tree_sitter::ParseOptions::new().progress_callback(&mut count);
            let bytes = text.as_bytes();
            parser.parse_with_options(
                &mut |at, _| bytes.get(at..).unwrap_or_default(),
                None,
                Some(options),
            );
            (checks, started.elapsed())
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut rows = Vec::new();
        for dir in [
            "fixtures/outputs/reset-conversation",
            "fixtures/hostile",
            "fixtures/apps",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let (checks, took) = work(&text);
                rows.push((checks, took, text.len(), entry.path()));
            }
        }
        let mut fences = String::from("def f():\n");
        for i in 0..5000 {
            fences.push_str(&format!("    ```python\n    x{i} = [\n    ```\n"));
        }
        let brackets = "(".repeat(200_000);
        let mixed = "if x:\n  ]) else: (\n".repeat(50_000);
        for (name, text) in [("fences", fences), ("brackets", brackets), ("mixed", mixed)] {
            let (checks, took) = work(&text);
            rows.push((checks, took, text.len(), name.into()));
        }
        rows.sort();
        for (checks, took, len, path) in rows.iter().rev().take(12) {
            println!(
                "{checks:>10} checks {took:>12.3?} {len:>9} B {}",
                path.display()
            );
        }
    }
}
