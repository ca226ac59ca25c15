//! The job the supervisor receives on stdin, with the Qt binding read from
//! the app's imports.

use std::time::Duration;

use serde_json::{json, Value};

use super::Turn;
use crate::bundle::Bundle;
use crate::sandbox::machine_load::busy_cap;
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
    sources
        .into_iter()
        .flat_map(imported_roots)
        .find_map(|root| BINDINGS.iter().find(|b| **b == root))
        .unwrap_or(&BINDINGS[0])
}

/// Modules through which an app may reach Qt without naming a binding.
const QT_WRAPPERS: [&str; 5] = ["PyQt4", "PySide", "qtpy", "Qt", "pyqtgraph"];

/// User interfaces that are not Qt, by the module an app imports, and what
/// a person calls them.
const OTHER_TOOLKITS: [(&str, &str); 27] = [
    ("tkinter", "tkinter"),
    ("Tkinter", "tkinter"),
    ("customtkinter", "CustomTkinter (tkinter)"),
    ("ttkbootstrap", "ttkbootstrap (tkinter)"),
    ("ttkthemes", "ttkthemes (tkinter)"),
    ("wx", "wxPython"),
    ("gi", "GTK (PyGObject)"),
    ("gtk", "GTK (PyGTK)"),
    ("kivy", "Kivy"),
    ("kivymd", "KivyMD"),
    ("PySimpleGUI", "PySimpleGUI"),
    ("FreeSimpleGUI", "FreeSimpleGUI"),
    ("flet", "Flet"),
    ("dearpygui", "Dear PyGui"),
    ("toga", "Toga"),
    ("pygame", "pygame"),
    ("pyglet", "pyglet"),
    ("webview", "pywebview"),
    ("eel", "Eel"),
    ("gradio", "Gradio (a web UI)"),
    ("streamlit", "Streamlit (a web UI)"),
    ("nicegui", "NiceGUI (a web UI)"),
    ("flask", "Flask (a web app)"),
    ("textual", "Textual (a terminal UI)"),
    ("curses", "curses (a terminal UI)"),
    ("prompt_toolkit", "prompt_toolkit (a terminal UI)"),
    ("urwid", "urwid (a terminal UI)"),
];

/// The user interface an app is written with when it is not Qt: it imports
/// one of [`OTHER_TOOLKITS`] and no Qt binding or wrapper in any file.
/// `None` for a Qt app, and for one whose interface cannot be told (no
/// import of either: a broken answer that lost its imports is not "not Qt").
pub fn other_toolkit<'a>(sources: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let mut toolkit = None;
    for root in sources.into_iter().flat_map(imported_roots) {
        if BINDINGS.contains(&root) || QT_WRAPPERS.contains(&root) {
            return None;
        }
        if toolkit.is_none() {
            toolkit = OTHER_TOOLKITS
                .iter()
                .find(|(module, _)| *module == root)
                .map(|(_, name)| *name);
        }
    }
    toolkit
}

/// The top-level modules a source's `import`/`from` lines name, in order
/// (indented ones too: imports inside `try:` or functions).
fn imported_roots(source: &str) -> impl Iterator<Item = &str> {
    source.lines().flat_map(|line| {
        let line = line.trim_start();
        let modules = if let Some(rest) = line.strip_prefix("from ") {
            rest.split_whitespace().next().unwrap_or("")
        } else if let Some(rest) = line.strip_prefix("import ") {
            rest.split('#').next().unwrap_or("")
        } else {
            ""
        };
        // `import os, PySide6.QtWidgets as W`: each comma-separated name.
        modules
            .split(',')
            .map(|module| module.trim().split(['.', ' ']).next().unwrap_or(""))
            .filter(|root| !root.is_empty())
    })
}

/// The job the supervisor receives on stdin (the sandbox adds the nonce):
/// the app's files (base64, under `files`), the one run as `__main__`
/// (`entry`), the turns and what the task names.
pub fn job(task: &Task, bundle: &Bundle, turns: &[Turn]) -> Value {
    let wall = task.limits.wall_seconds as f64;
    // The entry first, then the app's other Python files.
    let sources: Vec<String> = bundle.python_sources();
    let mut job = json!({
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
        // What a busy machine may add to it (sandbox/machine_load.rs).
        "busy_allowance_seconds": busy_cap(Duration::from_secs(task.limits.wall_seconds)).as_secs_f64(),
        "turn_timeout_seconds": (wall / 4.0).clamp(2.0, 10.0),
        "window_size": [1000, 700],
    });
    if !task.scenario.is_empty() {
        // A task written as data: the harness runs its steps instead of
        // the reset's. Only what it drives goes in (the expectations and
        // codes are judged on the host, and the candidate need not see them).
        let nonce = crate::scenario::run_nonce(turns);
        job["scenario"] = task
            .scenario
            .iter()
            .map(|s| s.for_run(&nonce))
            .map(|s| {
                json!({
                    "step": s.step,
                    "control": s.control,
                    "kinds": s.kinds,
                    "value": s.value,
                    "seconds": s.seconds,
                    "path": s.path,
                    // The supervisor takes a frame after a click judged
                    // on the screen.
                    "screen_after": s.expect.iter().any(|e| e.on_screen()),
                    // Turns the harness reads the widgets for after the
                    // step: a hint that can only fail `hides_turns`.
                    "hides_turns": s.expect.iter().flat_map(|e| e.hides_turns.iter().copied()).collect::<Vec<usize>>(),
                })
            })
            .collect();
    }
    job
}

/// The turns a run of `task` types: four for the reset, as many as its
/// scenario's `turn` steps for a task written as data.
pub fn turns_for(task: &Task) -> Vec<Turn> {
    let mut turns = super::new_turns();
    if !task.scenario.is_empty() {
        turns.truncate(crate::scenario::turn_count(&task.scenario));
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::other_toolkit;

    #[test]
    fn an_app_with_another_toolkit_and_no_qt_is_not_a_qt_app() {
        let tk = "import json\nimport tkinter as tk\nfrom tkinter import ttk\nimport requests\n";
        assert_eq!(other_toolkit([tk]), Some("tkinter"));
        let custom = "try:\n    import customtkinter as ctk\nexcept ImportError:\n    raise\n";
        assert_eq!(other_toolkit([custom]), Some("CustomTkinter (tkinter)"));
        // Any file of the app that imports Qt makes it a Qt app.
        assert_eq!(
            other_toolkit([tk, "from PySide6.QtWidgets import QWidget\n"]),
            None
        );
        assert_eq!(
            other_toolkit(["import tkinter\nfrom qtpy import QtWidgets\n"]),
            None
        );
        // Neither: an answer that lost its imports is not called "not Qt".
        assert_eq!(other_toolkit(["import sys\nimport requests\n"]), None);
        assert_eq!(other_toolkit(["class App(QWidget):\n    pass\n"]), None);
    }
}
