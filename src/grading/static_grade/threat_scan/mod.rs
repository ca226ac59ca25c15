//! The threat scan: every node of one Python file looked at (nothing is
//! taken on trust because it looks like the original's), for code that
//! reads or alters the judge (`tampering`) or does harm nobody asked for
//! (`harmful`). A walk gathers the nodes that matter, then each is judged
//! with every import and assignment of the file known; what makes a
//! construct one or the other is in `tampering` and `harm`.

mod harm;
mod tampering;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;
use tree_sitter::{Node, Tree};

use super::grammar::{fields, line_of};
use super::text::{compact, shorten};
use super::{Threat, QT_MODULES};
use crate::grading::FailureCode;
use harm::{HOST_CALLS, NETWORK_CALLS};
use tampering::{introspection_of_the_judge, FD_CALLS, INTROSPECTED_NAMES};

/// How a threat names `exec(variable)`: for a user's own app (no original)
/// that is running code it was given, such as a model's reply, not hiding it.
pub const HELD_CODE: &str = "runs code held in a variable";

/// Every node of the tree is looked at: unlike the comparison with the
/// original, nothing is taken on trust because it looks unchanged.
pub(super) fn threats_in(source: &str, tree: &Tree) -> Vec<Threat> {
    let mut scan = ThreatScan {
        source,
        imports: HashMap::new(),
        assigned: HashMap::new(),
        classes: HashSet::new(),
        calls: Vec::new(),
        stores: Vec::new(),
        attributes: Vec::new(),
        strings: Vec::new(),
        found: Vec::new(),
    };
    scan.gather(tree.root_node());
    scan.judge();
    let mut found = scan.found;
    found.extend(tampering::hiding_encoding(source));
    found.sort_by_key(|t| t.line);
    found
}

/// Longest dotted name or argument text looked at: real names are short,
/// and a pathological nesting must not make the scan quadratic.
const MAX_NAME_BYTES: usize = 200;
const MAX_ARGUMENT_BYTES: usize = 2000;
/// Nodes looked at below one argument (a deleted path's literals).
const MAX_ARGUMENT_NODES: usize = 200;
/// A hostile answer gets tier 3 from its first finding: the rest only
/// need to be listed, not all of them.
const MAX_THREATS: usize = 50;

/// Node kinds the threat scan looks at.
struct ScanKinds {
    string: u16,
    string_content: u16,
    interpolation: u16,
    concatenated_string: u16,
    integer: u16,
    identifier: u16,
    attribute: u16,
    call: u16,
    subscript: u16,
    binary_operator: u16,
    assignment: u16,
    augmented_assignment: u16,
    delete_statement: u16,
    import_statement: u16,
    import_from_statement: u16,
    class_definition: u16,
    for_statement: u16,
    for_in_clause: u16,
    keyword_argument: u16,
    comparison_operator: u16,
    pattern_list: u16,
    tuple_pattern: u16,
    type_alias_statement: u16,
    tuple: u16,
    parenthesized_expression: u16,
}

fn scan_kinds() -> &'static ScanKinds {
    static KINDS: OnceLock<ScanKinds> = OnceLock::new();
    KINDS.get_or_init(|| {
        let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
        let id = |name: &str| language.id_for_node_kind(name, true);
        ScanKinds {
            string: id("string"),
            string_content: id("string_content"),
            interpolation: id("interpolation"),
            concatenated_string: id("concatenated_string"),
            integer: id("integer"),
            identifier: id("identifier"),
            attribute: id("attribute"),
            call: id("call"),
            subscript: id("subscript"),
            binary_operator: id("binary_operator"),
            assignment: id("assignment"),
            augmented_assignment: id("augmented_assignment"),
            delete_statement: id("delete_statement"),
            import_statement: id("import_statement"),
            import_from_statement: id("import_from_statement"),
            class_definition: id("class_definition"),
            for_statement: id("for_statement"),
            for_in_clause: id("for_in_clause"),
            keyword_argument: id("keyword_argument"),
            comparison_operator: id("comparison_operator"),
            pattern_list: id("pattern_list"),
            tuple_pattern: id("tuple_pattern"),
            type_alias_statement: id("type_alias_statement"),
            tuple: id("tuple"),
            parenthesized_expression: id("parenthesized_expression"),
        }
    })
}

