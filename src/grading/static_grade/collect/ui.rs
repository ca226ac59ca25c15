//! What calls and assignments say about the window: controls (buttons,
//! actions), layouts, where widgets are added, signal connections and the
//! handlers they name, labels and tooltips, dialogs opened.

use tree_sitter::Node;

use super::Collector;
use crate::grading::static_grade::facts::{
    Connection, Control, HandlerRef, LayoutCreation, Placement,
};
use crate::grading::static_grade::grammar::{fields, kinds, line_of};
use crate::grading::static_grade::text::{collapse_whitespace, compact, shorten, string_value};

const BUTTON_CLASSES: [&str; 4] = [
    "QPushButton",
    "QAction",
    "QToolButton",
    "QCommandLinkButton",
];

const LAYOUT_CLASSES: [&str; 6] = [
    "QHBoxLayout",
    "QVBoxLayout",
    "QGridLayout",
    "QFormLayout",
    "QStackedLayout",
    "QBoxLayout",
];

const DIALOG_CLASSES: [&str; 8] = [
    "QMessageBox",
    "QDialog",
    "QInputDialog",
    "QFileDialog",
    "QColorDialog",
    "QFontDialog",
    "QProgressDialog",
    "QErrorMessage",
];

const SIGNALS: [&str; 5] = ["clicked", "triggered", "pressed", "released", "toggled"];

const LABEL_SETTERS: [&str; 6] = [
    "setText",
    "setToolTip",
    "setStatusTip",
    "setWhatsThis",
    "setIconText",
    "setAccessibleName",
];

/// The same labels given as a constructor's keywords (`QPushButton("🗑",
/// toolTip="Clear the chat")`); `objectName` is read as words.
const LABEL_KEYWORDS: [&str; 6] = [
    "text",
    "toolTip",
    "statusTip",
    "whatsThis",
    "accessibleName",
    "objectName",
];

/// An objectName as the words it is made of, as the harness reads it:
/// `clearChatButton`, `clear_chat_btn` -> `clear Chat Button`, `clear chat btn`.
pub(in crate::grading::static_grade) fn name_words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.') {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_lowercase();
        out.push(c);
    }
    out
}

impl Collector<'_, '_> {
    pub(super) fn assignment(&mut self, node: Node) {
        self.patching(node);
        let (Some(left), Some(right)) = (
            node.child_by_field_id(fields().left),
            node.child_by_field_id(fields().right),
        ) else {
            return;
        };
        let target = compact(self.text(left)).into_owned();
        let line = line_of(node);
        if right.kind() == "call" {
            let function = right.child_by_field_id(fields().function);
            let callee = function.map_or(String::new(), |f| compact(self.text(f)).into_owned());
            let class = callee.rsplit('.').next().unwrap_or("");
            let arguments = right.child_by_field_id(fields().arguments);
            if BUTTON_CLASSES.contains(&class) {
                let text = arguments.and_then(|a| self.first_string(a));
                let keyword_handler = arguments.and_then(|a| self.keyword_handler(a));
                if let Some(arguments) = arguments {
                    for label in self.keyword_labels(arguments) {
                        self.facts.labels.push((target.clone(), label));
                    }
                }
                self.facts.controls.push(Control {
                    scope: self.scope(),
                    target: target.clone(),
                    text,
                    line,
                    keyword_handler,
                    added_to: None,
                    action: class == "QAction",
                });
            } else if class == "addAction" {
                if let Some(control) = function
                    .zip(arguments)
                    .and_then(|(f, a)| self.added_action(f, a, target.clone(), line))
                {
                    self.facts.controls.push(control);
                }
            } else if LAYOUT_CLASSES.contains(&class) {
                self.facts.layouts.push(LayoutCreation {
                    scope: self.scope(),
                    target: target.clone(),
                    class: class.to_string(),
                    line,
                });
            }
        }
        if let Some(cleared) = self.clear_by_assignment(left, right) {
            if let Some(function) = self.current_function() {
                function.clears.push(cleared);
            }
        }
    }

    /// A call: what it adds, connects, labels or opens, and (in
    /// `tampering`) what it patches.
    pub(super) fn call(&mut self, node: Node) {
        let Some(function) = node.child_by_field_id(fields().function) else {
            return;
        };
        let arguments = node.child_by_field_id(fields().arguments);
        let line = line_of(node);
        let kind = function.kind_id();
        if kind == kinds().attribute {
            let receiver = compact(self.field_text(function, fields().object));
            let method = self.field_text(function, fields().attribute);
            self.method_call(node, function, &receiver, method, arguments);
            self.sys_modules_call(&receiver, line);
        } else if kind == kinds().identifier {
            let name = self.text(function);
            if DIALOG_CLASSES.contains(&name) {
                self.facts.dialogs.push((name.to_string(), line));
            }
            self.setattr_patch(name, arguments, line);
        }
    }

