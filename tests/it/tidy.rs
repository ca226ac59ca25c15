//! Keeps the codebase honest about itself: every source file says what it
//! is for, and ARCHITECTURE.md names only paths that exist.

use crate::support::repo;

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_doc_line() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&repo().join(dir), &mut files);
    }
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a `//!` line: {undocumented:?}"
    );
}

#[test]
fn the_codemap_names_only_paths_that_exist() {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        for path in line.split('`').skip(1).step_by(2) {
            let looks_like_path =
                path.contains('/') || path.ends_with(".rs") || path.ends_with(".md");
            if looks_like_path
                && !path.contains(' ')
                && !path.contains('<')
                && !repo().join(path.trim_end_matches('/')).exists()
            {
                missing.push(path.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}
