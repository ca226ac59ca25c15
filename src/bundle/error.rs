//! `BundleError`: why an input could not become a bundle, each message
//! saying what to do, and its stable failure code.

use super::{MAX_BYTES, MAX_FILES};
use crate::grading::FailureCode;

/// Why an input could not become a bundle. Each message says what to do.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BundleError {
    #[error("unsafe archive entry `{name}`: {why}; an app's files must stay inside its folder")]
    UnsafePath { name: String, why: String },
    #[error(
        "archive entry `{name}` is a {kind}, not a regular file; only plain files are accepted"
    )]
    NotAFile { name: String, kind: String },
    #[error("the app has more than {max} files; send only the app's sources and data", max = MAX_FILES)]
    TooManyFiles,
    #[error("the app is over {max} bytes once unpacked; send only the app's sources and data", max = MAX_BYTES)]
    TooLarge,
    /// A part of an archive bigger than any app needs, refused before it is read.
    #[error(
        "{what} is {}, over the {} limit for {limit_for}; send only the app's sources and data, packed by an ordinary tar or zip tool",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    OverLimit {
        what: String,
        size: u64,
        limit: u64,
        limit_for: String,
    },
    #[error("not a readable {format} archive: {detail}")]
    BadArchive { format: String, detail: String },
    #[error("not a readable Jupyter notebook: {0}")]
    BadNotebook(String),
    #[error("the app holds no Python file")]
    NoPython,
    #[error("--entry `{entry}` is not a file of the app (its Python files: {})", list(.candidates))]
    EntryNotFound {
        entry: String,
        candidates: Vec<String>,
    },
    #[error("no entry point: no file has an `if __name__ == \"__main__\":` guard; pass --entry FILE (the app's Python files: {})", list(.candidates))]
    NoEntry { candidates: Vec<String> },
    #[error("ambiguous entry point: {} each have an `if __name__ == \"__main__\":` guard; pass --entry with one of them", list(.candidates))]
    AmbiguousEntry { candidates: Vec<String> },
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
}

impl BundleError {
    /// A stable code: the service's JSON error, and the failure of an
    /// uploaded app that cannot be unpacked.
    pub fn code(&self) -> FailureCode {
        match self {
            BundleError::UnsafePath { .. } => FailureCode::UnsafeArchivePath,
            BundleError::NotAFile { .. } => FailureCode::ArchiveSpecialFile,
            BundleError::TooManyFiles => FailureCode::ArchiveTooManyFiles,
            BundleError::TooLarge | BundleError::OverLimit { .. } => FailureCode::ArchiveTooLarge,
            BundleError::BadArchive { .. } => FailureCode::BadArchive,
            BundleError::BadNotebook(_) => FailureCode::BadNotebook,
            BundleError::NoPython => FailureCode::NoPythonFile,
            BundleError::EntryNotFound { .. } => FailureCode::EntryNotFound,
            BundleError::NoEntry { .. } => FailureCode::NoEntryPoint,
            BundleError::AmbiguousEntry { .. } => FailureCode::AmbiguousEntryPoint,
            BundleError::Read { .. } => FailureCode::UnreadableInput,
        }
    }
}

/// `n` bytes as people read them: `64 KiB`, `1 GiB`, `1.5 MiB`.
pub(super) fn human_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size {
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.1} {unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n} bytes")
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
