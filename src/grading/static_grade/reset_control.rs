//! The control the task asked for: a new button or action whose text, or
//! label or tooltip, matches the task's pattern; the handler its signal is
//! connected to, the layout it is added to, and what that handler empties
//! (following the methods it calls on `self`).

use std::collections::{HashMap, HashSet};

use super::facts::{Connection, HandlerRef};
use super::text::unescaped;
use super::{Change, Grading, ResetControl};

impl Grading<'_> {
    pub(super) fn reset_control(&self, changes: &mut Vec<Change>) -> Option<ResetControl> {
        let pattern = self.index.reset_pattern.as_ref()?;
        let matches = |text: &str| pattern.is_match(&unescaped(text).replace('&', ""));
        let originals: HashSet<(&str, Option<&str>)> = self
            .original
            .controls
            .iter()
            .map(|c| (c.target.as_str(), c.text.as_deref()))
            .collect();
        // Grouped once: a hostile answer may hold thousands of each.
        let mut connections_of: HashMap<&str, Vec<&Connection>> = HashMap::new();
        for connection in &self.candidate.connections {
            connections_of
                .entry(connection.sender.as_str())
                .or_default()
                .push(connection);
        }
        let mut labels_of: HashMap<&str, Vec<&str>> = HashMap::new();
        for (target, text) in &self.candidate.labels {
            labels_of
                .entry(target.as_str())
                .or_default()
                .push(text.as_str());
        }
        let mut layout_of: HashMap<&str, &str> = HashMap::new();
        for placement in &self.candidate.placements {
            layout_of
                .entry(placement.item.as_str())
                .or_insert(placement.layout.as_str());
        }
        let mut found: Vec<(ResetControl, bool, Vec<&Connection>)> = Vec::new();
        for control in &self.candidate.controls {
            if originals.contains(&(control.target.as_str(), control.text.as_deref())) {
                continue;
            }
            let text = control.text.as_deref().filter(|t| matches(t)).or_else(|| {
                labels_of
                    .get(control.target.as_str())
                    .and_then(|texts| texts.iter().find(|t| matches(t)).copied())
            });
            let Some(text) = text else {
                continue;
            };
            let connections = connections_of
                .get(control.target.as_str())
                .cloned()
                .unwrap_or_default();
            let refs: Vec<&HandlerRef> = control
                .keyword_handler
                .iter()
                .chain(connections.iter().map(|c| &c.handler))
                .collect();
            let handler = refs.iter().find_map(|r| match r {
                HandlerRef::Passed(name) | HandlerRef::Called(name) => Some(name.clone()),
                HandlerRef::Lambda { handler, .. } => handler.clone(),
                HandlerRef::Other => None,
            });
            let connected = refs.iter().any(|r| !matches!(r, HandlerRef::Called(_)));
            let mut clears: Vec<String> = refs
                .iter()
                .flat_map(|r| match r {
                    HandlerRef::Lambda { clears, .. } => clears.clone(),
                    _ => Vec::new(),
                })
                .collect();
            if let Some(handler) = &handler {
                clears.extend(self.handler_clears(&control.scope.class, handler));
            }
            let added_to_layout = control.added_to.clone().or_else(|| {
                layout_of
                    .get(control.target.as_str())
                    .map(|layout| layout.to_string())
            });
            let reset = ResetControl {
                attribute: control
                    .target
                    .strip_prefix("self.")
                    .unwrap_or(&control.target)
                    .to_string(),
                text: unescaped(text).replace('&', ""),
                line: control.line,
                handler,
                connected,
                added_to_layout,
                clears,
            };
            found.push((reset, control.action, connections));
        }
        if found.is_empty() {
            return None;
        }
        // A connected button first, then any connected control.
        let chosen = found
            .iter()
            .position(|(r, action, _)| r.connected && !action)
            .or_else(|| found.iter().position(|(r, _, _)| r.connected))
            .unwrap_or(0);
        let (reset, action, connections) = found.swap_remove(chosen);
        if action && self.index.reset_button {
            changes.push(Self::change(
                "reset_not_a_button",
                format!(
                    "the reset is a menu or toolbar action (`{}`), not the button the task asks for",
                    reset.text
                ),
                reset.line,
            ));
        }
        for connection in connections {
            if let HandlerRef::Called(name) = &connection.handler {
                changes.push(Self::change(
                    "connect_calls_handler",
                    format!(
                        "`{}` calls `{name}` while connecting and connects its result instead of the method",
                        connection.text
                    ),
                    connection.line,
                ));
            }
        }
        Some(reset)
    }

    /// A control connected to nothing still has a handler in mind: the new
    /// method that empties the conversation.
    pub(super) fn unconnected_handler(&self) -> Option<String> {
        let empties_history = |cleared: &String| {
            self.index.history_attributes.iter().any(|attribute| {
                cleared
                    .strip_prefix(attribute.as_str())
                    .is_some_and(|rest| rest.starts_with([' ', '.', '[']))
            })
        };
        self.candidate
            .functions
            .iter()
            .filter(|f| self.original.function(&f.qualname).is_none())
            .find(|f| f.clears.iter().any(empties_history))
            .map(|f| f.name.clone())
    }

    /// What a handler empties, following the methods it calls on `self`.
    fn handler_clears(&self, class: &str, handler: &str) -> Vec<String> {
        let mut clears = Vec::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut queue = vec![(handler.to_string(), 0)];
        while let Some((name, depth)) = queue.pop() {
            if !visited.insert(name.clone()) {
                continue;
            }
            let function = self
                .candidate
                .function(&format!("{class}.{name}"))
                .or_else(|| self.candidate.function(&name))
                .or_else(|| self.candidate.functions.iter().find(|f| f.name == name));
            let Some(function) = function else {
                continue;
            };
            clears.extend(function.clears.iter().cloned());
            if depth < 2 {
                queue.extend(function.self_calls.iter().map(|c| (c.clone(), depth + 1)));
            }
        }
        clears
    }
}
