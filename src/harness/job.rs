//! The job the supervisor receives on stdin, with the Qt binding read from
//! the app's imports.

use serde_json::{json, Value};

use super::Turn;
use crate::bundle::Bundle;
use crate::sandbox::INNER_DEADLINE_MARGIN_SECONDS;
use crate::task::Task;

/// The Qt bindings the sandbox image carries. The warm harness imports the
/// first; an app that imports another gets a harness started cold with it
/// (two bindings cannot share a process).
pub const BINDINGS: [&str; 4] = ["PyQt5", "PyQt6", "PySide2", "PySide6"];

/// The binding an app's sources import: the first `import`/`from` line (in
/// file order, then line order) that names one. An app that tries one
/// binding and falls back on another (`try: from PyQt6 … except
/// ImportError: from PyQt5 …`) runs with the one it tries first. PyQt5 when
/// none is named (the app may import Qt through a wrapper).
pub fn detect_binding<'a>(sources: impl IntoIterator<Item = &'a str>) -> &'static str {
    for source in sources {
        for line in source.lines() {
            let line = line.trim_start();
            let modules = if let Some(rest) = line.strip_prefix("from ") {
                rest.split_whitespace().next().unwrap_or("")
            } else if let Some(rest) = line.strip_prefix("import ") {
                rest.split('#').next().unwrap_or("")
            } else {
                continue;
            };
            // `import os, PySide6.QtWidgets as W`: each comma-separated name.
            for module in modules.split(',') {
                let root = module.trim().split(['.', ' ']).next().unwrap_or("");
                if let Some(binding) = BINDINGS.iter().find(|b| **b == root) {
                    return binding;
                }
            }
        }
    }
    BINDINGS[0]
}

/// The job the supervisor receives on stdin (the sandbox adds the nonce):
/// the app's files (base64, under `files`), the one run as `__main__`
/// (`entry`), the turns and what the task names.
pub fn job(task: &Task, bundle: &Bundle, turns: &[Turn]) -> Value {
    let wall = task.limits.wall_seconds as f64;
    // The entry first, then the app's other Python files.
    let sources: Vec<String> = bundle.python_sources();
    json!({
        "files": bundle.files,
        "entry": bundle.entry,
        "binding": detect_binding(sources.iter().map(String::as_str)),
        "turns": turns,
        "app": {
            "window_class": task.app.window_class,
            "prompt_entry": task.app.prompt_entry,
            "submit_control": task.app.submit_control,
            "history_attributes": task.app.history_attributes,
            "history_display": task.app.history_display,
            "reset_control": task.reset_control.attribute,
        },
        "reset_pattern": task.reset_control.text_pattern,
        "deadline_seconds": (wall - INNER_DEADLINE_MARGIN_SECONDS).max(1.0),
        "turn_timeout_seconds": (wall / 4.0).clamp(2.0, 10.0),
        "window_size": [1000, 700],
    })
}
