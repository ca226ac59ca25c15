//! Incremental reuse of the original's facts: the original's walk records
//! what each function, and each statement of a function's body, added to
//! its facts ([`FunctionSpan`]); an answer's walk takes those facts, moved
//! to where the same text stands, instead of walking that text again. The
//! facts are those a full walk gives (`reused_facts_equal_a_full_walk`).

use std::collections::HashSet;

use tree_sitter::Node;

use super::{Collector, ScopeEntry};
use crate::grading::static_grade::facts::{
    Connection, Control, Facts, Finding, FunctionFacts, ImportFacts, LayoutCreation, Placement,
    Statement,
};
use crate::grading::static_grade::grammar::{is_ellipsis_statement, kinds, line_of};

/// Whether the walk reuses an earlier walk's facts.
#[derive(Clone, Copy)]
pub(in crate::grading::static_grade) enum Reuse<'o> {
    /// Every node is walked.
    Nothing,
    /// Every node is walked, and what each function yields is kept
    /// ([`Facts::spans`]): the original's walk.
    Record,
    /// A function whose text is that of the original's function of the
    /// same name takes the original's facts, moved to where it stands,
    /// instead of being walked: the original's facts and its source.
    From(&'o Facts, &'o str),
}

/// What the walk of one function (a module-level function or a method of
/// a module-level class) added to the [`Facts`]: everything it yields
/// depends only on its own text, its name and its class, as long as the
/// tree has no syntax error.
#[derive(Debug, Default)]
pub(in crate::grading::static_grade) struct FunctionSpan {
    /// The function's node in its source: bytes, 1-based line, column.
    pub(super) start_byte: usize,
    pub(super) end_byte: usize,
    pub(super) line: usize,
    pub(super) column: usize,
    /// What it added to each list of the facts.
    pub(super) added: Marks,
    /// Every finding made inside, kept or not: which ones are kept
    /// depends on the findings before it ([`Collector::finding`]).
    pub(super) findings: Vec<Finding>,
    /// Every name used inside, once.
    pub(super) names: Vec<String>,
    /// Its body's statements, each walked on its own: a changed function
    /// is mostly statements the original has, word for word.
    pub(super) statements: Vec<StatementSpan>,
}

/// What the walk of one statement of a recorded function's body added,
/// like [`FunctionSpan`] for a function: it depends only on the
/// statement's text and the function it is in. (An `...` statement is the
/// exception, since whether it is lone depends on its siblings: those are
/// always walked.)
#[derive(Debug, Default)]
pub(super) struct StatementSpan {
    pub(super) start_byte: usize,
    pub(super) end_byte: usize,
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) added: Marks,
    /// What it added to its function's `clears` and `self_calls`.
    pub(super) clears: std::ops::Range<usize>,
    pub(super) self_calls: std::ops::Range<usize>,
    pub(super) findings: Vec<Finding>,
    pub(super) names: Vec<String>,
}

/// Lengths of the facts' lists, or ranges of them.
#[derive(Debug, Default, Clone)]
pub(super) struct Marks {
    functions: std::ops::Range<usize>,
    imports: std::ops::Range<usize>,
    placements: std::ops::Range<usize>,
    layouts: std::ops::Range<usize>,
    controls: std::ops::Range<usize>,
    connections: std::ops::Range<usize>,
    labels: std::ops::Range<usize>,
    dialogs: std::ops::Range<usize>,
    comments: std::ops::Range<usize>,
    lone_ellipses: std::ops::Range<usize>,
}

impl Marks {
    /// Empty ranges at the current end of every list.
    fn at_end_of(facts: &Facts) -> Marks {
        let at = |len: usize| len..len;
        Marks {
            functions: at(facts.functions.len()),
            imports: at(facts.imports.len()),
            placements: at(facts.placements.len()),
            layouts: at(facts.layouts.len()),
            controls: at(facts.controls.len()),
            connections: at(facts.connections.len()),
            labels: at(facts.labels.len()),
            dialogs: at(facts.dialogs.len()),
            comments: at(facts.comments.len()),
            lone_ellipses: at(facts.lone_ellipses.len()),
        }
    }

    /// These ranges, extended to the current end of every list.
    fn until_end_of(&self, facts: &Facts) -> Marks {
        let to = |r: &std::ops::Range<usize>, len: usize| r.start..len;
        Marks {
            functions: to(&self.functions, facts.functions.len()),
            imports: to(&self.imports, facts.imports.len()),
            placements: to(&self.placements, facts.placements.len()),
            layouts: to(&self.layouts, facts.layouts.len()),
            controls: to(&self.controls, facts.controls.len()),
            connections: to(&self.connections, facts.connections.len()),
            labels: to(&self.labels, facts.labels.len()),
            dialogs: to(&self.dialogs, facts.dialogs.len()),
            comments: to(&self.comments, facts.comments.len()),
            lone_ellipses: to(&self.lone_ellipses, facts.lone_ellipses.len()),
        }
    }
}

