//! The files an input unpacks to, under the app's limits (how many, how
//! many bytes), and each member's path checked: relative, inside the
//! app's folder, not too long or deep; caches and `.git` skipped.

use std::collections::BTreeMap;

use super::{BundleError, MAX_BYTES, MAX_DEPTH, MAX_FILES, MAX_PATH_LEN};

/// Files read so far, with the running totals the limits apply to.
#[derive(Default)]
pub(super) struct Unpacked {
    pub(super) files: BTreeMap<String, Vec<u8>>,
    bytes: u64,
}

impl Unpacked {
    pub(super) fn add(&mut self, path: String, data: Vec<u8>) -> Result<(), BundleError> {
        if self.files.len() >= MAX_FILES {
            return Err(BundleError::TooManyFiles);
        }
        self.bytes += data.len() as u64;
        if self.bytes > MAX_BYTES {
            return Err(BundleError::TooLarge);
        }
        if self.files.insert(path.clone(), data).is_some() {
            return Err(BundleError::UnsafePath {
                name: path,
                why: "the name appears twice".into(),
            });
        }
        Ok(())
    }

    /// Room left before the byte limit: a member is never read past it.
    pub(super) fn room(&self) -> u64 {
        MAX_BYTES - self.bytes.min(MAX_BYTES)
    }
}

/// Names nobody needs in the sandbox: skipped, not refused.
pub(super) fn skipped(path: &str) -> bool {
    path.split('/')
        .any(|part| part == "__pycache__" || part == ".git" || part == "__MACOSX")
        || path.ends_with(".pyc")
        || path.ends_with("/.DS_Store")
        || path == ".DS_Store"
}

/// Checks an archive member's name: relative, no `..`, no drive letters or
/// backslashes, not too long or deep. Returns the cleaned name.
pub(super) fn clean_path(name: &str) -> Result<String, BundleError> {
    let unsafe_path = |why: &str| BundleError::UnsafePath {
        name: name.chars().take(200).collect(),
        why: why.into(),
    };
    if name.starts_with('/') {
        return Err(unsafe_path("an absolute path"));
    }
    if name.contains('\\') || name.contains(':') || name.contains('\0') {
        return Err(unsafe_path("a backslash, colon or NUL in the name"));
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(unsafe_path("a `..` component"));
    }
    if parts.is_empty() {
        return Err(unsafe_path("an empty name"));
    }
    if parts.len() > MAX_DEPTH || name.len() > MAX_PATH_LEN {
        return Err(unsafe_path("nested too deep or named too long"));
    }
    Ok(parts.join("/"))
}
