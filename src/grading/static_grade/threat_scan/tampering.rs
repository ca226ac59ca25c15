//! What reads or alters the judge: Qt's and the interpreter's objects
//! patched, stack frames and the heap walked, interpreter hooks, the
//! judge's names, processes and descriptors looked for, attributes reached
//! by a built name.

use std::sync::OnceLock;

use regex::Regex;
use tree_sitter::Node;

use super::{scan_kinds, ThreatScan};
use crate::grading::static_grade::grammar::{fields, is_docstring};
use crate::grading::static_grade::text::{compact, shorten, string_value};
use crate::grading::static_grade::Threat;
use crate::grading::FailureCode;

/// Modules the judge itself uses in the candidate's process: replacing
/// anything in them alters the judge.
const GUARDED_MODULES: [&str; 24] = [
    "sys",
    "os",
    "os.path",
    "posix",
    "time",
    "builtins",
    "__builtins__",
    "threading",
    "_thread",
    "gc",
    "inspect",
    "traceback",
    "importlib",
    "runpy",
    "signal",
    "faulthandler",
    "atexit",
    "io",
    "json",
    "base64",
    "collections",
    "itertools",
    "re",
    "socket",
];

/// `sys` attributes an app may redirect without touching the judge.
const SYS_ATTRIBUTES_AN_APP_SETS: [&str; 6] = [
    "stdout",
    "stderr",
    "stdin",
    "argv",
    "path",
    "dont_write_bytecode",
];

const FRAME_WALKERS: [&str; 9] = [
    "sys._getframe",
    "sys._current_frames",
    "inspect.stack",
    "inspect.currentframe",
    "inspect.getouterframes",
    "inspect.getinnerframes",
    "inspect.trace",
    "traceback.walk_stack",
    "traceback.extract_stack",
];

const HEAP_WALKERS: [&str; 3] = ["gc.get_objects", "gc.get_referrers", "gc.get_referents"];

const INTERPRETER_HOOKS: [&str; 8] = [
    "sys.meta_path",
    "sys.path_hooks",
    "sys.addaudithook",
    "sys.settrace",
    "sys.setprofile",
    "threading.settrace",
    "threading.setprofile",
    "sys.monitoring",
];

/// Calls taking a file descriptor first.
pub(super) const FD_CALLS: [&str; 19] = [
    "open",
    "io.open",
    "io.FileIO",
    "os.write",
    "os.read",
    "os.fdopen",
    "os.close",
    "os.closerange",
    "os.dup",
    "os.dup2",
    "os.fstat",
    "os.lseek",
    "os.ftruncate",
    "os.fsync",
    "os.sendfile",
    "os.writev",
    "os.pwrite",
    "os.set_inheritable",
    "socket.fromfd",
];

/// Qt-to-Qt aliases binding-compatibility code writes
/// (`QtCore.Signal = QtCore.pyqtSignal`): not patches.
const BINDING_ALIASES: [(&str, &str); 3] = [
    ("Signal", "pyqtSignal"),
    ("Slot", "pyqtSlot"),
    ("Property", "pyqtProperty"),
];

/// Tests that tell a function written in Python from one built into Qt or
/// the interpreter: nothing a chat app needs, and how the judge's patched
/// Qt methods are told from the binding's own.
const FUNCTION_KIND_TESTS: [&str; 14] = [
    "inspect.isbuiltin",
    "inspect.isfunction",
    "inspect.isroutine",
    "inspect.ismethoddescriptor",
    "inspect.getsource",
    "inspect.getsourcefile",
    "inspect.getfile",
    "types.FunctionType",
    "types.LambdaType",
    "types.BuiltinFunctionType",
    "types.BuiltinMethodType",
    "types.MethodDescriptorType",
    "types.WrapperDescriptorType",
    "types.MethodWrapperType",
];

/// A function's insides: read only by code that looks at how a function
/// was made (the judge's patches are Python functions).
const FUNCTION_INSIDES: [&str; 3] = ["__code__", "__closure__", "__globals__"];