impl FunctionFacts {
    /// The same function `lines` lines and `bytes` bytes further down.
    fn moved(&self, lines: isize, bytes: isize) -> FunctionFacts {
        FunctionFacts {
            qualname: self.qualname.clone(),
            class: self.class.clone(),
            name: self.name.clone(),
            line: self.line.saturating_add_signed(lines),
            end_line: self.end_line.saturating_add_signed(lines),
            broken: self.broken,
            summary: self.summary.clone(),
            stub: self.stub,
            clears: self.clears.clone(),
            self_calls: self.self_calls.clone(),
            statements: self
                .statements
                .iter()
                .map(|s| Statement {
                    normalised: s.normalised.clone(),
                    line: s.line.saturating_add_signed(lines),
                    start: s.start.saturating_add_signed(bytes),
                    end: s.end.saturating_add_signed(bytes),
                })
                .collect(),
        }
    }
}

impl Collector<'_, '_> {
    pub(super) fn start_recording(&mut self, depth: usize, qualname: &str, node: Node) {
        let span = FunctionSpan {
            start_byte: node.start_byte(),
            end_byte: node.end_byte(),
            line: line_of(node),
            column: node.start_position().column,
            added: Marks::at_end_of(&self.facts),
            ..FunctionSpan::default()
        };
        self.recording = Some((depth, qualname.to_string(), span, HashSet::new()));
    }

    /// Closes the function being recorded, once the walk has left it.
    pub(super) fn end_recording(&mut self) {
        self.end_statement_recording();
        if let Some((_, qualname, mut span, names)) = self.recording.take() {
            span.added = span.added.until_end_of(&self.facts);
            span.names = names.into_iter().collect();
            self.facts.spans.entry(qualname).or_default().push(span);
        }
    }

    /// With [`Reuse::From`]: when the original has a function of this
    /// qualname with exactly this text, adds the facts its walk added,
    /// moved to where this one stands, and returns true.
    pub(super) fn replay(&mut self, qualname: &str, node: Node) -> bool {
        let Reuse::From(original, original_source) = self.reuse else {
            return false;
        };
        let text = self.text(node);
        let column = node.start_position().column;
        let Some(span) = original.spans.get(qualname).and_then(|spans| {
            spans.iter().find(|span| {
                span.column == column
                    && original_source.get(span.start_byte..span.end_byte) == Some(text)
            })
        }) else {
            return false;
        };
        let lines = line_of(node) as isize - span.line as isize;
        let bytes = node.start_byte() as isize - span.start_byte as isize;
        self.take_facts(original, &span.added, lines, bytes);
        self.take_names_and_findings(&span.names, &span.findings, lines);
        self.facts.reused += 1;
        true
    }

    /// Adds the facts in `added` of the original's lists, moved `lines`
    /// lines and `bytes` bytes.
    fn take_facts(&mut self, original: &Facts, added: &Marks, lines: isize, bytes: isize) {
        let line = |at: usize| at.saturating_add_signed(lines);
        let facts = &mut self.facts;
        facts.functions.extend(
            original.functions[added.functions.clone()]
                .iter()
                .map(|f| f.moved(lines, bytes)),
        );
        facts.imports.extend(
            original.imports[added.imports.clone()]
                .iter()
                .map(|i| ImportFacts {
                    line: line(i.line),
                    ..i.clone()
                }),
        );
        facts.placements.extend(
            original.placements[added.placements.clone()]
                .iter()
                .map(|p| Placement {
                    line: line(p.line),
                    ..p.clone()
                }),
        );
        facts
            .layouts
            .extend(
                original.layouts[added.layouts.clone()]
                    .iter()
                    .map(|l| LayoutCreation {
                        line: line(l.line),
                        ..l.clone()
                    }),
            );
        facts.controls.extend(
            original.controls[added.controls.clone()]
                .iter()
                .map(|c| Control {
                    line: line(c.line),
                    ..c.clone()
                }),
        );
        facts.connections.extend(
            original.connections[added.connections.clone()]
                .iter()
                .map(|c| Connection {
                    line: line(c.line),
                    ..c.clone()
                }),
        );
        facts
            .labels
            .extend_from_slice(&original.labels[added.labels.clone()]);
        facts.dialogs.extend(
            original.dialogs[added.dialogs.clone()]
                .iter()
                .map(|(callee, at)| (callee.clone(), line(*at))),
        );
        facts.comments.extend(
            original.comments[added.comments.clone()]
                .iter()
                .map(|(text, at)| (text.clone(), line(*at))),
        );
        facts.lone_ellipses.extend(
            original.lone_ellipses[added.lone_ellipses.clone()]
                .iter()
                .map(|at| line(*at)),
        );
    }

