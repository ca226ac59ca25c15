//! A `.zip` read in memory: its central directory checked (record count,
//! metadata size, names, kinds, declared sizes) before the zip reader
//! allocates, then each member read under the limits.

use std::io::Read;

use super::limits::{clean_path, skipped, Unpacked};
use super::{BundleError, MAX_BYTES, MAX_FILES};

/// Most central-directory headers a zip may hold, counted by their
/// signature before the zip reader allocates one record per header. Above
/// `MAX_FILES * 4` (the entries a zip may list) so that a stored zip inside
/// the app, whose headers count too, is not refused for them.
pub(super) const MAX_ZIP_RECORDS: usize = MAX_FILES * 16;

/// Most bytes of names, extra fields and comments in a zip's central
/// headers: the zip reader copies them all before any entry is checked.
/// An app's few hundred short names need a few hundred KiB.
const MAX_ZIP_METADATA: u64 = 2 * 1024 * 1024;

/// A zip's declared unpacked size, from its central directory only.
pub(super) fn zip_declared(bytes: &[u8], entry: Option<&str>) -> Result<u64, BundleError> {
    let mut archive = open_zip(bytes)?;
    let mut names = Vec::new();
    let mut declared = 0u64;
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(zip_error)?;
        let Some(path) = zip_member_path(&member)? else {
            continue;
        };
        declared = declared.saturating_add(member.size());
        names.push(path);
    }
    if names.len() > MAX_FILES {
        return Err(BundleError::TooManyFiles);
    }
    if !names
        .iter()
        .any(|n| n.ends_with(".py") || n.ends_with(".ipynb"))
    {
        return Err(BundleError::NoPython);
    }
    if declared > MAX_BYTES {
        return Err(BundleError::TooLarge);
    }
    if let Some(entry) = entry
        .map(|e| e.trim().trim_start_matches("./"))
        .filter(|e| !e.is_empty())
    {
        // As `assemble` does: one folder wrapping every file may be left out.
        let top = names
            .first()
            .and_then(|n| n.split_once('/'))
            .map(|(t, _)| format!("{t}/"));
        let top = top.filter(|t| names.iter().all(|n| n.starts_with(t.as_str())));
        let found = names.iter().any(|n| {
            n == entry
                || top
                    .as_deref()
                    .is_some_and(|t| n.strip_prefix(t) == Some(entry))
        });
        if !found {
            let mut candidates: Vec<String> = names
                .into_iter()
                .filter(|n| n.ends_with(".py") || n.ends_with(".ipynb"))
                .collect();
            candidates.truncate(20);
            return Err(BundleError::EntryNotFound {
                entry: entry.to_string(),
                candidates,
            });
        }
    }
    Ok(declared)
}

fn zip_error(detail: impl std::fmt::Display) -> BundleError {
    BundleError::BadArchive {
        format: "zip".into(),
        detail: detail.to_string(),
    }
}

/// A zip's directory, once its size is known to be safe to parse.
fn open_zip(bytes: &[u8]) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>, BundleError> {
    check_zip_directory(bytes)?;
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_error)?;
    if archive.len() > MAX_FILES * 4 {
        return Err(BundleError::TooManyFiles);
    }
    Ok(archive)
}

/// A member's checked path; None for a folder or a file nobody needs.
/// Links and special files are refused.
fn zip_member_path<R: Read>(
    member: &zip::read::ZipFile<'_, R>,
) -> Result<Option<String>, BundleError> {
    let raw_name = String::from_utf8_lossy(member.name_raw()).into_owned();
    let path = clean_path(&raw_name)?;
    if member.is_dir() {
        return Ok(None);
    }
    if member.is_symlink() || !member.is_file() {
        let kind = if member.is_symlink() {
            "symbolic link"
        } else {
            "special file"
        };
        return Err(BundleError::NotAFile {
            name: raw_name,
            kind: kind.into(),
        });
    }
    Ok((!skipped(&path)).then_some(path))
}

pub(super) fn read_zip(bytes: &[u8]) -> Result<Unpacked, BundleError> {
    let mut archive = open_zip(bytes)?;
    let mut out = Unpacked::default();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(zip_error)?;
        let Some(path) = zip_member_path(&member)? else {
            continue;
        };
        let raw_name = String::from_utf8_lossy(member.name_raw()).into_owned();
        // The declared size may lie (a zip bomb): read at most one byte past the room left.
        let room = out.room();
        let mut data = Vec::new();
        (&mut member)
            .take(room + 1)
            .read_to_end(&mut data)
            .map_err(|e| zip_error(format!("{raw_name}: {e}")))?;
        if data.len() as u64 > room {
            return Err(BundleError::TooLarge);
        }
        out.add(path, data)?;
    }
    Ok(out)
}

/// Bounds what the zip reader allocates for the central directory before
/// it reads it: it keeps a record, a name and extra fields per header
/// (a 13 MiB zip of 150,000 empty files cost it 45 MiB). Every
/// header it could parse starts with the signature, wherever it looks for
/// the directory, so counting all of them bounds any directory it picks.
fn check_zip_directory(bytes: &[u8]) -> Result<(), BundleError> {
    const CENTRAL_HEADER: &[u8] = b"PK\x01\x02";
    const FIXED_LEN: usize = 46;
    let mut records = 0usize;
    let mut metadata = 0u64;
    for at in memchr::memmem::find_iter(bytes, CENTRAL_HEADER) {
        records += 1;
        if records > MAX_ZIP_RECORDS {
            return Err(BundleError::TooManyFiles);
        }
        let Some(fixed) = bytes.get(at..at + FIXED_LEN) else {
            continue;
        };
        let length_at = |i: usize| u64::from(u16::from_le_bytes([fixed[i], fixed[i + 1]]));
        // File name, extra field and comment lengths.
        metadata += length_at(28) + length_at(30) + length_at(32);
    }
    if metadata > MAX_ZIP_METADATA {
        return Err(BundleError::OverLimit {
            what: "the zip's central directory (names, extra fields and comments)".into(),
            size: metadata,
            limit: MAX_ZIP_METADATA,
            limit_for: "archive metadata".into(),
        });
    }
    Ok(())
}
