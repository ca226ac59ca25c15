//! The snippet decision: an answer is the whole script when it has every
//! class, function and method of the original and its main guard, no
//! comment, stub or `...` standing for code it left out, and is not a
//! diff; and an original import gone while its name is still used.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use super::text::collapse_whitespace;
use super::{Change, Grading, Missing, Placeholder, StaticReport};

impl StaticReport {
    /// A snippet is not a full script: the experiment's total failure.
    /// Fragments, placeholders or missing classes and functions make one;
    /// an import alone does not (a misspelt name in a full script's import
    /// list): the script runs and fails at launch with its `ImportError`.
    pub fn is_snippet(&self) -> bool {
        self.missing.iter().any(|m| m.kind != "import")
            || !self.placeholders.is_empty()
            || self.is_fragment
    }
}

impl Grading<'_> {
    pub(super) fn completeness(&self, report: &mut StaticReport, changes: &mut Vec<Change>) {
        let (original, candidate) = (self.original, self.candidate);
        let mut missing = |kind: &str, name: String, original_line: usize, line: usize| {
            changes.push(Self::change(
                "code_removed",
                format!("{kind} `{name}` (original line {original_line}) is gone"),
                line,
            ));
            report.missing.push(Missing {
                kind: kind.to_string(),
                name,
                original_line,
            });
        };
        for class in &original.classes {
            if !candidate.has_class(&class.name) {
                missing("class", class.name.clone(), class.line, 0);
            }
        }
        for function in &original.functions {
            let class_line = match &function.class {
                Some(class) if !candidate.has_class(class) => continue,
                Some(class) => candidate.class(class).map_or(0, |c| c.line),
                None => 0,
            };
            if !candidate.has_function(&function.qualname) {
                let kind = if function.class.is_some() {
                    "method"
                } else {
                    "function"
                };
                missing(kind, function.qualname.clone(), function.line, class_line);
            }
        }
        if let Some(line) = original.main_entry {
            if !candidate.has_main_entry() {
                missing("main_entry", r#"if __name__ == "__main__""#.into(), line, 0);
            }
        }
        self.missing_imports(report);
        if !candidate.has_error {
            self.removed_top_level(changes);
        }
        let diff_text = {
            let mut previous_minus = false;
            crate::grading::lines::lines(self.source).any(|line| {
                let header = previous_minus && line.starts_with("+++ ");
                previous_minus = line.starts_with("--- ");
                header || line.starts_with("@@")
            })
        };
        let anchored = !original.classes.is_empty() || original.main_entry.is_some();
        let has_anchor = original
            .classes
            .iter()
            .any(|c| candidate.has_class(&c.name))
            || (original.main_entry.is_some() && candidate.has_main_entry());
        let has_function = original
            .functions
            .iter()
            .any(|f| candidate.has_function(&f.qualname));
        report.is_fragment = diff_text
            || if anchored {
                !has_anchor
            } else {
                !original.functions.is_empty() && !has_function
            };
    }

    /// An original import gone while its name is still used.
    fn missing_imports(&self, report: &mut StaticReport) {
        let candidate = self.candidate;
        let mut bound: HashSet<&str> = candidate
            .imports
            .iter()
            .flat_map(|i| i.bound.iter().map(String::as_str))
            .collect();
        bound.extend(candidate.classes.iter().map(|c| c.name.as_str()));
        bound.extend(
            candidate
                .functions
                .iter()
                .filter(|f| f.class.is_none())
                .map(|f| f.name.as_str()),
        );
        let wildcards: HashSet<&str> = candidate
            .imports
            .iter()
            .filter(|i| i.wildcard)
            .map(|i| i.module.as_str())
            .collect();
        for import in &self.original.imports {
            if wildcards.contains(import.module.as_str()) {
                continue;
            }
            for name in &import.bound {
                if !bound.contains(name.as_str()) && candidate.used_names.contains(name) {
                    report.missing.push(Missing {
                        kind: "import".into(),
                        name: name.clone(),
                        original_line: import.line,
                    });
                }
            }
        }
    }

    fn removed_top_level(&self, changes: &mut Vec<Change>) {
        let mut kept: HashMap<&str, usize> = HashMap::new();
        for statement in &self.candidate.top_level {
            *kept.entry(statement.normalised.as_str()).or_default() += 1;
        }
        for statement in &self.original.top_level {
            match kept.get_mut(statement.normalised.as_str()) {
                Some(count) if *count > 0 => *count -= 1,
                _ => changes.push(Self::change(
                    "code_removed",
                    format!(
                        "top-level `{}` (original line {}) changed or removed",
                        statement.excerpt(&self.index.source),
                        statement.line
                    ),
                    0,
                )),
            }
        }
    }

    pub(super) fn placeholders(&self) -> Vec<Placeholder> {
        let mut found: Vec<Placeholder> = self
            .candidate
            .comments
            .iter()
            .filter(|(text, line)| {
                is_placeholder_comment(text)
                    && !self.index.comments.contains(&comment_key(text))
                    && self.placeholder_stands_for_code(*line)
            })
            .map(|(text, line)| Placeholder {
                line: *line,
                text: text.clone(),
            })
            .collect();
        found.extend(self.candidate.lone_ellipses.iter().map(|line| Placeholder {
            line: *line,
            text: "...".into(),
        }));
        for function in self.candidate.functions.iter().filter(|f| f.stub) {
            let had_code = self
                .original
                .function(&function.qualname)
                .is_some_and(|f| !f.stub);
            if had_code {
                found.push(Placeholder {
                    line: function.line,
                    text: function.summary.clone().unwrap_or_default(),
                });
            }
        }
        found.sort_by_key(|p| p.line);
        found
    }
}