    /// Adds names used and findings made in the original, moved `lines` lines.
    fn take_names_and_findings(&mut self, names: &[String], findings: &[Finding], lines: isize) {
        let line = |at: usize| at.saturating_add_signed(lines);
        let facts = &mut self.facts;
        for name in names {
            if !facts.used_names.contains(name) {
                facts.used_names.insert(name.clone());
            }
        }
        for finding in findings {
            self.finding(finding.key, finding.detail.clone(), line(finding.line));
        }
    }

    /// Whether `node` is a statement of the body of the module-level
    /// function or method being walked, other than an `...` (see
    /// [`StatementSpan`]).
    pub(super) fn is_body_statement(&self, node: Node, parent: Option<Node>, depth: usize) -> bool {
        let kinds = kinds();
        let in_function = matches!(
            self.scopes.last(),
            Some((at, ScopeEntry::Function { index: Some(_), .. })) if at + 2 == depth
        );
        in_function
            && parent.is_some_and(|p| p.kind_id() == kinds.block)
            && !(node.kind_id() == kinds.expression_statement
                && is_ellipsis_statement(self.source, node))
    }

    pub(super) fn start_statement_recording(&mut self, depth: usize, node: Node) {
        let Some((
            _,
            ScopeEntry::Function {
                index: Some(index), ..
            },
        )) = self.scopes.last()
        else {
            return;
        };
        // Facts read around a syntax error are not the statement's own.
        if self.facts.has_error {
            return;
        }
        let index = *index;
        let function = &self.facts.functions[index];
        let (clears, self_calls) = (function.clears.len(), function.self_calls.len());
        let span = StatementSpan {
            start_byte: node.start_byte(),
            end_byte: node.end_byte(),
            line: line_of(node),
            column: node.start_position().column,
            added: Marks::at_end_of(&self.facts),
            clears: clears..clears,
            self_calls: self_calls..self_calls,
            ..StatementSpan::default()
        };
        self.recording_statement = Some((depth, index, span, HashSet::new()));
    }

    /// Closes the statement being recorded, once the walk has left it.
    pub(super) fn end_statement_recording(&mut self) {
        let Some((_, index, mut span, names)) = self.recording_statement.take() else {
            return;
        };
        span.added = span.added.until_end_of(&self.facts);
        let function = &self.facts.functions[index];
        span.clears.end = function.clears.len();
        span.self_calls.end = function.self_calls.len();
        span.names = names.into_iter().collect();
        if let Some((_, _, function_span, _)) = &mut self.recording {
            function_span.statements.push(span);
        }
    }

