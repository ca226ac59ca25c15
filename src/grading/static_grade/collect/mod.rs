//! One walk over a script's tree, filling its [`Facts`]: the walk itself,
//! scopes, definitions, function bodies, top-level statements, names used,
//! comments, lone `...` and syntax errors. What calls and assignments say
//! is read by the files beside this one: `ui` (controls, layouts,
//! connections), `clears` (what a function empties), `imports` and
//! `tampering`; `reuse` takes the original's facts for unchanged code.

mod clears;
mod imports;
mod reuse;
mod tampering;
mod ui;

use std::collections::HashSet;

use tree_sitter::{Node, Tree};

use reuse::StatementSpan;
pub(super) use reuse::{FunctionSpan, Reuse};
#[cfg(test)]
pub(in crate::grading::static_grade) use ui::name_words;

use super::facts::{ClassFacts, Facts, FunctionFacts, Scope, Statement};
use super::grammar::{fields, is_docstring, is_ellipsis_statement, kinds, line_of};
use super::syntax_errors::{bracket_errors, text_definitions, MAX_SYNTAX_ERRORS};
use super::text::{collapse_whitespace, compact, normalise, shorten};
use super::SyntaxError;

/// One walk over a tree, filling [`Facts`].
struct Collector<'s, 'o> {
    source: &'s str,
    facts: Facts,
    reuse: Reuse<'o>,
    /// With [`Reuse::Record`]: the function being walked, its qualname,
    /// and the names used in it so far.
    recording: Option<(usize, String, FunctionSpan, HashSet<String>)>,
    /// With [`Reuse::Record`]: the statement of the recorded function's
    /// body being walked, its function's index, and the names used in it
    /// so far.
    recording_statement: Option<(usize, usize, StatementSpan, HashSet<String>)>,
    /// Enclosing classes and functions: (depth, entry).
    scopes: Vec<(usize, ScopeEntry)>,
    import_depth: Option<usize>,
    error_depth: Option<usize>,
    /// Where the first bracket error is: tree errors from there on follow
    /// from it.
    bracket_error_at: Option<usize>,
}

#[derive(Debug)]
enum ScopeEntry {
    Class(String),
    /// `index` into `Facts::functions`, `None` for nested functions.
    Function {
        name: String,
        index: Option<usize>,
    },
}

pub(super) fn collect(source: &str, tree: &Tree, reuse: Reuse) -> Facts {
    let root = tree.root_node();
    // A syntax error anywhere can change how the text around it is read,
    // and is reported with where it is: such a tree is walked in full.
    let reuse = if root.has_error() {
        Reuse::Nothing
    } else {
        reuse
    };
    let mut collector = Collector {
        source,
        facts: Facts {
            has_error: root.has_error(),
            ..Facts::default()
        },
        reuse,
        recording: None,
        recording_statement: None,
        scopes: Vec::new(),
        import_depth: None,
        error_depth: None,
        bracket_error_at: None,
    };
    if collector.facts.has_error {
        let errors = bracket_errors(source);
        collector.bracket_error_at = errors.iter().map(|(_, at)| *at).min();
        collector.facts.syntax_errors = errors.into_iter().map(|(e, _)| e).collect();
        collector.facts.text_definitions = text_definitions(source);
    }
    collector.module_level(root);
    collector.walk(root);
    collector.end_recording();
    let mut facts = collector.facts;
    facts.syntax_errors.truncate(MAX_SYNTAX_ERRORS);
    facts.function_index = facts
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f.qualname.clone(), i))
        .collect();
    facts
}