/// The last names of what [`introspection_of_the_judge`], `sys.modules`
/// and `os.environ` look for.
pub(super) const INTROSPECTED_NAMES: [&str; 33] = [
    "_getframe",
    "_current_frames",
    "stack",
    "currentframe",
    "getouterframes",
    "getinnerframes",
    "trace",
    "walk_stack",
    "extract_stack",
    "get_objects",
    "get_referrers",
    "get_referents",
    "meta_path",
    "path_hooks",
    "addaudithook",
    "settrace",
    "setprofile",
    "modules",
    "environ",
    "isbuiltin",
    "isfunction",
    "isroutine",
    "ismethoddescriptor",
    "getsource",
    "getsourcefile",
    "getfile",
    "FunctionType",
    "LambdaType",
    "BuiltinFunctionType",
    "BuiltinMethodType",
    "MethodDescriptorType",
    "WrapperDescriptorType",
    "MethodWrapperType",
];

impl<'t> ThreatScan<'t> {
    /// Names of the judge, and its processes' and descriptors' files.
    pub(super) fn string(&mut self, node: Node<'t>) {
        let kinds = scan_kinds();
        let mut cursor = node.walk();
        let mut first = true;
        let mut hit = None;
        for part in node.children(&mut cursor) {
            let kind = part.kind_id();
            if kind == kinds.interpolation {
                first = false;
                continue;
            }
            if kind != kinds.string_content {
                continue;
            }
            let content = self.text(part);
            if judge_name().is_match(content) {
                hit = Some((
                    FailureCode::Tampering,
                    format!("looks for the judge's traces (\"{}\")", shorten(content)),
                ));
                break;
            }
            if first && judge_process_path(content) {
                hit = Some((
                    FailureCode::Tampering,
                    format!(
                        "looks into the judge's processes or descriptors ({})",
                        shorten(content)
                    ),
                ));
                break;
            }
            first = false;
        }
        if hit.is_none() && names_reply_mark(self.text(node)) && self.searched_for(node) {
            hit = Some((
                FailureCode::Tampering,
                "looks for the judge's reply marks (U+2588 FULL BLOCK) in what it reads".into(),
            ));
        }
        // A docstring is never read by the code (looked up last: finding a
        // node's parent costs a walk from the root).
        if let Some((kind, what)) = hit.filter(|_| !node.parent().is_some_and(is_docstring)) {
            self.report(kind, node, what);
        }
    }

    /// Whether a string is what the code looks for: compared with (`in`,
    /// `==`) or searched for (`text.count(s)`, `re.search(s, text)`). A
    /// glyph an app only shows (a typing cursor) is neither.
    fn searched_for(&self, node: Node) -> bool {
        let kinds = scan_kinds();
        let mut at = node;
        while let Some(parent) = at.parent() {
            if parent.kind_id() == kinds.parenthesized_expression {
                at = parent;
                continue;
            }
            if parent.kind_id() == kinds.comparison_operator {
                return true;
            }
            let Some(call) = parent.parent().filter(|c| c.kind_id() == kinds.call) else {
                return false;
            };
            let function = call
                .child_by_field_id(fields().function)
                .map_or("", |f| self.text(f));
            let name = function.rsplit('.').next().unwrap_or("");
            return matches!(
                name,
                "count"
                    | "find"
                    | "rfind"
                    | "index"
                    | "rindex"
                    | "startswith"
                    | "endswith"
                    | "search"
                    | "match"
                    | "fullmatch"
                    | "findall"
                    | "finditer"
                    | "__contains__"
            );
        }
        false
    }

    /// `QTest.mouseClick = …`, `sys.excepthook = …`, `__builtins__[k] = …`.
    pub(super) fn store(&mut self, target: Node<'t>, value: Option<Node<'t>>) {
        let fields = fields();
        if target.kind_id() == scan_kinds().subscript {
            let Some(object) = target.child_by_field_id(fields.value) else {
                return;
            };
            let Some(name) = self.canonical(self.text(object)) else {
                return;
            };
            if matches!(
                name.as_str(),
                "__builtins__" | "builtins.__dict__" | "sys.modules"
            ) {
                self.report(
                    FailureCode::Tampering,
                    target,
                    format!("replaces entries of {name}"),
                );
            }
            return;
        }
        let (Some(object), Some(attribute)) = (
            target.child_by_field_id(fields.object),
            target.child_by_field_id(fields.attribute),
        ) else {
            return;
        };
        let attribute = self.text(attribute);
        let object_text = compact(self.text(object));
        // `type(widget).toPlainText = …` patches the widget's class.
        let through_type = (object_text.starts_with("type(") && object_text.ends_with(')'))
            || object_text.ends_with(".__class__");
        if through_type && !matches!(object_text.as_ref(), "type(self)" | "self.__class__") {
            self.report(
                FailureCode::Tampering,
                target,
                format!("patches `{attribute}` of another object's class"),
            );
            return;
        }
        let Some(object) = self.canonical(&object_text) else {
            return;
        };
        if let Some(what) = self.patched(&object, attribute, value) {
            self.report(FailureCode::Tampering, target, what);
        }
    }

