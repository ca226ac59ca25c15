//! What a function empties (`self.history = []`, `self.display.clear()`,
//! `del self.cache`): what the reset control's handler is judged by.

use tree_sitter::Node;

use super::Collector;
use crate::grading::static_grade::grammar::{fields, kinds};
use crate::grading::static_grade::text::compact;

const TEXT_CLEARERS: [&str; 4] = ["setText", "setPlainText", "setHtml", "setMarkdown"];

impl Collector<'_, '_> {
    /// `self.a = []` and the like: `a = []`.
    pub(super) fn clear_by_assignment(&self, left: Node, right: Node) -> Option<String> {
        let target = compact(self.text(left));
        let attribute = target.strip_prefix("self.")?;
        let value = compact(self.text(right));
        let empty = match right.kind() {
            "list" | "dictionary" | "tuple" | "set" => right.named_child_count() == 0,
            "none" => true,
            "string" => matches!(value.as_ref(), r#""""# | "''"),
            "call" => {
                matches!(
                    value.as_ref(),
                    "list()" | "dict()" | "set()" | "deque()" | "OrderedDict()"
                )
            }
            _ => false,
        };
        empty.then(|| format!("{attribute} = {value}"))
    }

    pub(super) fn delete(&mut self, node: Node) {
        let text = compact(self.text(node));
        let Some(target) = text
            .strip_prefix("del")
            .and_then(|t| t.strip_prefix("self."))
        else {
            return;
        };
        let cleared = format!("del {target}");
        if let Some(function) = self.current_function() {
            function.clears.push(cleared);
        }
    }

    /// `self.w.clear()`, `self.w.setPlainText("")`: `w.clear()`.
    pub(super) fn clear_by_call(&self, call: Node) -> Option<String> {
        let function = call.child_by_field_id(fields().function)?;
        if function.kind_id() != kinds().attribute {
            return None;
        }
        let method = self.field_text(function, fields().attribute);
        // The method first: this runs for every call of the script.
        if method != "clear" && !TEXT_CLEARERS.contains(&method) {
            return None;
        }
        let arguments = compact(self.field_text(call, fields().arguments));
        let clears = (method == "clear" && arguments == "()")
            || (TEXT_CLEARERS.contains(&method) && matches!(&*arguments, r#"("")"# | "('')"));
        if !clears {
            return None;
        }
        let text = compact(self.text(call));
        text.strip_prefix("self.").map(str::to_string)
    }
}
