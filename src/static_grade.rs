//! Static grading against the task's original (tree-sitter-python):
//! completeness (snippet or full script), syntax, the requested reset
//! control, unrequested changes and harness tampering. Pure: no IO.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Parser, Tree};

use crate::task::Task;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Missing {
    /// `class`, `method`, `function`, `import` or `main_entry`.
    pub kind: String,
    pub name: String,
    pub original_line: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Placeholder {
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResetControl {
    pub attribute: String,
    pub text: String,
    pub line: usize,
    pub handler: Option<String>,
    pub connected: bool,
    pub added_to_layout: Option<String>,
    pub clears: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewClass {
    pub name: String,
    pub bases: Vec<String>,
    pub line: usize,
    /// `thread`, `worker`, `dialog`, `widget` or `other`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub kind: String,
    pub detail: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StaticReport {
    pub syntax_errors: Vec<SyntaxError>,
    pub missing: Vec<Missing>,
    pub placeholders: Vec<Placeholder>,
    pub is_fragment: bool,
    pub reset_control: Option<ResetControl>,
    pub new_classes: Vec<NewClass>,
    pub unrequested_changes: Vec<Change>,
    pub suspicious: Vec<Change>,
}

impl StaticReport {
    /// A snippet is not a full script: the experiment's total failure.
    pub fn is_snippet(&self) -> bool {
        !self.missing.is_empty() || !self.placeholders.is_empty() || self.is_fragment
    }
}

/// What one script defines, as the grader compares it.
#[derive(Debug, Default)]
struct Outline {
    /// class name → (line, bases, methods: name → (line, normalised statements))
    classes: Vec<ClassOutline>,
    functions: HashMap<String, usize>,
    imports: HashSet<String>,
    main_entry: bool,
    /// `L.addWidget(X)` / `L.addLayout(X)` calls in order: (layout, item, line).
    placements: Vec<(String, String, usize)>,
    /// Names assigned a new layout object.
    layouts: HashSet<String>,
    dialogs: usize,
}

#[derive(Debug)]
struct ClassOutline {
    name: String,
    line: usize,
    bases: Vec<String>,
    methods: Vec<MethodOutline>,
}

#[derive(Debug)]
struct MethodOutline {
    name: String,
    line: usize,
    statements: Vec<String>,
    trivial_body: bool,
}

/// The original, parsed once per task.
pub struct OriginalIndex {
    outline: Outline,
    pattern: Option<Regex>,
    may_extend: Vec<String>,
    original_source: String,
}

impl OriginalIndex {
    pub fn new(task: &Task) -> OriginalIndex {
        let tree = parse(&task.original_source);
        OriginalIndex {
            outline: outline(&tree, task.original_source.as_bytes()),
            pattern: Regex::new(&task.reset_control.text_pattern).ok(),
            may_extend: task.app.may_extend.clone(),
            original_source: task.original_source.clone(),
        }
    }
}

fn parse(source: &str) -> Tree {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("the bundled Python grammar loads");
    parser.parse(source, None).expect("parsing without a timeout always returns a tree")
}

pub fn grade(candidate: &str, task: &Task) -> StaticReport {
    grade_with(candidate, &OriginalIndex::new(task))
}

fn text<'a>(node: Node, source: &'a [u8]) -> &'a str {
    node.utf8_text(source).unwrap_or("")
}

fn line_of(node: Node) -> usize {
    node.start_position().row + 1
}

/// A statement's text without comments and with whitespace folded, so
/// that reformatting and comments are not counted as changes.
fn normalise(statement: &str) -> String {
    let mut out = String::new();
    for line in statement.lines() {
        let code = strip_comment(line);
        let folded: Vec<&str> = code.split_whitespace().collect();
        if !folded.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&folded.join(" "));
        }
    }
    out.replace('\'', "\"")
}

fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

