//! One step of a store's schema: a file of SQL and the version it brings.
//! Each store lists its own, oldest first (version `n` the `n`th), and
//! applies at every open the ones the store lacks.

pub(super) struct Migration {
    pub(super) version: u32,
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

impl Migration {
    pub(super) const fn new(version: u32, name: &'static str, sql: &'static str) -> Migration {
        Migration { version, name, sql }
    }
}

/// The newest version of `migrations` (0 when there are none).
pub(super) fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.version)
}

/// A store's migration list against its folder (`dir`, from the crate's
/// root): one file per version, numbered in order from 1, each the text
/// compiled in.
#[cfg(test)]
pub(super) fn assert_listed_as_their_files(dir: &str, migrations: &[Migration]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        migrations.len(),
        "every file is listed: {files:?}"
    );
    for (n, (m, file)) in migrations.iter().zip(&files).enumerate() {
        assert_eq!(m.version as usize, n + 1, "{}", m.name);
        assert!(file.starts_with(&format!("{:04}_", m.version)), "{file}");
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(
            text, m.sql,
            "{file} is the one compiled in as version {}",
            m.version
        );
    }
}