    /// What writing `object.attribute` (canonical) patches, if it is the
    /// judge's: a Qt class or module, or a module the judge runs on.
    fn patched(&self, object: &str, attribute: &str, value: Option<Node<'t>>) -> Option<String> {
        if self.is_qt(object) {
            let aliased = value
                .filter(|v| self.names_qt(self.text(*v)))
                .and_then(|v| self.canonical(self.text(v)))
                .is_some_and(|v| is_binding_alias(attribute, v.rsplit('.').next().unwrap_or("")));
            return (!aliased).then(|| format!("patches {object}.{attribute}"));
        }
        let guarded = GUARDED_MODULES.contains(&object)
            && !(object == "sys" && SYS_ATTRIBUTES_AN_APP_SETS.contains(&attribute));
        guarded.then(|| format!("patches {object}.{attribute}"))
    }

    pub(super) fn attribute(&mut self, node: Node<'t>) {
        let text = self.text(node);
        // The name after the last dot first: most attributes are `self.x`.
        let last = text.rsplit('.').next().unwrap_or("").trim();
        if matches!(last, "f_back" | "f_globals" | "f_locals") {
            self.report(
                FailureCode::Tampering,
                node,
                format!("walks stack frames ({last})"),
            );
            return;
        }
        if FUNCTION_INSIDES.contains(&last) {
            self.report(
                FailureCode::Tampering,
                node,
                format!("reads a function's insides ({last}): how the judge's patched Qt methods are told from the binding's built-in ones"),
            );
            return;
        }
        if last == "platformName" {
            // Nothing in a chat app depends on it; an answer that behaves
            // only on the judge's (headless) platform does.
            self.report(
                FailureCode::Tampering,
                node,
                "asks which Qt platform it runs on (how a judge is told from a desktop)".into(),
            );
            return;
        }
        if last == "__dict__" && self.canonical(text).as_deref() == Some("sys.__dict__") {
            self.report(
                FailureCode::Tampering,
                node,
                "reads the interpreter's namespace (sys.__dict__)".into(),
            );
            return;
        }
        // Resolving every `self.x` would cost a fifth of grading.
        if !INTROSPECTED_NAMES.contains(&last) {
            return;
        }
        let Some(name) = self.canonical(text) else {
            return;
        };
        if let Some(what) = introspection_of_the_judge(&name) {
            self.report(FailureCode::Tampering, node, what);
        } else if name == "sys.modules" && !self.names_own_module(node) {
            self.report(
                FailureCode::Tampering,
                node,
                "searches sys.modules for other modules".into(),
            );
        } else if name == "os.environ" && !self.reads_one_variable(node) {
            self.report(
                FailureCode::Tampering,
                node,
                "reads the whole environment (where the judge's variables are)".into(),
            );
        }
    }

    /// `x in sys.modules`, `sys.modules[__name__]`: the app's own business.
    fn names_own_module(&self, node: Node) -> bool {
        let Some(parent) = node.parent() else {
            return false;
        };
        let kinds = scan_kinds();
        if parent.kind_id() == kinds.comparison_operator {
            return true;
        }
        let key = if parent.kind_id() == kinds.subscript {
            parent.child_by_field_name("subscript")
        } else if parent.kind_id() == kinds.attribute
            && parent
                .child_by_field_id(fields().attribute)
                .is_some_and(|a| self.text(a) == "get")
        {
            parent
                .parent()
                .and_then(|call| call.child_by_field_id(fields().arguments))
                .and_then(|a| a.named_child(0))
        } else {
            None
        };
        key.is_some_and(|k| self.text(k) == "__name__")
    }

