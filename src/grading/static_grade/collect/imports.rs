//! Imports: the module, the names each binds, wildcards; and the modules
//! whose import alone is a sign of tampering (`inspect`, `atexit`,
//! `ctypes`, `builtins`).

use tree_sitter::Node;

use super::Collector;
use crate::grading::static_grade::facts::ImportFacts;
use crate::grading::static_grade::grammar::{fields, line_of};
use crate::grading::static_grade::text::compact;

impl Collector<'_, '_> {
    pub(super) fn import(&mut self, node: Node) {
        let line = line_of(node);
        let mut cursor = node.walk();
        let mut names: Vec<(String, String)> = Vec::new();
        for name in node.children_by_field_name("name", &mut cursor) {
            let (path, alias) = match name.kind() {
                "aliased_import" => (
                    self.field_text(name, fields().name),
                    Some(self.field_text(name, fields().alias)),
                ),
                _ => (self.text(name), None),
            };
            names.push((
                compact(path).into_owned(),
                alias.map(str::to_string).unwrap_or_default(),
            ));
        }
        if node.kind() == "import_statement" {
            for (path, alias) in names {
                let bound = if alias.is_empty() {
                    path.split('.').next().unwrap_or("").to_string()
                } else {
                    alias
                };
                self.record_import(path, vec![bound], false, line);
            }
        } else {
            let module = compact(self.field_text(node, fields().module_name)).into_owned();
            let bound = names
                .into_iter()
                .map(|(path, alias)| {
                    if alias.is_empty() {
                        path.rsplit('.').next().unwrap_or("").to_string()
                    } else {
                        alias
                    }
                })
                .collect();
            let mut cursor = node.walk();
            let wildcard = node
                .children(&mut cursor)
                .any(|c| c.kind() == "wildcard_import");
            self.record_import(module, bound, wildcard, line);
        }
    }

    fn record_import(&mut self, module: String, bound: Vec<String>, wildcard: bool, line: usize) {
        let root = module.split('.').next().unwrap_or("");
        let flagged = match root {
            "inspect" => Some((
                "import inspect",
                "imports inspect (introspection of the running harness)",
            )),
            "atexit" => Some(("atexit", "imports atexit (code run at interpreter exit)")),
            "ctypes" => Some(("ctypes", "imports ctypes (raw memory and C calls)")),
            "builtins" => Some((
                "builtins",
                "imports builtins (can replace built-in functions)",
            )),
            _ => None,
        };
        if let Some((key, detail)) = flagged {
            self.finding(key, detail.to_string(), line);
        }
        self.facts.imports.push(ImportFacts {
            module,
            bound,
            wildcard,
            line,
        });
    }
}
