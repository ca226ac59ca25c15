//! What one script is made of: the owned [`Facts`] one walk over its tree
//! leaves (`collect`), the same for the original and for an answer, so
//! that grading compares facts, never trees.

use std::collections::{HashMap, HashSet};

use super::collect::FunctionSpan;
use super::syntax_errors::TextDefinitions;
use super::text::{is_word_byte, shorten};
use super::SyntaxError;

/// Where a fact sits: its module-level class and outermost function.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Scope {
    pub(super) class: String,
    pub(super) method: String,
}

impl Scope {
    pub(super) fn qualname(&self) -> String {
        match (self.class.is_empty(), self.method.is_empty()) {
            (_, true) => String::new(),
            (true, false) => self.method.clone(),
            (false, false) => format!("{}.{}", self.class, self.method),
        }
    }

    /// Keys a widget or layout: `self.x` lives in the class, a local name
    /// in its method.
    pub(super) fn key(&self, expression: &str) -> String {
        if expression.starts_with("self.") {
            format!("{}|{expression}", self.class)
        } else {
            format!("{}|{}|{expression}", self.class, self.method)
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct ClassFacts {
    pub(super) name: String,
    pub(super) bases: Vec<String>,
    pub(super) line: usize,
    pub(super) methods: Vec<String>,
}

/// A statement of a function body, normalised so that formatting,
/// comments and quote style do not count as changes.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub(super) normalised: String,
    pub(super) line: usize,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Statement {
    pub(super) fn mentions(&self, name: &str) -> bool {
        let text = self.normalised.as_bytes();
        self.normalised.match_indices(name).any(|(at, _)| {
            let before = at.checked_sub(1).map(|i| text[i]);
            let after = text.get(at + name.len()).copied();
            !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte)
        })
    }

    /// The statement's first line as written, for details.
    pub(super) fn excerpt(&self, source: &str) -> String {
        let text = source.get(self.start..self.end).unwrap_or("");
        shorten(text.lines().next().unwrap_or("").trim())
    }
}

#[derive(Debug, Clone)]
pub(super) struct FunctionFacts {
    /// `Class.method` or `function`.
    pub(super) qualname: String,
    pub(super) class: Option<String>,
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) end_line: usize,
    /// A syntax error inside: its statements cannot be compared.
    pub(super) broken: bool,
    /// The function's text on one line, for the placeholder a stub is.
    pub(super) summary: Option<String>,
    pub(super) statements: Vec<Statement>,
    /// The body is only `pass`/`...` (and maybe a docstring).
    pub(super) stub: bool,
    /// What the function empties (see [`ResetControl::clears`]).
    pub(super) clears: Vec<String>,
    /// Methods it calls on `self`.
    pub(super) self_calls: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct ImportFacts {
    pub(super) module: String,
    pub(super) bound: Vec<String>,
    pub(super) wildcard: bool,
    pub(super) line: usize,
}

/// `layout.addWidget(item)` and its kin.
#[derive(Debug, Clone)]
pub(super) struct Placement {
    pub(super) scope: Scope,
    pub(super) layout: String,
    pub(super) item: String,
    pub(super) line: usize,
}

#[derive(Debug, Clone)]
pub(super) struct LayoutCreation {
    pub(super) scope: Scope,
    pub(super) target: String,
    pub(super) class: String,
    pub(super) line: usize,
}

/// `target = QPushButton("text")`, `QAction(...)`, or `bar.addAction("text")`.
#[derive(Debug, Clone)]
pub(super) struct Control {
    pub(super) scope: Scope,
    pub(super) target: String,
    pub(super) text: Option<String>,
    pub(super) line: usize,
    /// `QPushButton("Reset", clicked=self.reset)`.
    pub(super) keyword_handler: Option<HandlerRef>,
    /// The toolbar or menu of an `addAction("text")`.
    pub(super) added_to: Option<String>,
    /// An action (`QAction`, `addAction`), not a button.
    pub(super) action: bool,
}

/// What a signal is connected to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum HandlerRef {
    /// `connect(self.h)`, `connect(h)`, `connect(partial(self.h, …))`.
    Passed(String),
    /// `connect(self.h())`: the handler runs once and `None` is connected.
    Called(String),
    /// `connect(lambda: self.h())` or a lambda doing the work itself.
    Lambda {
        handler: Option<String>,
        clears: Vec<String>,
    },
    /// Some other callable expression.
    Other,
}

#[derive(Debug, Clone)]
pub(super) struct Connection {
    pub(super) sender: String,
    pub(super) handler: HandlerRef,
    pub(super) line: usize,
    pub(super) text: String,
}

/// Tampering with the harness or introspection of it.
#[derive(Debug, Clone)]
pub(super) struct Finding {
    pub(super) key: &'static str,
    pub(super) detail: String,
    pub(super) line: usize,
}

#[derive(Debug, Default)]
pub(super) struct Facts {
    pub(super) classes: Vec<ClassFacts>,
    pub(super) functions: Vec<FunctionFacts>,
    pub(super) function_index: HashMap<String, usize>,
    pub(super) imports: Vec<ImportFacts>,
    pub(super) main_entry: Option<usize>,
    pub(super) top_level: Vec<Statement>,
    /// Names read anywhere outside import statements.
    pub(super) used_names: HashSet<String>,
    pub(super) placements: Vec<Placement>,
    pub(super) layouts: Vec<LayoutCreation>,
    pub(super) controls: Vec<Control>,
    pub(super) connections: Vec<Connection>,
    /// `target.setText("…")`, `setToolTip("…")`: (target, text).
    pub(super) labels: Vec<(String, String)>,
    /// `QMessageBox.question`, `QDialog`…: (callee, line).
    pub(super) dialogs: Vec<(String, usize)>,
    pub(super) tampering: Vec<Finding>,
    pub(super) comments: Vec<(String, usize)>,
    /// `...` statements among other statements.
    pub(super) lone_ellipses: Vec<usize>,
    pub(super) syntax_errors: Vec<SyntaxError>,
    pub(super) has_error: bool,
    pub(super) text_definitions: TextDefinitions,
    /// The original's functions as walked, by qualname, for candidates
    /// that kept them as they were (filled only with [`Reuse::Record`]).
    pub(super) spans: HashMap<String, Vec<FunctionSpan>>,
    /// How many functions took the original's facts ([`Reuse::From`]).
    pub(super) reused: usize,
    /// How many statements of changed functions did.
    pub(super) reused_statements: usize,
}

impl Facts {
    pub(super) fn function(&self, qualname: &str) -> Option<&FunctionFacts> {
        self.function_index
            .get(qualname)
            .and_then(|i| self.functions.get(*i))
    }

    pub(super) fn class(&self, name: &str) -> Option<&ClassFacts> {
        self.classes.iter().find(|c| c.name == name)
    }

    pub(super) fn has_class(&self, name: &str) -> bool {
        self.class(name).is_some() || self.text_definitions.classes.contains(name)
    }

    pub(super) fn has_function(&self, qualname: &str) -> bool {
        self.function(qualname).is_some() || self.text_definitions.functions.contains(qualname)
    }

    pub(super) fn has_main_entry(&self) -> bool {
        self.main_entry.is_some() || self.text_definitions.main_entry
    }
}