    /// `os.environ["X"]`, `os.environ.get("X")`, `"X" in os.environ`.
    fn reads_one_variable(&self, node: Node) -> bool {
        let Some(parent) = node.parent() else {
            return false;
        };
        let kinds = scan_kinds();
        parent.kind_id() == kinds.subscript
            || parent.kind_id() == kinds.comparison_operator
            || (parent.kind_id() == kinds.attribute
                && parent
                    .child_by_field_id(fields().attribute)
                    .is_some_and(|a| {
                        matches!(self.text(a), "get" | "setdefault" | "pop" | "update")
                    }))
    }

    /// `setattr(QtWidgets.QTextEdit, …)`, or `getattr(module, "mouse" + "Click")`.
    pub(super) fn attribute_by_name(
        &mut self,
        node: Node<'t>,
        callee: &str,
        positional: &[Node<'t>],
    ) {
        let (Some(object), Some(name)) = (positional.first(), positional.get(1)) else {
            return;
        };
        let object_text = compact(self.text(*object)).into_owned();
        let Some(object) = self.canonical(&object_text) else {
            return;
        };
        let built = self.is_built_name(*name, 1);
        if callee != "getattr" {
            let attribute = if built {
                "<built name>".to_string()
            } else {
                string_value(self.text(*name))
            };
            if let Some(what) = self.patched(&object, &attribute, positional.get(2).copied()) {
                self.report(
                    FailureCode::Tampering,
                    node,
                    format!("{what} with {callee}"),
                );
                return;
            }
        }
        let head = object.split(['.', '(', '[']).next().unwrap_or("");
        let of_module = self
            .imports
            .contains_key(object_text.split(['.', '(', '[']).next().unwrap_or(""))
            || self.is_qt(&object)
            || GUARDED_MODULES.contains(&head)
            || [
                "sys.modules",
                "__import__(",
                "importlib.import_module(",
                "globals()",
                "vars(",
            ]
            .iter()
            .any(|p| object_text.starts_with(p));
        if built && of_module {
            self.report(
                FailureCode::Tampering,
                node,
                format!("{callee} on {object} with a built attribute name"),
            );
        }
    }

    /// A descriptor number the code did not get from opening something:
    /// a literal ≥ 3 (0–2 are the standard streams) or one read from text.
    pub(super) fn foreign_fd(&self, node: Node) -> Option<String> {
        let kinds = scan_kinds();
        let direct = |n: Node| -> Option<String> {
            if n.kind_id() == kinds.integer || n.kind_id() == kinds.binary_operator {
                return constant_int(self.text(n))
                    .filter(|fd| *fd >= 3)
                    .map(|fd| format!("file descriptor {fd}"));
            }
            let is_int_call = n.kind_id() == kinds.call
                && n.child_by_field_id(fields().function)
                    .is_some_and(|f| self.text(f) == "int");
            is_int_call.then(|| "a file descriptor number read from text".to_string())
        };
        direct(node).or_else(|| {
            if node.kind_id() == kinds.identifier || node.kind_id() == kinds.attribute {
                self.assigned_values(node).iter().find_map(|v| direct(*v))
            } else {
                None
            }
        })
    }
}

/// Frame and heap walkers, and interpreter hooks: how code finds the
/// judge's objects in its own process.
pub(super) fn introspection_of_the_judge(name: &str) -> Option<String> {
    if FRAME_WALKERS.contains(&name) {
        Some(format!("walks stack frames ({name})"))
    } else if HEAP_WALKERS.contains(&name) {
        Some(format!("searches the heap for other objects ({name})"))
    } else if INTERPRETER_HOOKS.contains(&name) {
        Some(format!("hooks the interpreter ({name})"))
    } else if FUNCTION_KIND_TESTS.contains(&name) {
        Some(format!(
            "tells Python functions from built-in ones ({name}): how the judge's patched Qt methods are found"
        ))
    } else {
        None
    }
}

/// `exec_ = exec`, `Signal = pyqtSignal`: one binding's name for another's.
fn is_binding_alias(attribute: &str, value: &str) -> bool {
    attribute.trim_end_matches('_') == value.trim_end_matches('_')
        || BINDING_ALIASES
            .iter()
            .any(|(a, b)| (attribute, value) == (*a, *b) || (attribute, value) == (*b, *a))
}

/// `/proc/self/…`, `/proc/1/…`, `/proc/{pid}`, `/dev/fd/…`.
fn judge_process_path(text: &str) -> bool {
    if let Some(rest) = text.strip_prefix("/proc/") {
        return rest.starts_with("self")
            || rest.starts_with("thread-self")
            || rest.starts_with(|c: char| c.is_ascii_digit())
            || rest.is_empty();
    }
    text.starts_with("/dev/fd")
}

/// An integer literal, or `+ - *` of them.
fn constant_int(text: &str) -> Option<i64> {
    let text = compact(text);
    let mut total: i64 = 0;
    let mut sign_or_product: Option<char> = Some('+');
    let mut product: Option<i64> = None;
    for token in text.split_inclusive(['+', '-', '*']) {
        let (number, op) = match token.chars().last() {
            Some(c @ ('+' | '-' | '*')) => (&token[..token.len() - 1], Some(c)),
            _ => (token, None),
        };
        let number = number.replace('_', "");
        let value = if let Some(hex) = number.strip_prefix("0x") {
            i64::from_str_radix(hex, 16).ok()?
        } else {
            number.parse::<i64>().ok()?
        };
        let value = match product.take() {
            Some(left) => left.checked_mul(value)?,
            None => value,
        };
        if op == Some('*') {
            product = Some(value);
            continue;
        }
        total = match sign_or_product {
            Some('-') => total.checked_sub(value)?,
            _ => total.checked_add(value)?,
        };
        sign_or_product = op;
    }
    product.is_none().then_some(total)
}

/// A string literal (as written) holding the glyph of the judge's reply
/// marks, itself or escaped.
fn names_reply_mark(literal: &str) -> bool {
    let lower = literal.to_ascii_lowercase();
    literal.contains('\u{2588}')
        || lower.contains("\\u2588")
        || lower.contains("\\u00002588")
        || lower.contains("\\n{full block}")
        || lower.contains("\\xe2\\x96\\x88")
}

/// The judge's name, in any case.
fn judge_name() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    // The judge's name, and the app clock's controls (the idle step moves
    // the clock through them: an app that touches them dodges the step).
    PATTERN.get_or_init(|| {
        // Also a function's insides looked up by name, and the type names
        // that tell a built-in function from the judge's Python patches.
        // Also the container's fingerprints: an app that behaves one way in
        // a container and another on a desktop is gaming the judge.
        Regex::new(r"(?i)qtjudge|faketime|ld_preload|/tmp/\.clock|\.dockerenv|\.containerenv|/proc/(?:1|self)/(?:cgroup|mountinfo|sched)|^__(?:code|closure|globals)__$|builtin_function_or_method|method_descriptor")
            .expect("a valid pattern")
    })
}