    fn method_call(
        &mut self,
        call: Node,
        function: Node,
        receiver: &str,
        method: &str,
        arguments: Option<Node>,
    ) {
        let line = line_of(call);
        let root = receiver.split('.').next().unwrap_or("");
        if DIALOG_CLASSES.contains(&root) {
            self.facts.dialogs.push((format!("{root}.{method}"), line));
        }
        match method {
            "addWidget" | "addLayout" | "insertWidget" | "insertLayout" | "addAction" => {
                let position = usize::from(method.starts_with("insert"));
                let item = arguments.and_then(|a| self.positional(a, position));
                let item = item.filter(|i| i.kind() != "string");
                let titled = method == "addAction" && arguments.is_some_and(|a| self.has_text(a));
                if let Some(item) = item.filter(|_| !titled) {
                    self.facts.placements.push(Placement {
                        scope: self.scope(),
                        layout: receiver.to_string(),
                        item: compact(self.text(item)).into_owned(),
                        line,
                    });
                } else if titled && call.parent().is_none_or(|p| p.kind() != "assignment") {
                    // `menu.addAction("Reset", self.reset)` as a statement
                    // (or chained: `.triggered.connect(…)`) makes an action
                    // as much as the assigned form does; it is keyed by its
                    // call's text, which a chained `connect` names as sender.
                    let target = compact(self.text(call)).into_owned();
                    if let Some(control) =
                        arguments.and_then(|a| self.added_action(function, a, target, line))
                    {
                        self.facts.controls.push(control);
                    }
                }
            }
            "connect" => {
                let signal_owner = function.child_by_field_id(fields().object);
                if let Some(signal) = signal_owner.filter(|s| s.kind() == "attribute") {
                    let signal_name = self.field_text(signal, fields().attribute);
                    if SIGNALS.contains(&signal_name) {
                        let handler = arguments
                            .and_then(|a| self.positional(a, 0))
                            .map_or(HandlerRef::Other, |h| self.handler_ref(h));
                        self.facts.connections.push(Connection {
                            sender: compact(self.field_text(signal, fields().object)).into_owned(),
                            handler,
                            line,
                            text: shorten(&collapse_whitespace(self.text(call))),
                        });
                    }
                }
            }
            _ => {}
        }
        if LABEL_SETTERS.contains(&method) {
            if let Some(text) = arguments.and_then(|a| self.first_string(a)) {
                self.facts.labels.push((receiver.to_string(), text));
            }
        } else if method == "setObjectName" {
            if let Some(text) = arguments.and_then(|a| self.first_string(a)) {
                self.facts
                    .labels
                    .push((receiver.to_string(), name_words(&text)));
            }
        }
        if receiver == "self" {
            let method = method.to_string();
            if let Some(function) = self.current_function() {
                function.self_calls.push(method);
            }
        }
        if let Some(cleared) = self.clear_by_call(call) {
            if let Some(function) = self.current_function() {
                function.clears.push(cleared);
            }
        }
    }