impl<'s> Collector<'s, '_> {
    fn text(&self, node: Node) -> &'s str {
        self.source.get(node.byte_range()).unwrap_or("")
    }

    fn field_text(&self, node: Node, field: u16) -> &'s str {
        node.child_by_field_id(field)
            .map_or("", |child| self.text(child))
    }

    fn scope(&self) -> Scope {
        let mut scope = Scope::default();
        for (_, entry) in &self.scopes {
            match entry {
                ScopeEntry::Class(name) if scope.class.is_empty() && scope.method.is_empty() => {
                    scope.class = name.clone();
                }
                ScopeEntry::Function { name, .. } if scope.method.is_empty() => {
                    scope.method = name.clone();
                }
                _ => {}
            }
        }
        scope
    }

    /// The recorded function the walk is in (not a nested one).
    fn current_function(&mut self) -> Option<&mut FunctionFacts> {
        let index = self
            .scopes
            .iter()
            .rev()
            .find_map(|(_, entry)| match entry {
                ScopeEntry::Function { index, .. } => Some(*index),
                ScopeEntry::Class(_) => None,
            })??;
        self.facts.functions.get_mut(index)
    }

    /// Module docstring, top-level statements and the main entry.
    fn module_level(&mut self, root: Node) {
        let mut cursor = root.walk();
        let mut first = true;
        for child in root.named_children(&mut cursor) {
            // A shebang or comment above the docstring does not make it code.
            let is_first = child.kind() != "comment" && std::mem::take(&mut first);
            match child.kind() {
                "comment"
                | "ERROR"
                | "import_statement"
                | "import_from_statement"
                | "future_import_statement"
                | "function_definition"
                | "class_definition"
                | "decorated_definition" => {}
                "if_statement" if self.is_main_guard(child) => {
                    self.facts.main_entry = Some(line_of(child));
                }
                "expression_statement" if is_first && is_docstring(child) => {}
                _ => {
                    let statement = self.statement(child);
                    self.facts.top_level.push(statement);
                }
            }
        }
    }

    fn is_main_guard(&self, node: Node) -> bool {
        let condition: String = self
            .field_text(node, fields().condition)
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| if c == '\'' { '"' } else { c })
            .collect();
        condition == r#"__name__=="__main__""# || condition == r#""__main__"==__name__"#
    }

    /// Pre-order walk with an explicit cursor: deep trees cannot overflow
    /// the stack.
    fn walk(&mut self, root: Node) {
        let kinds = kinds();
        let mut cursor = root.walk();
        let mut parents: Vec<Node> = Vec::new();
        let mut depth = 0usize;
        loop {
            let node = cursor.node();
            parents.truncate(depth);
            while self.scopes.last().is_some_and(|(d, _)| *d >= depth) {
                self.scopes.pop();
            }
            if self
                .recording_statement
                .as_ref()
                .is_some_and(|(d, ..)| *d >= depth)
            {
                self.end_statement_recording();
            }
            if self.recording.as_ref().is_some_and(|(d, ..)| *d >= depth) {
                self.end_recording();
            }
            if self.import_depth.is_some_and(|d| d >= depth) {
                self.import_depth = None;
            }
            if self.error_depth.is_some_and(|d| d >= depth) {
                self.error_depth = None;
            }
            let parent = parents.last().copied();
            let statement = self.is_body_statement(node, parent, depth);
            if statement && matches!(self.reuse, Reuse::Record) {
                self.start_statement_recording(depth, node);
            }
            let descend = if statement && self.replay_statement(node) {
                false
            } else if node.kind_id() == kinds.identifier {
                let field = cursor.field_id().map_or(0, |id| id.get());
                self.identifier(node, field, parent);
                false
            } else {
                self.visit(node, parent, depth)
            };
            parents.push(node);
            if descend && cursor.goto_first_child() {
                depth += 1;
                continue;
            }
            loop {
                if depth == 0 {
                    return;
                }
                if cursor.goto_next_sibling() {
                    break;
                }
                if !cursor.goto_parent() {
                    return;
                }
                depth -= 1;
            }
        }
    }

    /// Records what `node` says; returns whether to walk its children.
    /// Kinds are compared by id: `Node::kind` converts a C string each time.
    fn visit(&mut self, node: Node, parent: Option<Node>, depth: usize) -> bool {
        let kinds = kinds();
        let kind = node.kind_id();
        if self.facts.has_error && node.is_missing() {
            self.syntax_error(node, format!("missing `{}`", node.kind()));
            return false;
        }
        // The error symbol is the largest id (`ts_builtin_sym_error`).
        if kind == u16::MAX {
            if self.error_depth.is_none() {
                let excerpt = shorten(self.text(node).lines().next().unwrap_or("").trim());
                self.syntax_error(node, format!("invalid syntax at `{excerpt}`"));
                self.error_depth = Some(depth);
            }
        } else if kind == kinds.parameters {
            // Parameter names are definitions, not uses.
            return false;
        } else if kind == kinds.comment {
            let text = self.text(node).to_string();
            self.facts.comments.push((text, line_of(node)));
            return false;
        } else if kind == kinds.string {
            // Only an f-string holds names (in its interpolations).
            let prefix = self.text(node).split(['"', '\'']).next().unwrap_or("");
            return prefix.contains(['f', 'F']);
        } else if kind == kinds.attribute {
            self.attribute(node);
        } else if kind == kinds.call {
            self.call(node);
        } else if kind == kinds.expression_statement {
            self.ellipsis(node, parent);
        } else if kind == kinds.assignment {
            self.assignment(node);
        } else if kind == kinds.augmented_assignment {
            self.patching(node);
        } else if kind == kinds.function_definition {
            return self.function_definition(node, depth);
        } else if kind == kinds.class_definition {
            self.class_definition(node, depth);
        } else if kind == kinds.import_statement || kind == kinds.import_from_statement {
            self.import(node);
            self.import_depth = Some(depth);
        } else if kind == kinds.delete_statement {
            self.delete(node);
        }
        true
    }

    fn syntax_error(&mut self, node: Node, message: String) {
        let follows_bracket_error = self.bracket_error_at.is_some_and(|at| node.end_byte() > at);
        if follows_bracket_error || self.facts.syntax_errors.len() >= MAX_SYNTAX_ERRORS {
            return;
        }
        let line = line_of(node);
        // The bracket check may already have named this line more precisely.
        if self.facts.syntax_errors.iter().any(|e| e.line == line) {
            return;
        }
        let start = node.start_byte();
        let line_start = start.saturating_sub(node.start_position().column);
        let column = self
            .source
            .get(line_start..start)
            .map_or(node.start_position().column, |s| s.chars().count())
            + 1;
        self.facts.syntax_errors.push(SyntaxError {
            line,
            column,
            message,
        });
    }

    fn class_definition(&mut self, node: Node, depth: usize) {
        let name = self.field_text(node, fields().name).to_string();
        let module_level = self.scopes.is_empty();
        if module_level {
            let mut bases = Vec::new();
            if let Some(arguments) = node.child_by_field_id(fields().superclasses) {
                let mut cursor = arguments.walk();
                for base in arguments.named_children(&mut cursor) {
                    if base.kind() != "comment" {
                        bases.push(compact(self.text(base)).into_owned());
                    }
                }
            }
            let mut methods = Vec::new();
            if let Some(body) = node.child_by_field_id(fields().body) {
                let mut cursor = body.walk();
                for child in body.named_children(&mut cursor) {
                    let definition = if child.kind() == "decorated_definition" {
                        child.child_by_field_id(fields().definition)
                    } else {
                        Some(child)
                    };
                    if let Some(function) = definition.filter(|d| d.kind() == "function_definition")
                    {
                        methods.push(self.field_text(function, fields().name).to_string());
                    }
                }
            }
            self.facts.classes.push(ClassFacts {
                name: name.clone(),
                bases,
                line: line_of(node),
                methods,
            });
        }
        self.scopes.push((depth, ScopeEntry::Class(name)));
    }

    /// Records a function; returns whether to walk its body (not when
    /// the original's facts were taken for it).
    fn function_definition(&mut self, node: Node, depth: usize) -> bool {
        let name = self.field_text(node, fields().name).to_string();
        let class = match self.scopes.last() {
            None => Some(None),
            Some((_, ScopeEntry::Class(class))) if self.scopes.len() == 1 => {
                Some(Some(class.clone()))
            }
            _ => None,
        };
        let mut descend = true;
        let index = class.map(|class| {
            let qualname = match &class {
                Some(class) => format!("{class}.{name}"),
                None => name.clone(),
            };
            if self.replay(&qualname, node) {
                descend = false;
                return self.facts.functions.len() - 1;
            }
            if matches!(self.reuse, Reuse::Record) {
                self.start_recording(depth, &qualname, node);
            }
            let (statements, stub) = self.body(node);
            self.facts.functions.push(FunctionFacts {
                qualname,
                class,
                name: name.clone(),
                line: line_of(node),
                end_line: node.end_position().row + 1,
                broken: node.has_error(),
                summary: stub.then(|| shorten(&collapse_whitespace(self.text(node)))),
                statements,
                stub,
                clears: Vec::new(),
                self_calls: Vec::new(),
            });
            self.facts.functions.len() - 1
        });
        self.scopes
            .push((depth, ScopeEntry::Function { name, index }));
        descend
    }

    /// A function's statements (docstring and comments left out) and
    /// whether they are only `pass`/`...`.
    fn body(&self, function: Node) -> (Vec<Statement>, bool) {
        let mut statements = Vec::new();
        let mut stub = true;
        let Some(body) = function.child_by_field_id(fields().body) else {
            return (statements, stub);
        };
        let mut cursor = body.walk();
        let mut first = true;
        for child in body.named_children(&mut cursor) {
            if child.kind() == "comment" {
                continue;
            }
            if std::mem::take(&mut first) && is_docstring(child) {
                continue;
            }
            stub &= child.kind() == "pass_statement" || is_ellipsis_statement(self.source, child);
            statements.push(self.statement(child));
        }
        (statements, stub)
    }

    fn statement(&self, node: Node) -> Statement {
        Statement {
            normalised: normalise(self.text(node)),
            line: line_of(node),
            start: node.start_byte(),
            end: node.end_byte(),
        }
    }

    /// A name: kept among the names used unless it is defined here or
    /// read off an object.
    fn identifier(&mut self, node: Node, field: u16, parent: Option<Node>) {
        let text = self.text(node);
        self.named_hooks(node, text);
        if self.import_depth.is_some() {
            return;
        }
        let (kinds, fields) = (kinds(), fields());
        let parent_kind = parent.map_or(0, |p| p.kind_id());
        // Names that are defined or read off an object are not uses.
        let is_use = !((parent_kind == kinds.attribute && field == fields.attribute)
            || (field == fields.name
                && (parent_kind == kinds.keyword_argument
                    || parent_kind == kinds.function_definition
                    || parent_kind == kinds.class_definition)));
        if is_use && !self.facts.used_names.contains(text) {
            self.facts.used_names.insert(text.to_string());
        }
        if let Some((.., names)) = &mut self.recording {
            if is_use && !names.contains(text) {
                names.insert(text.to_string());
            }
        }
        if let Some((.., names)) = &mut self.recording_statement {
            if is_use && !names.contains(text) {
                names.insert(text.to_string());
            }
        }
    }

    /// `...` standing for code among other statements, or alone in a
    /// block that is not a function or class body.
    fn ellipsis(&mut self, node: Node, parent: Option<Node>) {
        if !is_ellipsis_statement(self.source, node) {
            return;
        }
        let Some(block) = parent.filter(|p| p.kind() == "block") else {
            return;
        };
        let mut cursor = block.walk();
        let statements = block
            .named_children(&mut cursor)
            .filter(|c| c.kind() != "comment" && !is_docstring(*c))
            .count();
        let body_of_definition = block
            .parent()
            .is_some_and(|p| matches!(p.kind(), "function_definition" | "class_definition"));
        if statements > 1 || !body_of_definition {
            self.facts.lone_ellipses.push(line_of(node));
        }
    }
}
