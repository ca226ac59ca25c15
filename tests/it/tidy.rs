//! Keeps the codebase honest about itself: every source file says what it
//! is for, ARCHITECTURE.md names only paths that exist, and its invariants
//! hold in the imports (who may use bollard, the grading room does no IO,
//! the service never names a sandbox backend), and no file grows past one
//! concern.

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
            // `target/…` files are written by tests, not kept in the tree.
            if looks_like_path
                && !path.starts_with("target/")
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

/// Unpacking an upload (CPU, and up to 8 MiB per app) is a worker's job,
/// never a request's (ARCHITECTURE.md's invariants).
#[test]
fn only_the_workers_unpack_an_upload() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name != "src/service/workers.rs"
            && !name.starts_with("src/bundle/")
            && text.contains(".unpack()")
        {
            offenders.push(name.clone());
        }
        if name.starts_with("src/service/routes/")
            && (text.contains("Bundle::from_bytes") || text.contains("Bundle::from_path"))
        {
            offenders.push(name);
        }
    }
    assert!(
        offenders.is_empty(),
        "these files unpack uploads: {offenders:?}"
    );
}

/// README.md's table of attacks is generated (`scripts/make-hostile-fixtures`)
/// from `fixtures/hostile/attacks.toml`; rendered here on its own, so that an
/// edit to either side alone is caught.
#[test]
fn the_readme_attack_table_is_what_attacks_toml_gives() {
    const BEGIN: &str = "<!-- hostile:begin (scripts/make-hostile-fixtures writes this block from fixtures/hostile/attacks.toml) -->\n";
    const END: &str = "<!-- hostile:end -->";
    let attacks: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo().join("fixtures/hostile/attacks.toml")).unwrap(),
    )
    .unwrap();
    let mut expected =
        String::from("| attack | verdict it must get | stopped by |\n|---|---|---|\n");
    for attack in attacks["attack"].as_array().expect("[[attack]] entries") {
        let field = |key: &str| attack.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let tier = attack["tier"]
            .as_integer()
            .expect("every attack has a tier");
        let verdict = match (field("failure"), tier) {
            ("", 1) => "flawless",
            ("", 2) => "unrequested_changes",
            ("", _) => panic!("{}: tier 3 without a failure", field("name")),
            (failure, _) => failure,
        };
        expected.push_str(&format!(
            "| {} | {tier} {verdict} | {} |\n",
            field("name"),
            field("limit")
        ));
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table = readme
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table)
        .expect("README.md has the hostile:begin/end markers");
    assert_eq!(
        table, expected,
        "README.md's attack table differs from fixtures/hostile/attacks.toml: run scripts/make-hostile-fixtures"
    );
}

/// Each archive of `fixtures/apps/` made by `scripts/make-app-archives`
/// holds what its folder `fixtures/apps/sources/<name>/` gives: the same
/// members (folders and files, under `<name>/`) with the same bytes.
/// Contents are compared, not the gzip's bytes (another zlib may compress
/// differently).
#[test]
fn the_app_archives_hold_what_their_sources_give() {
    type Members = std::collections::BTreeMap<String, Option<Vec<u8>>>;
    fn walk(dir: &std::path::Path, name: &str, out: &mut Members) {
        out.insert(format!("{name}/"), None);
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let file = entry.file_name().into_string().unwrap();
            if file == "__pycache__" || file.ends_with(".pyc") {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &format!("{name}/{file}"), out);
            } else {
                out.insert(
                    format!("{name}/{file}"),
                    Some(std::fs::read(&path).unwrap()),
                );
            }
        }
    }
    let apps = repo().join("fixtures/apps");
    let mut checked = 0;
    for source in std::fs::read_dir(apps.join("sources")).unwrap().flatten() {
        let name = source.file_name().into_string().unwrap();
        let mut expected = Members::new();
        walk(&source.path(), &name, &mut expected);
        let archive = apps.join(format!("{name}.tar.gz"));
        let bytes = std::fs::read(&archive).unwrap_or_else(|e| {
            panic!("{}: {e}; run scripts/make-app-archives", archive.display())
        });
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let mut got = Members::new();
        for member in tar.entries().unwrap() {
            let mut member = member.unwrap();
            let path = String::from_utf8_lossy(&member.path_bytes()).into_owned();
            if member.header().entry_type().is_dir() {
                got.insert(format!("{}/", path.trim_end_matches('/')), None);
            } else {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut member, &mut data).unwrap();
                got.insert(path, Some(data));
            }
        }
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{}'s members differ from fixtures/apps/sources/{name}: run scripts/make-app-archives",
            archive.display()
        );
        assert!(
            got == expected,
            "{}'s contents differ from fixtures/apps/sources/{name}: run scripts/make-app-archives",
            archive.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no sources under fixtures/apps/sources");
}

