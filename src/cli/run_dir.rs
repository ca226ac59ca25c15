//! A grade run's folder: each answer's result (JSON) and screenshots, kept
//! as they come and read back by `report` and `--resume`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::verify::{self, Verification};

/// A model label made safe as a file name.
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "answer".into()
    } else {
        cleaned.chars().take(100).collect()
    }
}

/// Keeps one result in the run folder: its JSON and its screenshots.
pub(super) fn keep_result(run_dir: &Path, v: &mut Verification) {
    let name = sanitize(&v.model);
    if let Err(e) = verify::save_artifacts(v, &run_dir.join(&name)) {
        tracing::warn!(error = %e, "could not save screenshots");
    }
    if let Ok(json) = serde_json::to_vec_pretty(&v) {
        let _ = std::fs::write(run_dir.join(format!("{name}.json")), json);
    }
}

/// Reads the results a grade run saved.
pub fn load_run(dir: &Path) -> Result<Vec<Verification>> {
    let mut results = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the run folder {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let bytes = std::fs::read(&path)?;
            results.push(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a qtjudge result", path.display()))?,
            );
        }
    }
    results.sort_by(|a: &Verification, b| a.model.cmp(&b.model));
    Ok(results)
}