fn outline(tree: &Tree, source: &[u8]) -> Outline {
    let mut o = Outline::default();
    let root = tree.root_node();
    let mut cursor = root.walk();
    for node in root.named_children(&mut cursor) {
        let node = unwrap_decorated(node);
        match node.kind() {
            "class_definition" => o.classes.push(class_outline(node, source)),
            "function_definition" => {
                if let Some(name) = node.child_by_field_name("name") {
                    o.functions.insert(text(name, source).to_string(), line_of(node));
                }
            }
            "import_statement" | "import_from_statement" => collect_imports(node, source, &mut o.imports),
            "if_statement" => {
                let condition = node.child_by_field_name("condition").map(|c| text(c, source)).unwrap_or("");
                if condition.contains("__name__") && condition.contains("__main__") {
                    o.main_entry = true;
                }
            }
            _ => {}
        }
    }
    let whole = std::str::from_utf8(source).unwrap_or("");
    for caps in placement_regex().captures_iter(whole) {
        let line = whole[..caps.get(0).map(|m| m.start()).unwrap_or(0)].matches('\n').count() + 1;
        o.placements.push((caps[1].to_string(), caps[3].to_string(), line));
    }
    for caps in layout_regex().captures_iter(whole) {
        o.layouts.insert(caps[1].to_string());
    }
    o.dialogs = dialog_regex().find_iter(whole).count();
    o
}

fn unwrap_decorated(node: Node) -> Node {
    if node.kind() == "decorated_definition" {
        node.child_by_field_name("definition").unwrap_or(node)
    } else {
        node
    }
}

fn collect_imports(node: Node, source: &[u8], into: &mut HashSet<String>) {
    let statement = text(node, source);
    if let Some(rest) = statement.strip_prefix("from ") {
        if let Some(module) = rest.split_whitespace().next() {
            into.insert(module.to_string());
        }
    } else if let Some(rest) = statement.strip_prefix("import ") {
        for part in rest.split(',') {
            if let Some(module) = part.split_whitespace().next() {
                into.insert(module.to_string());
            }
        }
    }
}

fn class_outline(node: Node, source: &[u8]) -> ClassOutline {
    let name = node.child_by_field_name("name").map(|n| text(n, source)).unwrap_or("").to_string();
    let bases = node
        .child_by_field_name("superclasses")
        .map(|s| {
            text(s, source)
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut methods = Vec::new();
    if let Some(body) = node.child_by_field_name("body") {
        let mut cursor = body.walk();
        for child in body.named_children(&mut cursor) {
            let child = unwrap_decorated(child);
            if child.kind() != "function_definition" {
                continue;
            }
            let method_name = child.child_by_field_name("name").map(|n| text(n, source)).unwrap_or("").to_string();
            let mut statements = Vec::new();
            let mut trivial = true;
            if let Some(block) = child.child_by_field_name("body") {
                let mut c = block.walk();
                for (i, statement) in block.named_children(&mut c).enumerate() {
                    if statement.kind() == "comment" {
                        continue;
                    }
                    let is_docstring = i == 0
                        && statement.kind() == "expression_statement"
                        && statement.named_child(0).is_some_and(|n| n.kind() == "string");
                    if is_docstring {
                        continue;
                    }
                    let s = normalise(text(statement, source));
                    if s != "pass" && s != "..." {
                        trivial = false;
                    }
                    statements.push(s);
                }
            }
            methods.push(MethodOutline {
                name: method_name,
                line: line_of(child),
                statements,
                trivial_body: trivial,
            });
        }
    }
    ClassOutline {
        name,
        line: line_of(node),
        bases,
        methods,
    }
}

fn placement_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?m)^[ \t]*([A-Za-z_][\w.]*)\.(addWidget|addLayout)\(\s*([A-Za-z_][\w.]*)").expect("valid regex")
    })
}

fn layout_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?m)^[ \t]*([A-Za-z_][\w.]*)\s*=\s*(?:QtWidgets\.)?(QHBoxLayout|QVBoxLayout|QGridLayout|QFormLayout|QBoxLayout|QStackedLayout)\(")
            .expect("valid regex")
    })
}

fn dialog_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\b(QMessageBox\.(question|warning|information|critical|about)|QInputDialog\.get\w+|QDialog\()").expect("valid regex"))
}

fn placeholder_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)#.*(\.\.\.|…|rest of|unchanged|same as (before|above|original)|existing (code|methods|ui|logic)|previous code|keep the rest|remains? the same|your (existing|other)|other methods|as before|omitted|no changes)").expect("valid regex")
    })
}

