//! A Jupyter notebook's code cells as one script, IPython-only lines made
//! harmless.

use std::sync::OnceLock;

use regex::Regex;

use super::BundleError;

/// A notebook's code cells, in order, as one script. IPython-only lines
/// (`%magic`, `!shell`, `x = !cmd`, `obj?`) become `pass` at their indent
/// so blocks stay well formed; cells run by a `%%` cell magic are dropped
/// unless the magic only times or captures Python.
pub fn notebook_script(text: &str, notes: &mut Vec<String>) -> Result<String, BundleError> {
    let notebook: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| BundleError::BadNotebook(format!("not JSON: {e}")))?;
    let cells = notebook["cells"]
        .as_array()
        .ok_or_else(|| BundleError::BadNotebook("no `cells` list".into()))?;
    let mut script = String::new();
    let mut dropped = 0usize;
    let mut code_cells = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        if cell["cell_type"].as_str() != Some("code") {
            continue;
        }
        // nbformat 4 stores a cell's source as a string or a list of lines.
        let source = match &cell["source"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(lines) => {
                lines.iter().filter_map(|l| l.as_str()).collect::<String>()
            }
            _ => continue,
        };
        code_cells += 1;
        let mut lines = source.lines();
        let first = source.trim_start();
        if let Some(magic) = first.strip_prefix("%%") {
            let name = magic.split_whitespace().next().unwrap_or("");
            if !matches!(name, "time" | "timeit" | "capture") {
                notes.push(format!("notebook cell {}: `%%{name}` cell dropped", i + 1));
                continue;
            }
            lines.next();
        }
        script.push_str(&format!("# --- cell {} ---\n", i + 1));
        for line in lines {
            if ipython_only(line) {
                let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                script.push_str(&format!("{indent}pass  # qtjudge: IPython line dropped\n"));
                dropped += 1;
            } else {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    if code_cells == 0 {
        return Err(BundleError::BadNotebook("it has no code cell".into()));
    }
    if dropped > 0 {
        notes.push(format!(
            "notebook: {dropped} IPython magic or shell line(s) dropped"
        ));
    }
    Ok(script)
}

fn ipython_only(line: &str) -> bool {
    static ASSIGNED: OnceLock<Regex> = OnceLock::new();
    let assigned = ASSIGNED.get_or_init(|| {
        Regex::new(r"^[A-Za-z_][A-Za-z0-9_, ]*=\s*[!%]").expect("the pattern is valid")
    });
    let t = line.trim();
    t.starts_with('%')
        || t.starts_with('!')
        || assigned.is_match(t)
        || (t.ends_with('?') && !t.starts_with('#') && !t.contains(['"', '\'', '(']))
}