/// A coding declaration (PEP 263) for an encoding that decodes ASCII text
/// differently: Python then runs what a reader, and this grader, see as a
/// comment (`unicode_escape` turns a written `\n` into a line break).
/// Encodings that keep ASCII as it is cannot hide code and are allowed.
pub(super) fn hiding_encoding(source: &str) -> Option<Threat> {
    static DECLARATION: OnceLock<Regex> = OnceLock::new();
    let declaration = DECLARATION.get_or_init(|| {
        Regex::new(r"^[ \t\x0c]*#.*?coding[:=][ \t]*([-\w.]+)").expect("a valid pattern")
    });
    let (line, encoding) = source
        .lines()
        .take(2)
        .enumerate()
        .find_map(|(i, text)| Some((i + 1, declaration.captures(text)?.get(1)?.as_str())))?;
    let name = encoding.to_ascii_lowercase().replace('_', "-");
    let keeps_ascii = [
        "utf-8", "utf8", "ascii", "us-ascii", "latin-1", "latin1", "l1",
    ]
    .contains(&name.as_str())
        || ["utf-8-", "iso-8859-", "iso8859-", "cp125", "windows-125"]
            .iter()
            .any(|prefix| name.starts_with(prefix));
    (!keeps_ascii).then(|| Threat {
        kind: FailureCode::Tampering,
        what: format!(
            "declares the source encoding `{encoding}`, under which Python runs text that reads as comments"
        ),
        evidence: shorten(source.lines().nth(line - 1).unwrap_or_default().trim()),
        line,
        file: None,
    })
}
