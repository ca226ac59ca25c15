//! The Python grammar's field and node-kind ids, looked up once, and small
//! questions about one node: its line, whether it is a docstring or `...`.

use std::sync::OnceLock;

use tree_sitter::Node;

/// Field ids of the Python grammar, looked up once: a lookup by name
/// compares strings on every call.
pub(super) struct Fields {
    pub(super) alias: u16,
    pub(super) arguments: u16,
    pub(super) attribute: u16,
    pub(super) body: u16,
    pub(super) condition: u16,
    pub(super) definition: u16,
    pub(super) function: u16,
    pub(super) left: u16,
    pub(super) module_name: u16,
    pub(super) name: u16,
    pub(super) object: u16,
    pub(super) right: u16,
    pub(super) superclasses: u16,
    pub(super) value: u16,
}

pub(super) fn fields() -> &'static Fields {
    static FIELDS: OnceLock<Fields> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
        // 0 is "no field": a lookup with it finds nothing.
        let id = |name: &str| language.field_id_for_name(name).map_or(0, |id| id.get());
        Fields {
            alias: id("alias"),
            arguments: id("arguments"),
            attribute: id("attribute"),
            body: id("body"),
            condition: id("condition"),
            definition: id("definition"),
            function: id("function"),
            left: id("left"),
            module_name: id("module_name"),
            name: id("name"),
            object: id("object"),
            right: id("right"),
            superclasses: id("superclasses"),
            value: id("value"),
        }
    })
}

/// Node kind ids of the Python grammar the walk dispatches on.
pub(super) struct Kinds {
    pub(super) identifier: u16,
    pub(super) comment: u16,
    pub(super) string: u16,
    pub(super) attribute: u16,
    pub(super) call: u16,
    pub(super) expression_statement: u16,
    pub(super) assignment: u16,
    pub(super) augmented_assignment: u16,
    pub(super) function_definition: u16,
    pub(super) class_definition: u16,
    pub(super) import_statement: u16,
    pub(super) import_from_statement: u16,
    pub(super) delete_statement: u16,
    pub(super) keyword_argument: u16,
    pub(super) parameters: u16,
    pub(super) block: u16,
}

pub(super) fn kinds() -> &'static Kinds {
    static KINDS: OnceLock<Kinds> = OnceLock::new();
    KINDS.get_or_init(|| {
        let language: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
        let id = |name: &str| language.id_for_node_kind(name, true);
        Kinds {
            identifier: id("identifier"),
            comment: id("comment"),
            string: id("string"),
            attribute: id("attribute"),
            call: id("call"),
            expression_statement: id("expression_statement"),
            assignment: id("assignment"),
            augmented_assignment: id("augmented_assignment"),
            function_definition: id("function_definition"),
            class_definition: id("class_definition"),
            import_statement: id("import_statement"),
            import_from_statement: id("import_from_statement"),
            delete_statement: id("delete_statement"),
            keyword_argument: id("keyword_argument"),
            parameters: id("parameters"),
            block: id("block"),
        }
    })
}

pub(super) fn line_of(node: Node) -> usize {
    node.start_position().row + 1
}

pub(super) fn is_docstring(node: Node) -> bool {
    node.kind() == "expression_statement"
        && node.named_child_count() == 1
        && node
            .named_child(0)
            .is_some_and(|c| matches!(c.kind(), "string" | "concatenated_string"))
}

/// A statement that is only `...` (by its text: child lookups cost more,
/// and this runs for every expression statement).
pub(super) fn is_ellipsis_statement(source: &str, node: Node) -> bool {
    source.get(node.byte_range()) == Some("...") && node.kind_id() == kinds().expression_statement
}
