//! Embeds `docker/` (the sandbox image's build context and the harness) in
//! the binary, so that `qtjudge` can build its image, and run the harness
//! locally, from anywhere, and so that the image tag is a hash of exactly
//! what the binary carries.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("docker");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code = String::from("/// The files of `docker/`, as (relative path, contents), sorted by path.\npub static DOCKER_CONTEXT: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in &files {
        println!("cargo:rerun-if-changed={}", absolute.display());
        writeln!(
            code,
            "    ({relative:?}, include_bytes!({:?})),",
            absolute.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("docker_context.rs");
    std::fs::write(out, code).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Python's caches are not part of the context.
        if name == "__pycache__" || name.ends_with(".pyc") {
            continue;
        }
        // The service's and PostgreSQL's images (docker/service/,
        // docker/postgres/) are built from the sandbox image, not part of
        // it: they must not change the sandbox's hash.
        if dir == root && (name == "service" || name == "postgres") {
            continue;
        }
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.push((relative, path));
        }
    }
}
