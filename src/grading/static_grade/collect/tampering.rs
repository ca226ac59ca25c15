//! Tampering with the harness or introspection of it, as the walk finds
//! it: Qt's and the interpreter's objects patched, stack frames and the
//! heap walked, hooks named or imported. `changes` keeps those the
//! original does not have.

use tree_sitter::Node;

use super::Collector;
use crate::grading::static_grade::facts::Finding;
use crate::grading::static_grade::grammar::{fields, line_of};
use crate::grading::static_grade::text::compact;

/// Objects whose attributes a candidate must not replace.
const PATCH_TARGETS: [&str; 11] = [
    "QApplication",
    "QCoreApplication",
    "QGuiApplication",
    "QtWidgets.QApplication",
    "QtCore.QCoreApplication",
    "QtGui.QGuiApplication",
    "sys",
    "time",
    "os",
    "builtins",
    "__builtins__",
];

impl Collector<'_, '_> {
    /// Keeps the first finding of each key; every one goes to the spans
    /// being recorded, since which are kept in an answer depends on what
    /// came before them there.
    pub(super) fn finding(&mut self, key: &'static str, detail: String, line: usize) {
        if let Some((_, _, span, _)) = &mut self.recording {
            span.findings.push(Finding {
                key,
                detail: detail.clone(),
                line,
            });
        }
        if let Some((_, _, span, _)) = &mut self.recording_statement {
            span.findings.push(Finding {
                key,
                detail: detail.clone(),
                line,
            });
        }
        if !self.facts.tampering.iter().any(|f| f.key == key) {
            self.facts.tampering.push(Finding { key, detail, line });
        }
    }

    /// `QTest`, `__builtins__` and `__import__` named anywhere, and the
    /// interpreter's hooks imported by name.
    pub(super) fn named_hooks(&mut self, node: Node, text: &str) {
        match text {
            "QTest" => self.finding(
                "QTest",
                "uses QTest (drives or inspects widgets like the harness)".into(),
                line_of(node),
            ),
            "__builtins__" => self.finding(
                "builtins",
                "uses __builtins__ (can replace built-in functions)".into(),
                line_of(node),
            ),
            "__import__" => self.finding(
                "__import__",
                "uses __import__ (hidden imports)".into(),
                line_of(node),
            ),
            _ => {}
        }
        if self.import_depth.is_some() {
            // `from sys import _getframe` brings the same hooks in by name.
            if let Some((key, detail)) = introspection(text, None) {
                self.finding(key, detail.to_string(), line_of(node));
            }
        }
    }

    /// `sys._getframe`, `frame.f_back`, `widget.grab`: introspection read
    /// off an object.
    pub(super) fn attribute(&mut self, node: Node) {
        // The name after the last dot: cheaper than two field lookups on
        // the most common node of a PyQt script.
        let text = self.text(node);
        let (object, name) = text.rsplit_once('.').unwrap_or(("", text));
        if let Some((key, detail)) = introspection(name.trim(), Some(object.trim())) {
            self.finding(key, detail.to_string(), line_of(node));
        }
    }

    /// `Q.exec_ = …`, `sys.exit = …`, `time.sleep = …`, `sys.modules[…] = …`.
    pub(super) fn patching(&mut self, node: Node) {
        let Some(left) = node.child_by_field_id(fields().left) else {
            return;
        };
        let line = line_of(node);
        match left.kind() {
            "attribute" => {
                let object = compact(self.field_text(left, fields().object));
                if PATCH_TARGETS.contains(&object.as_ref()) {
                    let target = compact(self.text(left));
                    self.finding("patch", format!("monkey-patches `{target}`"), line);
                }
            }
            "subscript" => {
                let value = compact(self.field_text(left, fields().value));
                if value == "sys.modules" {
                    self.finding("sys.modules", "assigns into sys.modules".into(), line);
                }
            }
            _ => {}
        }
    }

    /// `sys.modules.update(…)` and the like.
    pub(super) fn sys_modules_call(&mut self, receiver: &str, line: usize) {
        if receiver == "sys.modules" {
            self.finding("sys.modules", "changes sys.modules".into(), line);
        }
    }

    /// `setattr(QApplication, "exec_", …)`.
    pub(super) fn setattr_patch(&mut self, name: &str, arguments: Option<Node>, line: usize) {
        if name == "setattr" {
            let target = arguments
                .and_then(|a| self.positional(a, 0))
                .map(|t| compact(self.text(t)).into_owned())
                .unwrap_or_default();
            if PATCH_TARGETS.contains(&target.as_ref()) {
                self.finding(
                    "patch",
                    format!("monkey-patches `{target}` with setattr"),
                    line,
                );
            }
        }
    }
}

/// Attribute names that read the interpreter's or the window's insides, or
/// leave without cleanup: (key, detail). `object` is what they are read
/// from, when known.
fn introspection(name: &str, object: Option<&str>) -> Option<(&'static str, &'static str)> {
    match name {
        "_getframe" | "_current_frames" => Some((
            "sys._getframe",
            "reads interpreter stack frames (sys._getframe)",
        )),
        "f_back" | "f_globals" | "f_locals" => {
            Some(("frames", "walks stack frames (f_back/f_globals/f_locals)"))
        }
        "get_objects" | "get_referrers" | "get_referents" => {
            Some(("gc.get_objects", "walks the heap (gc.get_objects and kin)"))
        }
        "settrace" | "setprofile" => Some(("sys.settrace", "installs a trace or profile hook")),
        "_exit" if object.is_none_or(|o| o == "os") => {
            Some(("os._exit", "calls os._exit (exits without cleanup)"))
        }
        "grab" | "grabWindow" => Some((
            ".grab(",
            "grabs widget pixels (what the harness screenshots)",
        )),
        _ => None,
    }
}