fn control_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?m)^[ \t]*((?:self\.)?[A-Za-z_]\w*)\s*=\s*(?:QtWidgets\.)?(QPushButton|QToolButton|QAction)\(\s*(?:self\.tr\(\s*)?(?:[A-Za-z_][\w.]*\s*\(\s*\)\s*,\s*)?["']([^"'\n]*)["']"#)
            .expect("valid regex")
    })
}

fn tamper_checks() -> &'static [(Regex, &'static str)] {
    static RE: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RE.get_or_init(|| {
        [
            (r"\bQTest\b", "uses QTest, the harness's input tool"),
            (r"\.grab\(", "calls QWidget.grab, the harness's screenshot tool"),
            (r"sys\._getframe", "inspects the call stack (sys._getframe)"),
            (r"gc\.get_objects", "walks every live object (gc.get_objects)"),
            (r"(?m)^\s*(import|from)\s+inspect\b", "imports inspect"),
            (r"\batexit\b", "registers exit hooks (atexit)"),
            (r"os\._exit", "exits without clean-up (os._exit)"),
            (r"\b__builtins__\b|(?m)^\s*(import|from)\s+builtins\b", "touches builtins"),
            (r"sys\.(settrace|setprofile)", "installs a tracer"),
            (r"\bctypes\b", "uses ctypes"),
            (r"sys\.modules\[[^\]]*\]\s*=", "replaces a module in sys.modules"),
            (r"(?m)\b(QApplication|QCoreApplication)\.exec_?\s*=|sys\.exit\s*=|sys\.excepthook\s*=", "rebinds the event loop, sys.exit or the excepthook"),
            (r"(?m)\btime\.\w+\s*=", "rebinds a time function"),
        ]
        .into_iter()
        .map(|(p, why)| (Regex::new(p).expect("valid regex"), why))
        .collect()
    })
}

