//! A folder on the host read whole, refused like an archive: symlinks and
//! special files, too many files or bytes, paths too deep.

use std::path::Path;

use super::limits::{clean_path, skipped, Unpacked};
use super::{BundleError, MAX_DEPTH};

pub(super) fn read_dir_into(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Unpacked,
) -> Result<(), BundleError> {
    let read_error = |e: std::io::Error| BundleError::Read {
        path: dir.display().to_string(),
        detail: e.to_string(),
    };
    if depth > MAX_DEPTH {
        return Err(BundleError::UnsafePath {
            name: prefix.to_string(),
            why: "nested too deep".into(),
        });
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}{name}");
        if skipped(&path) || name == ".venv" || name == "venv" {
            continue;
        }
        // symlink_metadata: a link is judged as a link, never followed out of the folder.
        let meta = std::fs::symlink_metadata(entry.path()).map_err(read_error)?;
        if meta.file_type().is_symlink() {
            return Err(BundleError::NotAFile {
                name: path,
                kind: "symbolic link".into(),
            });
        }
        if meta.is_dir() {
            read_dir_into(&entry.path(), &format!("{path}/"), depth + 1, out)?;
        } else if meta.is_file() {
            if meta.len() > out.room() {
                return Err(BundleError::TooLarge);
            }
            let data = std::fs::read(entry.path()).map_err(read_error)?;
            out.add(clean_path(&path)?, data)?;
        } else {
            return Err(BundleError::NotAFile {
                name: path,
                kind: "special file".into(),
            });
        }
    }
    Ok(())
}
