//! Layout diff at run time: compares the candidate's widget tree (as the
//! harness saw it after launch) with the original app's.
//!
//! An original widget that moved to another layout, changed its order
//! relative to the other original widgets, or disappeared is an unrequested
//! change; new widgets (the reset button) are not, wherever they land.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayoutChange {
    /// `widget_moved`, `widget_reordered` or `widget_removed`.
    pub kind: String,
    pub detail: String,
}

/// One widget of a tree, with what identifies its place.
#[derive(Debug, Clone, PartialEq)]
struct Placed {
    id: String,
    /// The layout holding it: its attribute name, or its class and the
    /// original widgets beside it.
    parent: String,
}

/// Flattens a widget tree depth-first into identified widgets.
fn flatten(tree: &Value) -> Vec<(String, Value, String)> {
    let mut out = Vec::new();
    if let Some(central) = tree.get("central") {
        walk(central, "window", &mut out);
    }
    out
}

fn identity(widget: &Value) -> Option<String> {
    if let Some(name) = widget["name"].as_str() {
        return Some(name.to_string());
    }
    let class = widget["class"].as_str()?;
    let text = widget["text"].as_str()?;
    Some(format!("{class} {text:?}"))
}

fn walk(node: &Value, parent: &str, out: &mut Vec<(String, Value, String)>) {
    match node["kind"].as_str() {
        Some("widget") => {
            if let Some(id) = identity(node) {
                out.push((id, node.clone(), parent.to_string()));
            }
            if let Some(layout) = node.get("layout") {
                walk(layout, parent, out);
            }
        }
        Some("layout") => {
            let here = layout_key(node);
            for item in node["items"].as_array().into_iter().flatten() {
                walk(item, &here, out);
            }
        }
        _ => {}
    }
}

/// A name for a layout that survives between two runs: its attribute name,
/// else its class and the identities of the widgets directly in it.
fn layout_key(layout: &Value) -> String {
    if let Some(name) = layout["name"].as_str() {
        return name.to_string();
    }
    let members: Vec<String> = layout["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == "widget")
        .filter_map(identity)
        .collect();
    format!(
        "{}[{}]",
        layout["class"].as_str().unwrap_or("layout"),
        members.join(", ")
    )
}

/// Compares the candidate's tree with the original's.
pub fn diff(original: &Value, candidate: &Value) -> Vec<LayoutChange> {
    let original: Vec<Placed> = flatten(original)
        .into_iter()
        .map(|(id, _, parent)| Placed { id, parent })
        .collect();
    let candidate: Vec<Placed> = flatten(candidate)
        .into_iter()
        .map(|(id, _, parent)| Placed { id, parent })
        .collect();
    let original_ids: Vec<&str> = original.iter().map(|p| p.id.as_str()).collect();
    let mut changes = Vec::new();
    for placed in &original {
        match candidate.iter().find(|c| c.id == placed.id) {
            None => changes.push(LayoutChange {
                kind: "widget_removed".into(),
                detail: format!("{} is no longer in the window's layout", placed.id),
            }),
            Some(found) if !same_parent(&placed.parent, &found.parent, &original_ids) => changes
                .push(LayoutChange {
                    kind: "widget_moved".into(),
                    detail: format!(
                        "{} moved from {} to {}",
                        placed.id, placed.parent, found.parent
                    ),
                }),
            Some(_) => {}
        }
    }
    // Relative order of the original widgets that are still there.
    let kept_original: Vec<&str> = original_ids
        .iter()
        .copied()
        .filter(|id| candidate.iter().any(|c| c.id == *id))
        .collect();
    let candidate_order: Vec<&str> = candidate
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| original_ids.contains(id))
        .collect();
    if kept_original != candidate_order {
        let first_difference = kept_original
            .iter()
            .zip(&candidate_order)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("{b} now comes where {a} was"))
            .unwrap_or_default();
        changes.push(LayoutChange {
            kind: "widget_reordered".into(),
            detail: format!("the original widgets are in another order: {first_difference}"),
        });
    }
    changes
}

/// Two layout keys name the same place if they are the same name, or the
/// same class holding the same original widgets (new widgets ignored).
fn same_parent(original: &str, candidate: &str, original_ids: &[&str]) -> bool {
    if original == candidate {
        return true;
    }
    let strip = |key: &str| -> String {
        match key.split_once('[') {
            Some((class, rest)) => {
                let members: Vec<&str> = rest
                    .trim_end_matches(']')
                    .split(", ")
                    .filter(|m| original_ids.contains(m))
                    .collect();
                format!("{class}[{}]", members.join(", "))
            }
            None => key.to_string(),
        }
    };
    strip(original) == strip(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn widget(name: &str) -> Value {
        json!({"kind": "widget", "class": "QPushButton", "name": name})
    }

    fn tree(items: Vec<Value>) -> Value {
        json!({"central": {"kind": "widget", "class": "QWidget", "layout": {"kind": "layout", "class": "QHBoxLayout", "items": [
            {"kind": "layout", "class": "QVBoxLayout", "name": "left_layout", "items": items}
        ]}}})
    }

    #[test]
    fn a_new_button_in_the_existing_layout_is_no_change() {
        let original = tree(vec![
            widget("prompt_entry"),
            widget("submit_button"),
            widget("output_entry"),
        ]);
        let candidate = tree(vec![
            widget("prompt_entry"),
            widget("submit_button"),
            widget("reset_button"),
            widget("output_entry"),
        ]);
        assert!(diff(&original, &candidate).is_empty());
    }

    #[test]
    fn buttons_moved_into_a_new_row_above_the_prompt_are_changes() {
        let original = tree(vec![
            widget("prompt_entry"),
            widget("submit_button"),
            widget("output_entry"),
        ]);
        let row = json!({"kind": "layout", "class": "QHBoxLayout", "items": [widget("submit_button"), widget("reset_button")]});
        let candidate = tree(vec![row, widget("prompt_entry"), widget("output_entry")]);
        let kinds: Vec<String> = diff(&original, &candidate)
            .into_iter()
            .map(|c| c.kind)
            .collect();
        assert!(kinds.contains(&"widget_moved".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"widget_reordered".to_string()), "{kinds:?}");
    }

    #[test]
    fn a_removed_widget_is_reported() {
        let original = tree(vec![widget("prompt_entry"), widget("submit_button")]);
        let candidate = tree(vec![widget("prompt_entry")]);
        assert_eq!(diff(&original, &candidate)[0].kind, "widget_removed");
    }
}