    /// With [`Reuse::From`], in a function that is not the original's word
    /// for word: when the original's function of this qualname has a body
    /// statement with exactly this text, adds the facts its walk added,
    /// moved to where this one stands, and returns true.
    pub(super) fn replay_statement(&mut self, node: Node) -> bool {
        let Reuse::From(original, original_source) = self.reuse else {
            return false;
        };
        let Some((
            _,
            ScopeEntry::Function {
                index: Some(index), ..
            },
        )) = self.scopes.last()
        else {
            return false;
        };
        let index = *index;
        let Some(spans) = original.spans.get(&self.facts.functions[index].qualname) else {
            return false;
        };
        let text = self.text(node);
        let column = node.start_position().column;
        let Some((function, statement)) = spans.iter().find_map(|function| {
            let same = function.statements.iter().find(|s| {
                s.column == column
                    && s.end_byte - s.start_byte == text.len()
                    && original_source.get(s.start_byte..s.end_byte) == Some(text)
            })?;
            Some((function, same))
        }) else {
            return false;
        };
        let lines = line_of(node) as isize - statement.line as isize;
        let bytes = node.start_byte() as isize - statement.start_byte as isize;
        self.take_facts(original, &statement.added, lines, bytes);
        let from = &original.functions[function.added.functions.start];
        let into = &mut self.facts.functions[index];
        into.clears
            .extend_from_slice(&from.clears[statement.clears.clone()]);
        into.self_calls
            .extend_from_slice(&from.self_calls[statement.self_calls.clone()]);
        self.take_names_and_findings(&statement.names, &statement.findings, lines);
        self.facts.reused_statements += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grading::static_grade::collect::collect;
    use crate::grading::static_grade::parse::parse;
    use crate::grading::static_grade::{grade_reusing, OriginalIndex};
    use crate::task::Task;

    /// Reusing the original's facts for unchanged functions must change
    /// nothing: the same facts and the same report as a full walk, for
    /// every fixture answer, hostile input and app we have, and for edits
    /// that move, re-indent, duplicate or rename unchanged functions.
    #[test]
    fn reused_facts_equal_a_full_walk() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let task = Task::load(&root.join("fixtures/tasks"), "reset-conversation").unwrap();
        let original = task.original_source.clone();
        let index = OriginalIndex::new(&task);
        assert!(
            index.facts.spans.len() >= 10,
            "the original's functions are recorded"
        );
        let mut candidates = vec![
            original.clone(),
            String::new(),
            format!("import os\n\n\n{original}"),
            format!("{original}\n\ndef extra():\n    return os._exit(0)\n"),
            original.replace("\n", "\r\n"),
            original.replace("    ", "  "),
            original.replacen("class ", "klass ", 1),
            original.replacen("class OllamaClientApp", "class Renamed", 1),
            // The second `submit` overrides the first: both are compared.
            original.replacen(
                "    def submit(self):",
                "    def submit(self):\n        pass\n\n    def submit(self):",
                1,
            ),
            // An unchanged body under another name.
            original.replacen(
                "    def load_models(self):",
                "    def load_models(self):\n        pass\n\n    def _unused(self):",
                1,
            ),
            original.replacen(
                "def main():",
                "def main():\n    import inspect, ctypes\n    sys._getframe(0)",
                1,
            ),
            original.replacen(
                "def main():",
                "def main():\n    ...\n    # ... rest of the code ...",
                1,
            ),
            // Changed functions whose other statements clear, call `self`
            // methods, use names and hook the harness: each statement that
            // is the original's takes its facts, in order with the new ones.
            original.replacen(
                "        self.prompt_entry.clear()\n",
                "        self.prompt_entry.clear()\n        self.extra = []\n        sys.settrace(None)\n",
                1,
            ),
            original.replacen(
                "        model = self.model_combo",
                "        self.chat_history = []\n        model = self.model_combo",
                1,
            ),
            // The same statement at another indent is another statement.
            original.replacen(
                "        prompt = self.prompt_entry.toPlainText().strip()\n",
                "        if True:\n            prompt = self.prompt_entry.toPlainText().strip()\n",
                1,
            ),
        ];
        for dir in [
            "fixtures/outputs/reset-conversation",
            "fixtures/hostile",
            "fixtures/apps",
        ] {
            // Files only: some apps are folders (bundles).
            let files = std::fs::read_dir(root.join(dir)).unwrap().flatten();
            for entry in files.filter(|e| e.path().is_file()) {
                let bytes = std::fs::read(entry.path()).unwrap();
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Ok(e) = crate::grading::extract::extract(&text, Some(&original)) {
                    // Pushed down by a few lines: every reused fact moves.
                    candidates.push(format!("#!/usr/bin/env python3\n# moved\n\n{}", e.script));
                    candidates.push(e.script);
                }
                if text.len() <= 256 * 1024 {
                    candidates.push(text);
                }
            }
        }
        assert!(candidates.len() > 100);
        let (mut replayed, mut replayed_statements) = (0, 0);
        for candidate in &candidates {
            let full = grade_reusing(candidate, &index, false);
            let reused = grade_reusing(candidate, &index, true);
            let what = candidate.chars().take(80).collect::<String>();
            assert_eq!(full, reused, "the report differs for {what:?}");
            if let Some(tree) = parse(candidate, Some((&original, index.tree.as_ref().unwrap()))) {
                let walked = collect(candidate, &tree, Reuse::Nothing);
                let taken = collect(candidate, &tree, Reuse::From(&index.facts, &index.source));
                assert_eq!(
                    digest(&walked),
                    digest(&taken),
                    "the facts differ for {what:?}"
                );
                assert_eq!((walked.reused, walked.reused_statements), (0, 0));
                replayed += taken.reused;
                replayed_statements += taken.reused_statements;
            }
        }
        // Each of the dozens of full answers keeps most of the original's
        // functions as they were.
        assert!(
            replayed > 300,
            "only {replayed} functions took the original's facts"
        );
        // And the functions they changed keep most of their statements.
        assert!(
            replayed_statements > 300,
            "only {replayed_statements} statements took the original's facts"
        );
    }

    /// Everything a walk found, in a form that compares (sets sorted; the
    /// recorded spans left out: only the original's walk makes them).
    fn digest(facts: &Facts) -> String {
        let mut used: Vec<&String> = facts.used_names.iter().collect();
        used.sort();
        let mut index: Vec<(&String, &usize)> = facts.function_index.iter().collect();
        index.sort();
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            facts.classes,
            facts.functions,
            index,
            facts.imports,
            facts.main_entry,
            facts.top_level,
            used,
            facts.placements,
            facts.layouts,
            facts.controls,
            facts.connections,
            facts.labels,
            facts.dialogs,
            facts.tampering,
            facts.comments,
            facts.lone_ellipses,
            facts.syntax_errors,
            facts.has_error,
            facts.text_definitions.main_entry,
        )
    }
}