/// One file's threat scan: a walk gathering the nodes that matter, then
/// judgement with every import and assignment of the file known (an alias
/// may be imported after the function using it).
struct ThreatScan<'t> {
    source: &'t str,
    /// Local name → what it names (`_os` → `os`, `QTest` → `PyQt5.QtTest.QTest`).
    imports: HashMap<String, String>,
    /// An assignment's target (as written, no whitespace) → its values.
    assigned: HashMap<String, Vec<Node<'t>>>,
    /// Classes the file defines: a `Q…` name among them is not Qt's.
    classes: HashSet<String>,
    calls: Vec<Node<'t>>,
    /// Targets written to (`x.y = …`, `del x.y`, `x[k] = …`), with the
    /// value when there is one.
    stores: Vec<(Node<'t>, Option<Node<'t>>)>,
    attributes: Vec<Node<'t>>,
    strings: Vec<Node<'t>>,
    found: Vec<Threat>,
}

impl<'t> ThreatScan<'t> {
    fn text(&self, node: Node) -> &'t str {
        self.source.get(node.byte_range()).unwrap_or("")
    }

    fn gather(&mut self, root: Node<'t>) {
        let kinds = scan_kinds();
        let fields = fields();
        let mut cursor = root.walk();
        loop {
            let node = cursor.node();
            let kind = node.kind_id();
            if kind == kinds.call {
                self.calls.push(node);
            } else if kind == kinds.attribute {
                self.attributes.push(node);
            } else if kind == kinds.string {
                self.strings.push(node);
            } else if kind == kinds.assignment || kind == kinds.augmented_assignment {
                let left = node.child_by_field_id(fields.left);
                let right = node.child_by_field_id(fields.right);
                if let Some(left) = left {
                    self.store_targets(left, right);
                    if kind == kinds.assignment {
                        if let Some(right) = right {
                            let target = self.text(left);
                            if target.len() <= MAX_NAME_BYTES {
                                self.assigned
                                    .entry(compact(target).into_owned())
                                    .or_default()
                                    .push(right);
                            }
                        }
                    }
                }
            } else if kind == kinds.delete_statement {
                let mut targets = node.walk();
                for target in node.named_children(&mut targets) {
                    self.store_targets(target, None);
                }
            } else if kind == kinds.import_statement || kind == kinds.import_from_statement {
                self.import(node);
            } else if kind == kinds.type_alias_statement {
                self.class_patched_through_type(node);
            } else if kind == kinds.class_definition {
                let name = node
                    .child_by_field_id(fields.name)
                    .map_or("", |n| self.text(n));
                self.classes.insert(name.to_string());
            } else if kind == kinds.for_statement || kind == kinds.for_in_clause {
                // A loop variable holds what it goes through: `for f in glob(…)`.
                if let (Some(variable), Some(iterable)) = (
                    node.child_by_field_id(fields.left),
                    node.child_by_field_id(fields.right),
                ) {
                    let variable = self.text(variable);
                    if variable.len() <= MAX_NAME_BYTES {
                        self.assigned
                            .entry(compact(variable).into_owned())
                            .or_default()
                            .push(iterable);
                    }
                }
            }
            if kind != kinds.identifier && cursor.goto_first_child() {
                continue;
            }
            loop {
                if cursor.goto_next_sibling() {
                    break;
                }
                if !cursor.goto_parent() {
                    return;
                }
            }
        }
    }

    /// `type(widget).toPlainText = …`, which the grammar reads as a
    /// `type X = …` alias (Python does not).
    fn class_patched_through_type(&mut self, node: Node<'t>) {
        let text = compact(self.text(node));
        if !text.starts_with("type(") || text.starts_with("type(self).") {
            return;
        }
        let Some(left) = node.child_by_field_id(fields().left) else {
            return;
        };
        let attribute = left
            .named_child(0)
            .filter(|a| a.kind_id() == scan_kinds().attribute)
            .and_then(|a| a.child_by_field_id(fields().attribute))
            .map(|a| self.text(a));
        if let Some(attribute) = attribute {
            self.report(
                FailureCode::Tampering,
                node,
                format!("patches `{attribute}` of another object's class"),
            );
        }
    }

    /// `a.b = …` and `a[k] = …`, also inside `a.b, c = …`.
    fn store_targets(&mut self, target: Node<'t>, value: Option<Node<'t>>) {
        let kinds = scan_kinds();
        let kind = target.kind_id();
        if kind == kinds.attribute || kind == kinds.subscript {
            self.stores.push((target, value));
        } else if kind == kinds.pattern_list
            || kind == kinds.tuple_pattern
            || kind == kinds.tuple
            || kind == kinds.parenthesized_expression
        {
            let mut cursor = target.walk();
            let inner: Vec<Node<'t>> = target.named_children(&mut cursor).collect();
            for node in inner {
                if node.kind_id() == kinds.attribute || node.kind_id() == kinds.subscript {
                    // Which value goes where is not worked out: none is
                    // needed to see a patch.
                    self.stores.push((node, None));
                }
            }
        }
    }

    fn import(&mut self, node: Node<'t>) {
        let fields = fields();
        let is_from = node.kind_id() == scan_kinds().import_from_statement;
        let module = if is_from {
            compact(
                node.child_by_field_id(fields.module_name)
                    .map_or("", |m| self.text(m)),
            )
            .into_owned()
        } else {
            String::new()
        };
        // `from . import x`: the app's own module, nothing of the judge's.
        if is_from && (module.is_empty() || module.starts_with('.')) {
            return;
        }
        let mut cursor = node.walk();
        for name in node.children_by_field_name("name", &mut cursor) {
            let (path, alias) = if name.kind() == "aliased_import" {
                (
                    name.child_by_field_id(fields.name)
                        .map_or("", |n| self.text(n)),
                    name.child_by_field_id(fields.alias).map(|n| self.text(n)),
                )
            } else {
                (self.text(name), None)
            };
            let path = compact(path).into_owned();
            let (bound, target) = match (is_from, alias) {
                (true, alias) => (
                    alias.unwrap_or(path.as_str()).to_string(),
                    format!("{module}.{path}"),
                ),
                (false, Some(alias)) => (alias.to_string(), path.clone()),
                // `import os.path` binds `os`.
                (false, None) => {
                    let root = path.split('.').next().unwrap_or("").to_string();
                    (root.clone(), root)
                }
            };
            self.imports.insert(bound, target);
        }
    }

    /// A dotted name with its imports resolved, `__import__("m")` read as
    /// `m`, and Qt's binding and module left out: `_QtW.QTextEdit.toPlainText`
    /// after `from PyQt5 import QtWidgets as _QtW` is `QTextEdit.toPlainText`.
    fn canonical(&self, text: &str) -> Option<String> {
        if text.len() > MAX_NAME_BYTES {
            return None;
        }
        let text = compact(text);
        let text = match imported_by_call().captures(&text) {
            Some(c) => format!("{}{}", &c[2], &c[3]),
            None => text.into_owned(),
        };
        let (head, rest) = text.split_at(text.find(['.', '(', '[']).unwrap_or(text.len()));
        let mut name = match self.imports.get(head) {
            Some(target) => format!("{target}{rest}"),
            None => text.clone(),
        };
        for binding in ["PyQt5.", "PyQt6.", "PySide2.", "PySide6."] {
            if let Some(inner) = name.strip_prefix(binding) {
                name = inner.to_string();
                break;
            }
        }
        if let Some(dot) = name.find('.') {
            if is_qt_module(&name[..dot]) {
                name = name[dot + 1..].to_string();
            }
        }
        Some(name)
    }

    /// A Qt class, namespace or module (not one of the file's own classes).
    fn is_qt(&self, name: &str) -> bool {
        let head = name.split('.').next().unwrap_or("");
        let is_dotted = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        is_dotted
            && (is_qt_module(head)
                || QT_MODULES.contains(&head)
                || head == "Qt"
                || (is_qt_class_name(head) && !self.classes.contains(head)))
    }

    /// A dotted name of Qt's: a class, or anything read off a Qt module.
    fn names_qt(&self, text: &str) -> bool {
        let text = compact(text);
        let head = text.split('.').next().unwrap_or("");
        let imported = self.imports.get(head).map_or(head, |t| t.as_str());
        let binding = ["PyQt5", "PyQt6", "PySide2", "PySide6"]
            .iter()
            .any(|b| imported.split('.').next() == Some(*b));
        binding || self.canonical(&text).is_some_and(|c| self.is_qt(&c))
    }

    fn report(&mut self, kind: FailureCode, node: Node, what: String) {
        let line = line_of(node);
        if self.found.len() >= MAX_THREATS
            || self.found.iter().any(|t| t.line == line && t.kind == kind)
        {
            return;
        }
        let start = node.start_byte();
        let line_start = self.source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.source[start..]
            .find('\n')
            .map_or(self.source.len(), |i| start + i);
        let evidence = shorten(self.source[line_start..line_end].trim());
        self.found.push(Threat {
            kind,
            what,
            evidence,
            line,
            file: None,
        });
    }

    fn judge(&mut self) {
        for i in 0..self.strings.len() {
            self.string(self.strings[i]);
        }
        for i in 0..self.stores.len() {
            let (target, value) = self.stores[i];
            self.store(target, value);
        }
        for i in 0..self.attributes.len() {
            self.attribute(self.attributes[i]);
        }
        for i in 0..self.calls.len() {
            self.call(self.calls[i]);
        }
        // Last: a call that deletes or sends a private file says more.
        for i in 0..self.strings.len() {
            self.private_file_named(self.strings[i]);
        }
    }

    fn call(&mut self, node: Node<'t>) {
        let fields = fields();
        let kinds = scan_kinds();
        let Some(function) = node.child_by_field_id(fields.function) else {
            return;
        };
        // Most calls are `self.w.addWidget(…)`: judged by their last name
        // alone, unless the callee is an imported name (an alias such as
        // `from os import system as run_it`).
        let written = self.text(function);
        let written_last = written.rsplit('.').next().unwrap_or("").trim();
        let aliased = function.kind_id() == kinds.identifier && self.imports.contains_key(written);
        if !aliased && !is_watched_call(written_last) {
            return;
        }
        let arguments: Vec<Node<'t>> = node
            .child_by_field_id(fields.arguments)
            .map(|a| {
                let mut cursor = a.walk();
                a.named_children(&mut cursor)
                    .filter(|n| n.kind() != "comment")
                    .collect()
            })
            .unwrap_or_default();
        let positional: Vec<Node<'t>> = arguments
            .iter()
            .copied()
            .filter(|a| a.kind_id() != kinds.keyword_argument)
            .collect();
        let Some(callee) = self.canonical(self.text(function)) else {
            return;
        };
        let bare = function.kind_id() == kinds.identifier;
        let last = callee.rsplit('.').next().unwrap_or("");
        let first = positional.first().copied();
        if bare {
            // `from sys import _getframe`: the attribute rule never sees it.
            if let Some(what) = introspection_of_the_judge(&callee) {
                self.report(FailureCode::Tampering, node, what);
                return;
            }
            // `vars(sys)["mod" + "ules"]`: sys.modules by another door.
            if callee == "vars"
                && first.and_then(|f| self.canonical(self.text(f))).as_deref() == Some("sys")
            {
                self.report(
                    FailureCode::Tampering,
                    node,
                    "reads the interpreter's namespace (vars(sys))".into(),
                );
                return;
            }
        }

        // Code run from a string: hidden from any reading of the source.
        if bare && matches!(callee.as_str(), "exec" | "eval" | "compile") {
            if let Some(code) = first.filter(|c| !self.is_literal(*c)) {
                let (kind, what) = if self.mentions_download(code) {
                    (
                        FailureCode::Harmful,
                        format!("downloads and runs code ({callee})"),
                    )
                } else if matches!(code.kind(), "identifier" | "attribute" | "subscript") {
                    // Code the app holds in a variable: a model's reply run
                    // by a "code interpreter" chat app, or a payload built
                    // elsewhere (judged apart for a user's own app).
                    (FailureCode::Tampering, format!("{HELD_CODE} ({callee})"))
                } else {
                    (
                        FailureCode::Tampering,
                        format!("runs code built at run time ({callee})"),
                    )
                };
                self.report(kind, node, what);
            }
            return;
        }
        if callee == "__import__" && first.is_some_and(|n| !self.is_literal(n)) {
            self.report(
                FailureCode::Tampering,
                node,
                "imports a module by a built name (__import__)".into(),
            );
            return;
        }
        if callee == "importlib.import_module" && first.is_some_and(|n| self.is_built_name(n, 1)) {
            self.report(
                FailureCode::Tampering,
                node,
                "imports a module by a built name (importlib.import_module)".into(),
            );
            return;
        }
        if matches!(callee.as_str(), "runpy.run_path" | "runpy.run_module") {
            self.report(
                FailureCode::Tampering,
                node,
                format!("runs another script in the judge's process ({callee})"),
            );
            return;
        }
        if bare && matches!(callee.as_str(), "setattr" | "getattr" | "delattr") {
            self.attribute_by_name(node, &callee, &positional);
            return;
        }
        if FD_CALLS.contains(&callee.as_str()) && (!bare || callee == "open") {
            if let Some(fd) = first.and_then(|f| self.foreign_fd(f)) {
                self.report(
                    FailureCode::Tampering,
                    node,
                    format!("uses {fd}, which it did not open ({callee})"),
                );
                return;
            }
        }
        if let Some(what) = self.deletes_outside(&callee, function, first) {
            self.report(FailureCode::Harmful, node, what);
            return;
        }
        if let Some(what) = self.runs_process(&callee, last, node, &arguments) {
            self.report(FailureCode::Harmful, node, what);
            return;
        }
        if let Some(what) = self.connects_elsewhere(&callee, last, &positional, &arguments) {
            self.report(FailureCode::Harmful, node, what);
        }
    }

    /// A plain string literal (no interpolation), or several side by side.
    fn is_literal(&self, node: Node) -> bool {
        let kinds = scan_kinds();
        if node.kind_id() == kinds.concatenated_string {
            let mut cursor = node.walk();
            let all = node.named_children(&mut cursor).all(|s| self.is_literal(s));
            return all;
        }
        if node.kind_id() != kinds.string {
            return false;
        }
        let mut cursor = node.walk();
        let interpolated = node
            .children(&mut cursor)
            .any(|c| c.kind_id() == kinds.interpolation);
        !interpolated
    }

    /// A name put together at run time: `"mouse" + "Click"`, `"".join(…)`,
    /// an f-string, `chr(…)`, a decode, a slice; through one assignment.
    fn is_built_name(&self, node: Node, through: usize) -> bool {
        let kinds = scan_kinds();
        let kind = node.kind_id();
        if kind == kinds.string {
            return !self.is_literal(node);
        }
        if kind == kinds.binary_operator || kind == kinds.call || kind == kinds.subscript {
            return true;
        }
        if (kind == kinds.identifier || kind == kinds.attribute) && through > 0 {
            return self
                .assigned_values(node)
                .iter()
                .any(|v| self.is_built_name(*v, through - 1));
        }
        false
    }

    fn assigned_values(&self, node: Node) -> &[Node<'t>] {
        let text = self.text(node);
        if text.len() > MAX_NAME_BYTES {
            return &[];
        }
        self.assigned
            .get(compact(text).as_ref())
            .map_or(&[], |v| v.as_slice())
    }
}