/// The non-test code of a source file: what comes before its
/// `#[cfg(test)]` module (tests may read fixtures from disk).
fn product_code(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Source files under `dir` whose product code mentions any of `needles`.
fn mentioning(dir: &str, needles: &[&str]) -> Vec<String> {
    let root = repo().join(dir);
    let mut files = Vec::new();
    if root.is_file() {
        files.push(root);
    } else {
        rust_files(&root, &mut files);
    }
    files
        .iter()
        .filter(|f| !f.ends_with("tests.rs"))
        .filter_map(|file| {
            let code = product_code(file);
            let found: Vec<&str> = needles
                .iter()
                .copied()
                .filter(|n| code.contains(n))
                .collect();
            (!found.is_empty()).then(|| {
                let relative = file.strip_prefix(repo()).unwrap().display();
                format!("{relative}: {}", found.join(", "))
            })
        })
        .collect()
}

#[test]
fn only_the_docker_backend_and_the_image_builder_use_bollard() {
    let allowed = [
        "src/sandbox/docker/",
        "src/sandbox/lib_volume.rs",
        "src/image.rs",
    ];
    let offenders: Vec<String> = mentioning("src", &["bollard"])
        .into_iter()
        .filter(|line| !allowed.iter().any(|a| line.starts_with(a)))
        .collect();
    assert!(
        offenders.is_empty(),
        "only the Docker backend and the image builder may talk to Docker (ARCHITECTURE's invariants): {offenders:#?}"
    );
}

#[test]
fn the_grading_room_does_no_io() {
    let offenders = mentioning(
        "src/grading",
        &[
            "std::fs",
            "std::net",
            "std::process",
            "tokio",
            "reqwest",
            "bollard",
            "rusqlite",
            "File::open",
        ],
    );
    assert!(
        offenders.is_empty(),
        "src/grading/ turns evidence into verdicts without IO; move the reading or writing to its caller: {offenders:#?}"
    );
}

#[test]
fn only_the_sqlite_store_uses_rusqlite_and_no_logic_is_in_triggers() {
    let offenders: Vec<String> = mentioning("src", &["rusqlite", "Connection::open"])
        .into_iter()
        .filter(|line| !line.starts_with("src/service/store/sqlite/"))
        .collect();
    assert!(
        offenders.is_empty(),
        "the service reaches its jobs through `JobStore`; SQL stays in its store: {offenders:#?}"
    );
    let triggers: Vec<String> = [
        "src/service/store/migrations",
        "src/service/store/postgres/migrations",
    ]
    .iter()
    .flat_map(|dir| std::fs::read_dir(repo().join(dir)).unwrap())
    .map(|entry| entry.unwrap().path())
    .filter(|sql| {
        std::fs::read_to_string(sql)
            .unwrap()
            .to_uppercase()
            .contains("CREATE TRIGGER")
    })
    .map(|sql| sql.display().to_string())
    .collect();
    assert!(
        triggers.is_empty(),
        "what happens when a row changes is the store's Rust code, in the same transaction: {triggers:#?}"
    );
}

#[test]
fn only_the_postgres_store_uses_the_postgres_client() {
    let offenders: Vec<String> = mentioning("src", &["tokio_postgres", "deadpool_postgres"])
        .into_iter()
        .filter(|line| !line.starts_with("src/service/store/postgres/"))
        .collect();
    assert!(
        offenders.is_empty(),
        "the service reaches its jobs through `JobStore`; SQL stays in its store: {offenders:#?}"
    );
}

/// The service gets its sandbox from `sandbox::backend` and drives it
/// through the `Sandbox` and `Backend` traits only: the routes store jobs
/// and never run one, and neither the workers nor the engine watch know
/// which backend runs them.
#[test]
fn the_service_never_imports_a_sandbox_backend() {
    let offenders = mentioning(
        "src/service",
        &[
            "sandbox::docker",
            "sandbox::local",
            "docker::",
            "local::",
            "DockerSandbox",
            "LocalSandbox",
            "DockerBackend",
            "LocalBackend",
            "bollard",
        ],
    );
    assert!(
        offenders.is_empty(),
        "the service reaches the sandbox through `sandbox::backend` and its traits, never a backend: {offenders:#?}"
    );
}

/// One concern a file (ARCHITECTURE.md): product code past 800 lines is a
/// sign a file holds several jobs; such a file is split into a room.
#[test]
fn no_source_file_is_long() {
    const LIMIT: usize = 800;
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("tests.rs"))
        .filter_map(|file| {
            let name = file.strip_prefix(repo()).unwrap().display().to_string();
            let lines = product_code(file).lines().count();
            (lines > LIMIT).then(|| format!("{name}: {lines} lines"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these into a room of one concern a file: {long:#?}"
    );
}

/// README's scenario reference (issue 21) lists every step and
/// expectation of the language, in the code's order, each step with the
/// failure code it gets by default, and the controls `set` drives.
#[test]
fn the_readme_scenario_table_is_the_languages() {
    use qtjudge::scenario::{DEFAULT_STEP_FAILURES, EXPECTATIONS, SET_KINDS, STEPS};
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- scenario:begin")
        .expect("README.md has the scenario:begin marker");
    let end = readme
        .find("<!-- scenario:end -->")
        .expect("README.md has the scenario:end marker");
    let table = &readme[start..end];
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let named: Vec<&str> = rows.iter().map(|r| r[1].trim_matches('`')).collect();
    let expected: Vec<&str> = STEPS.iter().chain(EXPECTATIONS.iter()).copied().collect();
    assert_eq!(
        named, expected,
        "README.md's scenario tables must list src/scenario.rs's STEPS, then its EXPECTATIONS"
    );
    for (step, code) in DEFAULT_STEP_FAILURES {
        let row = rows.iter().find(|r| r[1] == format!("`{step}`")).unwrap();
        assert_eq!(
            row[row.len() - 2],
            format!("`{code}`"),
            "README.md: step `{step}` fails with `{code}` by default"
        );
    }
    for kind in SET_KINDS {
        assert!(
            table.contains(&format!("`{kind}`")),
            "README.md's `set` row names {kind}"
        );
    }
}
