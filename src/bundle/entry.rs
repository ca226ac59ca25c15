//! The file an app runs as `__main__`: the one Python file with an
//! `if __name__ == "__main__":` guard, else an error naming the candidates.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

use super::BundleError;

pub(super) fn python_files(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    files
        .keys()
        .filter(|p| p.ends_with(".py") || p.ends_with(".ipynb"))
        .cloned()
        .collect()
}

fn main_guard() -> &'static Regex {
    static GUARD: OnceLock<Regex> = OnceLock::new();
    GUARD.get_or_init(|| {
        Regex::new(
            r#"(?m)^if\s+(__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__)\s*:"#,
        )
        .expect("the guard pattern is valid")
    })
}

/// The entry: the one file with a `__main__` guard at the shallowest
/// depth, or the only Python file.
pub(super) fn find_entry(files: &BTreeMap<String, Vec<u8>>) -> Result<String, BundleError> {
    let python: Vec<&String> = files.keys().filter(|p| p.ends_with(".py")).collect();
    if python.is_empty() {
        return Err(BundleError::NoPython);
    }
    let guarded: Vec<&String> = python
        .iter()
        .copied()
        .filter(|p| main_guard().is_match(&String::from_utf8_lossy(&files[*p])))
        .collect();
    let depth = |p: &str| p.matches('/').count();
    if let Some(shallowest) = guarded.iter().map(|p| depth(p)).min() {
        let top: Vec<String> = guarded
            .iter()
            .filter(|p| depth(p) == shallowest)
            .map(|p| p.to_string())
            .collect();
        if top.len() == 1 {
            return Ok(top[0].clone());
        }
        return Err(BundleError::AmbiguousEntry { candidates: top });
    }
    if python.len() == 1 {
        return Ok(python[0].clone());
    }
    Err(BundleError::NoEntry {
        candidates: python.into_iter().cloned().collect(),
    })
}

pub(super) fn safe_stem(stem: &str) -> String {
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if cleaned.is_empty() {
        "notebook".into()
    } else {
        cleaned
    }
}