    /// The `index`-th positional argument of an argument list.
    pub(super) fn positional<'t>(&self, arguments: Node<'t>, index: usize) -> Option<Node<'t>> {
        let mut cursor = arguments.walk();
        let found = arguments
            .named_children(&mut cursor)
            .filter(|a| !matches!(a.kind(), "keyword_argument" | "comment"))
            .nth(index);
        found
    }

    /// An action made by `bar.addAction(…)` with a text: `("Reset")`,
    /// `(QIcon(…), "Reset", self.reset)`, Qt 6's `("Reset", "Ctrl+R",
    /// self.reset)`; the callable after the text is its handler.
    fn added_action(
        &self,
        function: Node,
        arguments: Node,
        target: String,
        line: usize,
    ) -> Option<Control> {
        let mut cursor = arguments.walk();
        let positional: Vec<Node> = arguments
            .named_children(&mut cursor)
            .filter(|a| !matches!(a.kind(), "keyword_argument" | "comment"))
            .collect();
        let at = positional.iter().position(|a| self.is_text(*a))?;
        let text = self.text_of(positional[at])?;
        // The slot is after the text, before or after a shortcut (Qt 5:
        // text, slot, key; Qt 6: text, key, slot).
        let keyword_handler = positional[at + 1..]
            .iter()
            .rev()
            .find(|h| match h.kind() {
                "identifier" | "lambda" => true,
                "attribute" => self.text(**h).starts_with("self."),
                // A `partial(self.h, …)`, or `self.h()` (a bug: its result is
                // connected); not a key sequence or an icon.
                "call" => {
                    let callee = compact(self.field_text(**h, fields().function));
                    callee.ends_with("partial") || callee.starts_with("self.")
                }
                _ => false,
            })
            .map(|h| self.handler_ref(*h))
            .or_else(|| self.keyword_handler(arguments));
        let receiver = (function.kind() == "attribute")
            .then(|| compact(self.field_text(function, fields().object)).into_owned());
        Some(Control {
            scope: self.scope(),
            target,
            text: Some(text),
            line,
            keyword_handler,
            added_to: receiver,
            action: true,
        })
    }

    fn has_text(&self, arguments: Node) -> bool {
        let mut cursor = arguments.walk();
        let found = arguments
            .named_children(&mut cursor)
            .any(|a| self.is_text(a));
        found
    }

    /// A string literal's value, or a translated one's.
    fn text_of(&self, node: Node) -> Option<String> {
        if node.kind() == "string" {
            return Some(string_value(self.text(node)));
        }
        let inner = node.child_by_field_id(fields().arguments)?;
        let mut cursor = inner.walk();
        let found = inner
            .named_children(&mut cursor)
            .find(|a| a.kind() == "string")
            .map(|s| string_value(self.text(s)));
        found
    }

    /// A string, or a translated one (`self.tr("…")`).
    fn is_text(&self, node: Node) -> bool {
        match node.kind() {
            "string" => true,
            "call" => {
                let callee = compact(self.field_text(node, fields().function));
                let name = callee.rsplit('.').next().unwrap_or("");
                matches!(name, "tr" | "translate" | "_" | "qsTr")
            }
            _ => false,
        }
    }

    /// The first string argument (also inside `self.tr("…")`); a string
    /// given as it is wins over one inside a call (`QIcon("x.png")`).
    fn first_string(&self, arguments: Node) -> Option<String> {
        let mut cursor = arguments.walk();
        let children: Vec<Node> = arguments.named_children(&mut cursor).collect();
        let direct = children.iter().find(|a| a.kind() == "string");
        direct.and_then(|a| self.text_of(*a)).or_else(|| {
            children
                .iter()
                .filter(|a| a.kind() == "call")
                .find_map(|a| self.text_of(*a))
        })
    }

    /// The labels a constructor's keywords give (`toolTip="Clear"`).
    fn keyword_labels(&self, arguments: Node) -> Vec<String> {
        let mut cursor = arguments.walk();
        let found = arguments
            .named_children(&mut cursor)
            .filter(|a| a.kind() == "keyword_argument")
            .filter_map(|a| {
                let name = self.field_text(a, fields().name);
                if !LABEL_KEYWORDS.contains(&name) {
                    return None;
                }
                let value = a.child_by_field_id(fields().value)?;
                let text = self.text_of(value).filter(|_| self.is_text(value))?;
                Some(if name == "objectName" {
                    name_words(&text)
                } else {
                    text
                })
            })
            .collect();
        found
    }

    /// `QPushButton("Reset", clicked=self.reset)`.
    fn keyword_handler(&self, arguments: Node) -> Option<HandlerRef> {
        let mut cursor = arguments.walk();
        let found = arguments
            .named_children(&mut cursor)
            .filter(|a| a.kind() == "keyword_argument")
            .find(|a| SIGNALS.contains(&self.field_text(*a, fields().name)))
            .and_then(|a| a.child_by_field_id(fields().value))
            .map(|value| self.handler_ref(value));
        found
    }

    fn handler_ref(&self, node: Node) -> HandlerRef {
        match node.kind() {
            "identifier" => HandlerRef::Passed(self.text(node).to_string()),
            "attribute" if compact(self.field_text(node, fields().object)) == "self" => {
                HandlerRef::Passed(self.field_text(node, fields().attribute).to_string())
            }
            "call" => {
                let Some(function) = node.child_by_field_id(fields().function) else {
                    return HandlerRef::Other;
                };
                let callee = compact(self.text(function)).into_owned();
                if callee.ends_with("partial") {
                    return node
                        .child_by_field_id(fields().arguments)
                        .and_then(|a| self.positional(a, 0))
                        .map_or(HandlerRef::Other, |h| match self.handler_ref(h) {
                            HandlerRef::Passed(name) => HandlerRef::Passed(name),
                            _ => HandlerRef::Other,
                        });
                }
                match callee.strip_prefix("self.") {
                    Some(name) if !name.contains('.') => HandlerRef::Called(name.to_string()),
                    _ if !callee.contains('.') => HandlerRef::Called(callee),
                    _ => HandlerRef::Other,
                }
            }
            "lambda" => {
                let Some(body) = node.child_by_field_id(fields().body) else {
                    return HandlerRef::Other;
                };
                let mut calls = Vec::new();
                match body.kind() {
                    "call" => calls.push(body),
                    "tuple" | "list" | "parenthesized_expression" => {
                        let mut cursor = body.walk();
                        calls.extend(
                            body.named_children(&mut cursor)
                                .filter(|c| c.kind() == "call"),
                        );
                    }
                    _ => {}
                }
                let handler = calls.iter().find_map(|call| {
                    let callee = compact(self.field_text(*call, fields().function));
                    callee
                        .strip_prefix("self.")
                        .filter(|name| !name.contains('.'))
                        .map(str::to_string)
                });
                let clears = calls
                    .iter()
                    .filter_map(|c| self.clear_by_call(*c))
                    .collect();
                HandlerRef::Lambda { handler, clears }
            }
            _ => HandlerRef::Other,
        }
    }
}