/// Calls the threat scan judges, by their last name.
fn is_watched_call(name: &str) -> bool {
    const NAMES: [&str; 45] = [
        "vars",
        "exec",
        "eval",
        "compile",
        "__import__",
        "import_module",
        "run_path",
        "run_module",
        "setattr",
        "getattr",
        "delattr",
        "open",
        "write",
        "read",
        "fdopen",
        "close",
        "closerange",
        "dup",
        "dup2",
        "fstat",
        "lseek",
        "ftruncate",
        "fsync",
        "sendfile",
        "writev",
        "pwrite",
        "set_inheritable",
        "fromfd",
        "FileIO",
        "rmtree",
        "remove",
        "unlink",
        "rmdir",
        "removedirs",
        "send2trash",
        "system",
        "popen",
        "startfile",
        "run",
        "call",
        "Popen",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
    ];
    const MORE: [&str; 7] = [
        "start",
        "startDetached",
        "execute",
        "setProgram",
        "connect",
        "connect_ex",
        "create_connection",
    ];
    NAMES.contains(&name)
        || MORE.contains(&name)
        || NETWORK_CALLS.contains(&name)
        || HOST_CALLS.contains(&name)
        || INTROSPECTED_NAMES.contains(&name)
        || ["exec", "spawn", "posix_spawn", "create_subprocess"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

fn is_qt_module(name: &str) -> bool {
    name.len() > 2
        && name.starts_with("Qt")
        && name.as_bytes()[2].is_ascii_uppercase()
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_qt_class_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 1
        && bytes[0] == b'Q'
        && bytes[1].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// `__import__("os")…` and `importlib.import_module("os")…`.
fn imported_by_call() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r#"^(__import__|importlib\.import_module)\(["']([\w.]+)["']\)(.*)$"#)
            .expect("a valid pattern")
    })
}