fn syntax_errors(tree: &Tree) -> Vec<SyntaxError> {
    let mut errors = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if errors.len() >= 20 {
            break;
        }
        if node.is_error() || node.is_missing() {
            let p = node.start_position();
            errors.push(SyntaxError {
                line: p.row + 1,
                column: p.column + 1,
                message: if node.is_missing() {
                    format!("missing {}", node.kind())
                } else {
                    "invalid syntax".to_string()
                },
            });
            continue;
        }
        if node.has_error() {
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

pub fn grade_with(candidate: &str, original: &OriginalIndex) -> StaticReport {
    let mut report = StaticReport::default();
    let tree = parse(candidate);
    let source = candidate.as_bytes();
    report.syntax_errors = syntax_errors(&tree);
    let cand = outline(&tree, source);
    let orig = &original.outline;

    let diff_markers = candidate.lines().filter(|l| l.starts_with("@@ ") || l.starts_with("+++ ") || l.starts_with("--- a/")).count();
    let has_original_class = orig.classes.iter().any(|c| cand.classes.iter().any(|k| k.name == c.name));
    report.is_fragment = diff_markers >= 2 || (!orig.classes.is_empty() && !has_original_class && !cand.main_entry);

    // Completeness.
    for class in &orig.classes {
        let Some(found) = cand.classes.iter().find(|c| c.name == class.name) else {
            report.missing.push(Missing { kind: "class".into(), name: class.name.clone(), original_line: class.line });
            continue;
        };
        for method in &class.methods {
            match found.methods.iter().find(|m| m.name == method.name) {
                None => report.missing.push(Missing {
                    kind: "method".into(),
                    name: format!("{}.{}", class.name, method.name),
                    original_line: method.line,
                }),
                Some(m) if m.trivial_body && !method.trivial_body => report.placeholders.push(Placeholder {
                    line: m.line,
                    text: format!("{}.{} has an empty body (pass or ...) where the original had code", class.name, method.name),
                }),
                Some(_) => {}
            }
        }
    }
    let mut functions: Vec<(&String, &usize)> = orig.functions.iter().collect();
    functions.sort_by_key(|(_, line)| **line);
    for (name, line) in functions {
        if !cand.functions.contains_key(name) {
            report.missing.push(Missing { kind: "function".into(), name: name.clone(), original_line: *line });
        }
    }
    if orig.main_entry && !cand.main_entry {
        report.missing.push(Missing { kind: "main_entry".into(), name: "if __name__ == \"__main__\"".into(), original_line: 0 });
    }
    let mut imports: Vec<&String> = orig.imports.iter().filter(|m| !cand.imports.contains(*m)).collect();
    imports.sort();
    for module in imports {
        let short = module.rsplit('.').next().unwrap_or(module);
        // A dropped import only matters if the code still needs it.
        if candidate.contains(&format!("{short}.")) && !module.starts_with("PyQt") {
            report.missing.push(Missing { kind: "import".into(), name: module.clone(), original_line: 0 });
        }
    }
    for (i, line) in candidate.lines().enumerate() {
        let trimmed = line.trim();
        if (trimmed.starts_with('#') && placeholder_regex().is_match(trimmed)) || (trimmed == "..." && line.starts_with(' ')) {
            report.placeholders.push(Placeholder { line: i + 1, text: trimmed.chars().take(120).collect() });
        }
    }

    // The requested change.
    report.reset_control = find_reset_control(candidate, &cand, original);
    let reset_attr = report.reset_control.as_ref().map(|r| short_name(&r.attribute).to_string());
    let handler = report.reset_control.as_ref().and_then(|r| r.handler.clone());
    if let Some(control) = &report.reset_control {
        if !control.connected && candidate.contains(&format!("connect(self.{}())", control.handler.clone().unwrap_or_default())) {
            report.unrequested_changes.push(Change {
                kind: "connect_calls_handler".into(),
                detail: "the handler is called when connecting (`connect(self.handler())`) instead of being passed".into(),
                line: control.line,
            });
        }
    }
    let mentions_change = |statement: &str| {
        reset_attr.as_ref().is_some_and(|a| statement.contains(a.as_str())) || handler.as_ref().is_some_and(|h| statement.contains(h.as_str()))
    };

    // Unrequested changes.
    for class in &cand.classes {
        let Some(original_class) = orig.classes.iter().find(|c| c.name == class.name) else {
            let kind = class_kind(class);
            report.new_classes.push(NewClass { name: class.name.clone(), bases: class.bases.clone(), line: class.line, kind: kind.into() });
            report.unrequested_changes.push(Change {
                kind: "new_class".into(),
                detail: format!("new {} class `{}({})`", kind, class.name, class.bases.join(", ")),
                line: class.line,
            });
            continue;
        };
        for method in &class.methods {
            let Some(before) = original_class.methods.iter().find(|m| m.name == method.name) else {
                if Some(&method.name) != handler.as_ref() {
                    report.unrequested_changes.push(Change {
                        kind: "new_method".into(),
                        detail: format!("new method `{}.{}`", class.name, method.name),
                        line: method.line,
                    });
                }
                continue;
            };
            if before.statements == method.statements {
                continue;
            }
            let may_extend = original.may_extend.contains(&method.name);
            let extended_only = may_extend && is_pure_insertion(&before.statements, &method.statements, &mentions_change);
            if !extended_only {
                report.unrequested_changes.push(Change {
                    kind: "method_changed".into(),
                    detail: format!("`{}.{}` was changed beyond adding the reset control", class.name, method.name),
                    line: method.line,
                });
            }
        }
    }
    for m in &report.missing {
        if m.kind == "class" || m.kind == "method" || m.kind == "function" {
            report.unrequested_changes.push(Change { kind: "code_removed".into(), detail: format!("{} `{}` removed", m.kind, m.name), line: m.original_line });
        }
    }
    let mut new_layouts: Vec<&String> = cand.layouts.iter().filter(|l| !orig.layouts.contains(*l)).collect();
    new_layouts.sort();
    for layout in new_layouts {
        let line = find_line(candidate, &format!("{layout} ="));
        report.unrequested_changes.push(Change { kind: "new_layout".into(), detail: format!("new layout `{layout}`"), line });
    }
    report.unrequested_changes.extend(moved_widgets(orig, &cand, reset_attr.as_deref()));
    if cand.dialogs > orig.dialogs {
        let line = dialog_regex().find(candidate).map(|m| candidate[..m.start()].matches('\n').count() + 1).unwrap_or(0);
        report.unrequested_changes.push(Change {
            kind: "new_dialog".into(),
            detail: format!("{} dialog call(s) the original did not have", cand.dialogs - orig.dialogs),
            line,
        });
    }
    let mut new_imports: Vec<&String> = cand.imports.iter().filter(|m| !orig.imports.contains(*m) && !m.starts_with("PyQt")).collect();
    new_imports.sort();
    for module in new_imports {
        report.unrequested_changes.push(Change {
            kind: "new_import".into(),
            detail: format!("imports `{module}`"),
            line: find_line(candidate, module),
        });
    }
    for (regex, why) in tamper_checks() {
        if regex.is_match(candidate) && !regex.is_match(&original.original_source) {
            let line = regex.find(candidate).map(|m| candidate[..m.start()].matches('\n').count() + 1).unwrap_or(0);
            report.suspicious.push(Change { kind: "tampering".into(), detail: why.to_string(), line });
        }
    }
    report
}

fn short_name(attribute: &str) -> &str {
    attribute.strip_prefix("self.").unwrap_or(attribute)
}

fn class_kind(class: &ClassOutline) -> &'static str {
    let bases = class.bases.join(" ");
    if bases.contains("QThread") || class.name.ends_with("Thread") {
        "thread"
    } else if class.name.contains("Worker") || bases.contains("QRunnable") {
        "worker"
    } else if bases.contains("Dialog") {
        "dialog"
    } else if bases.contains("Widget") || bases.contains("QMainWindow") {
        "widget"
    } else {
        "other"
    }
}

fn find_line(source: &str, needle: &str) -> usize {
    source.find(needle).map(|i| source[..i].matches('\n').count() + 1).unwrap_or(0)
}

/// The candidate keeps every original statement in order and only adds
/// statements that touch the reset control.
fn is_pure_insertion(before: &[String], after: &[String], allowed: &dyn Fn(&str) -> bool) -> bool {
    let mut i = 0;
    for statement in after {
        if i < before.len() && *statement == before[i] {
            i += 1;
        } else if !allowed(statement) {
            return false;
        }
    }
    i == before.len()
}

/// Original widgets placed in another layout, or in another order.
fn moved_widgets(orig: &Outline, cand: &Outline, reset_attr: Option<&str>) -> Vec<Change> {
    let mut changes = Vec::new();
    let is_reset = |item: &str| reset_attr.is_some_and(|a| short_name(item) == a);
    for (layout, item, _) in &orig.placements {
        if let Some((new_layout, _, line)) = cand.placements.iter().find(|(_, i, _)| i == item) {
            if new_layout != layout {
                changes.push(Change {
                    kind: "widget_moved".into(),
                    detail: format!("`{item}` is added to `{new_layout}` instead of `{layout}`"),
                    line: *line,
                });
            }
        }
    }
    let order = |o: &Outline| -> Vec<String> {
        o.placements.iter().map(|(l, i, _)| format!("{l}:{i}")).collect()
    };
    let original_order = order(orig);
    let candidate_order: Vec<String> = order(cand)
        .into_iter()
        .filter(|p| original_order.contains(p) && !is_reset(p.split(':').nth(1).unwrap_or("")))
        .collect();
    let kept: Vec<String> = original_order.iter().filter(|p| candidate_order.contains(p)).cloned().collect();
    if kept != candidate_order {
        let line = cand.placements.first().map(|p| p.2).unwrap_or(0);
        changes.push(Change {
            kind: "widget_moved".into(),
            detail: "the original widgets are added to their layouts in another order".into(),
            line,
        });
    }
    changes
}

fn find_reset_control(candidate: &str, cand: &Outline, original: &OriginalIndex) -> Option<ResetControl> {
    let pattern = original.pattern.as_ref()?;
    for caps in control_regex().captures_iter(candidate) {
        let attribute = caps[1].to_string();
        let label = caps[3].replace('&', "");
        if !pattern.is_match(&label) {
            continue;
        }
        let line = candidate[..caps.get(0)?.start()].matches('\n').count() + 1;
        let attr = regex::escape(&attribute);
        let connect = Regex::new(&format!(
            r"{attr}\.(?:clicked|triggered)\.connect\(\s*(?:self\.(\w+)\s*(\(\s*\))?|lambda[^:]*:\s*self\.(\w+)\()"
        ))
        .ok()?;
        let (handler, connected) = match connect.captures(candidate) {
            Some(c) => {
                let name = c.get(1).or(c.get(3)).map(|m| m.as_str().to_string());
                let called = c.get(2).is_some();
                (name, !called)
            }
            None => (None, false),
        };
        let added = Regex::new(&format!(r"([A-Za-z_][\w.]*)\.add(?:Widget|Action)\(\s*{attr}\b"))
            .ok()?
            .captures(candidate)
            .map(|c| c[1].to_string());
        let clears = handler
            .as_ref()
            .map(|h| handler_clears(cand, h))
            .unwrap_or_default();
        return Some(ResetControl { attribute, text: caps[3].to_string(), line, handler, connected, added_to_layout: added, clears });
    }
    None
}

fn handler_clears(cand: &Outline, handler: &str) -> Vec<String> {
    static CLEAR: OnceLock<Regex> = OnceLock::new();
    let re = CLEAR.get_or_init(|| {
        Regex::new(r#"^self\.(\w+)(?:\s*=\s*(\[\]|\{\}|None|""|list\(\)|dict\(\))$|\.(clear|setText|setPlainText|setHtml)\(\s*(""|)\s*\)$)|^del self\.(\w+)\[:\]$"#)
            .expect("valid regex")
    });
    let mut found = Vec::new();
    for class in &cand.classes {
        for method in class.methods.iter().filter(|m| m.name == handler) {
            for statement in &method.statements {
                if let Some(c) = re.captures(statement) {
                    if let Some(value) = c.get(2) {
                        found.push(format!("{} = {}", &c[1], value.as_str()));
                    } else if let Some(call) = c.get(3) {
                        found.push(format!("{}.{}()", &c[1], call.as_str()));
                    } else if let Some(name) = c.get(5) {
                        found.push(format!("del {}[:]", name.as_str()));
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{AppSpec, Limits, ResetControlSpec};

    const ORIGINAL: &str = r#"import sys
import requests
from PyQt5.QtWidgets import QApplication, QMainWindow, QVBoxLayout, QPushButton, QTextEdit


class App(QMainWindow):
    def __init__(self):
        super().__init__()
        self.chat_history = []
        self.init_ui()

    def init_ui(self):
        self.left_layout = QVBoxLayout()
        self.prompt_entry = QTextEdit()
        self.submit_button = QPushButton("Submit")
        self.submit_button.clicked.connect(self.submit)
        self.left_layout.addWidget(self.prompt_entry)
        self.left_layout.addWidget(self.submit_button)

    def submit(self):
        self.chat_history.append({"role": "user", "content": self.prompt_entry.toPlainText()})
        requests.post("http://localhost:11434/api/chat", json={"messages": self.chat_history})


if __name__ == "__main__":
    app = QApplication(sys.argv)
    w = App()
    w.show()
    sys.exit(app.exec_())
"#;

    fn task() -> Task {
        Task {
            id: "t".into(),
            title: "t".into(),
            prompt: "p".into(),
            original: "original.py".into(),
            app: AppSpec {
                window_class: "App".into(),
                ui_builder: "init_ui".into(),
                may_extend: vec!["__init__".into(), "init_ui".into()],
                prompt_entry: "prompt_entry".into(),
                submit_control: "submit_button".into(),
                history_attributes: vec!["chat_history".into()],
                history_display: vec![],
            },
            reset_control: ResetControlSpec { text_pattern: r"(?i)\b(reset|clear|new\s+(chat|conversation))\b".into() },
            limits: Limits { wall_seconds: 30, memory_mb: 512, pids: 64, cpus: 1.0, tmpfs_mb: 64, file_size_mb: 16, open_files: 256, output_cap_kb: 64 },
            original_source: ORIGINAL.into(),
        }
    }

    fn correct() -> String {
        ORIGINAL
            .replace(
                "        self.left_layout.addWidget(self.submit_button)\n",
                "        self.left_layout.addWidget(self.submit_button)\n        self.reset_button = QPushButton(\"Reset Conversation\")\n        self.reset_button.clicked.connect(self.reset_conversation)\n        self.left_layout.addWidget(self.reset_button)\n\n    def reset_conversation(self):\n        \"\"\"Forget the conversation.\"\"\"\n        self.chat_history = []\n        self.prompt_entry.clear()\n",
            )
    }

    #[test]
    fn a_correct_refactoring_has_no_unrequested_change() {
        let r = grade(&correct(), &task());
        assert!(!r.is_snippet(), "{r:#?}");
        assert!(r.unrequested_changes.is_empty(), "{:#?}", r.unrequested_changes);
        let control = r.reset_control.expect("found");
        assert!(control.connected);
        assert_eq!(control.handler.as_deref(), Some("reset_conversation"));
        assert_eq!(control.added_to_layout.as_deref(), Some("self.left_layout"));
        assert!(control.clears.contains(&"chat_history = []".to_string()), "{:?}", control.clears);
    }

    #[test]
    fn a_placeholder_makes_a_snippet() {
        let snippet = "class App(QMainWindow):\n    # ... rest of the code unchanged ...\n    def reset_conversation(self):\n        self.chat_history = []\n";
        let r = grade(snippet, &task());
        assert!(r.is_snippet());
        assert!(!r.placeholders.is_empty());
        assert!(r.missing.iter().any(|m| m.name == "App.submit"));
    }

    #[test]
    fn a_missing_method_is_listed() {
        let without_submit = correct().replace("    def submit(self):\n        self.chat_history.append", "    def other(self):\n        self.chat_history.append");
        let r = grade(&without_submit, &task());
        assert!(r.missing.iter().any(|m| m.kind == "method" && m.name == "App.submit"), "{:#?}", r.missing);
    }

    #[test]
    fn a_new_row_layout_moving_submit_is_reported() {
        let moved = correct().replace(
            "        self.left_layout.addWidget(self.prompt_entry)\n        self.left_layout.addWidget(self.submit_button)\n",
            "        button_layout = QHBoxLayout()\n        button_layout.addWidget(self.submit_button)\n        self.left_layout.addLayout(button_layout)\n        self.left_layout.addWidget(self.prompt_entry)\n",
        );
        let r = grade(&moved, &task());
        let kinds: Vec<&str> = r.unrequested_changes.iter().map(|c| c.kind.as_str()).collect();
        assert!(kinds.contains(&"new_layout"), "{kinds:?}");
        assert!(kinds.contains(&"widget_moved"), "{kinds:?}");
    }

    #[test]
    fn a_thread_worker_class_is_called_out() {
        let threaded = correct().replace("class App(QMainWindow):", "class ApiWorker(QThread):\n    def run(self):\n        pass\n\n\nclass App(QMainWindow):");
        let r = grade(&threaded, &task());
        assert_eq!(r.new_classes[0].kind, "thread");
        assert!(r.unrequested_changes.iter().any(|c| c.kind == "new_class" && c.detail.contains("ApiWorker")));
    }

    #[test]
    fn a_changed_submit_is_a_method_change() {
        let changed = correct().replace("json={\"messages\": self.chat_history}", "json={\"messages\": self.chat_history[-1:]}");
        let r = grade(&changed, &task());
        assert!(r.unrequested_changes.iter().any(|c| c.kind == "method_changed" && c.detail.contains("submit")), "{:#?}", r.unrequested_changes);
    }

    #[test]
    fn connecting_a_call_is_flagged() {
        let called = correct().replace("connect(self.reset_conversation)", "connect(self.reset_conversation())");
        let r = grade(&called, &task());
        assert!(!r.reset_control.unwrap().connected);
        assert!(r.unrequested_changes.iter().any(|c| c.kind == "connect_calls_handler"));
    }

    #[test]
    fn a_syntax_error_has_its_line() {
        let broken = correct().replace("self.reset_button = QPushButton(\"Reset Conversation\")", "self.reset_button = QPushButton(\"Reset Conversation\"");
        let r = grade(&broken, &task());
        assert!(!r.syntax_errors.is_empty());
    }

    #[test]
    fn introspection_is_flagged_as_tampering() {
        let sneaky = correct().replace("        self.chat_history = []\n", "        self.chat_history = []\n        sys._getframe(1)\n");
        let r = grade(&sneaky, &task());
        assert!(r.suspicious.iter().any(|c| c.detail.contains("_getframe")), "{:#?}", r.suspicious);
    }

    #[test]
    fn garbage_never_panics() {
        for input in ["", "\u{0}\u{0}", "def (:\n", "class\n\tx", "@@ -1 +1 @@\n--- a/x\n+++ b/x\n"] {
            let _ = grade(input, &task());
        }
    }
}