impl Grading<'_> {
    /// Whether a placeholder comment at `line` stands for code the answer
    /// left out. A leftover `# ... rest unchanged ...` in a function that
    /// still holds every statement of the original's stands for nothing:
    /// the script is whole (models leave such comments in full scripts).
    /// Anywhere else (module level, a new function, a function that lost
    /// statements) it is taken at its word.
    pub(super) fn placeholder_stands_for_code(&self, line: usize) -> bool {
        let Some(function) = self
            .candidate
            .functions
            .iter()
            .filter(|f| (f.line..=f.end_line).contains(&line))
            .max_by_key(|f| f.line)
        else {
            return true;
        };
        let Some(original) = self.original.function(&function.qualname) else {
            return true;
        };
        if function.broken || original.broken || function.stub {
            return true;
        }
        let mut kept: HashMap<&str, usize> = HashMap::new();
        for statement in &function.statements {
            *kept.entry(statement.normalised.as_str()).or_default() += 1;
        }
        !original.statements.iter().all(|statement| {
            kept.get_mut(statement.normalised.as_str())
                .is_some_and(|count| match count {
                    0 => false,
                    _ => {
                        *count -= 1;
                        true
                    }
                })
        })
    }
}

/// A comment reduced to its words, to recognise the original's comments.
pub(super) fn comment_key(comment: &str) -> String {
    collapse_whitespace(comment.trim_start_matches('#')).to_lowercase()
}

pub(super) fn is_placeholder_comment(comment: &str) -> bool {
    static PATTERNS: OnceLock<(Regex, Regex)> = OnceLock::new();
    let (elided, phrase) = PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("the placeholder patterns are valid");
        (
            // `# ... existing UI code ...`: an ellipsis and a word for code.
            re(r"(?i)\b(rest|remaining|remainder|existing|previous|prior|other|same|unchanged|omitted|original|before|above|earlier|code|here|etc)\b"),
            // Without an ellipsis the comment must be nothing but the phrase.
            re(r"(?i)^(the )?(rest of (the|your|this) \w+( \w+)?( (remains|stays|is) (the same|unchanged|as before))?|existing( \w+){0,2} code( here)?|(same|unchanged) as before|previous( \w+)? code|keep (the )?rest( of (the|your) \w+)?( unchanged| as is)?|your existing( \w+){0,3} here|(other|remaining) (methods|code|functions)( remain| stay)?( unchanged| the same| as before)?|code (remains|stays) (the same|unchanged)|omitted for brevity|\w+( \w+)? (remains|stays) (the same|unchanged)|no changes (below|above|here))$"),
        )
    });
    let text = comment.trim_start_matches('#').trim();
    let core = text.trim_matches(|c: char| c.is_whitespace() || "().…-:;,!".contains(c));
    let core = core.trim_end_matches('.').trim();
    let has_ellipsis = |s: &str| s.starts_with("...") || s.starts_with('…');
    let reversed: String = text.chars().rev().collect();
    let elision = has_ellipsis(text.trim_start_matches('('))
        || has_ellipsis(reversed.trim_start_matches(')'));
    (elision && elided.is_match(text)) || phrase.is_match(core)
}
