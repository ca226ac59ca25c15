//! An app bundle: the files of a candidate app and the one to run as
//! `__main__`. Every shape of input becomes one: a single script, a
//! folder, a `.zip` or `.tar.gz` archive, a Jupyter notebook.
//!
//! Archives are untrusted: they are read in memory (never unpacked on the
//! host), and refused whole when a name escapes the app's folder, an entry
//! is not a plain file, or the files are too many or too big once unpacked.
//! Every size an archive declares (a tar header extension, the unpacked
//! stream, a zip's central directory) is checked before its bytes are
//! read, so an upload of any content costs bounded memory.
//! Only [`Bundle::from_path`] does IO; everything else is pure.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use crate::grading::FailureCode;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Most files one app may carry.
pub const MAX_FILES: usize = 256;
/// Most bytes one app may carry once unpacked (the job travels as base64 in
/// one stdin line the supervisor caps at 16 MiB; the sandbox's `/tmp` is 64 MiB).
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Longest path inside an app, and deepest folder nesting.
const MAX_PATH_LEN: usize = 240;
const MAX_DEPTH: usize = 12;
/// Largest tar header extension (a GNU long name or link name, a PAX
/// header) read: names are at most `MAX_PATH_LEN`, so anything near this is
/// not an app's, and it is refused before a byte of it is held.
const MAX_TAR_EXTENSION: u64 = 64 * 1024;
/// Most bytes a `.tar.gz` may unpack to, headers, padding and skipped files
/// included: what is kept is capped by `MAX_BYTES`, this caps the time
/// spent inflating what is not.
const MAX_TAR_STREAM: u64 = 4 * MAX_BYTES;
/// Most central-directory headers a zip may hold, counted by their
/// signature before the zip reader allocates one record per header. Above
/// `MAX_FILES * 4` (the entries a zip may list) so that a stored zip inside
/// the app, whose headers count too, is not refused for them.
const MAX_ZIP_RECORDS: usize = MAX_FILES * 16;
/// Most bytes of names, extra fields and comments in a zip's central
/// headers: the zip reader copies them all before any entry is checked.
/// An app's few hundred short names need a few hundred KiB.
const MAX_ZIP_METADATA: u64 = 2 * 1024 * 1024;

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
fn human_bytes(n: u64) -> String {
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

/// What the bundle was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// One script (extracted from a raw answer or a `.py` file).
    Script,
    Directory,
    Zip,
    TarGz,
    Notebook,
}

/// One file of the app; `path` is relative, `/`-separated, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleFile {
    pub path: String,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// An app: its files (sorted by path) and the one run as `__main__`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub origin: Origin,
    pub entry: String,
    pub files: Vec<BundleFile>,
    /// What was changed on the way in (a notebook's dropped magics, a
    /// stripped top folder).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// What a verification reports about its bundle (no file contents).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct BundleSummary {
    pub origin: Origin,
    pub entry: String,
    /// The file compared with the task's original (the entry, or the file
    /// defining the original's window class).
    pub compared: String,
    pub files: Vec<String>,
    pub bytes: u64,
    pub notes: Vec<String>,
}

/// The kind of input a path or an upload's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A `.py` script or a raw model answer (Markdown, text): extracted.
    Answer,
    Zip,
    TarGz,
    Notebook,
}

impl InputKind {
    /// From a file name's ending.
    pub fn of_name(name: &str) -> InputKind {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".zip") {
            InputKind::Zip
        } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            InputKind::TarGz
        } else if lower.ends_with(".ipynb") {
            InputKind::Notebook
        } else {
            InputKind::Answer
        }
    }
}

impl Bundle {
    /// A one-script app.
    pub fn script(name: &str, source: &str) -> Bundle {
        Bundle {
            origin: Origin::Script,
            entry: name.to_string(),
            files: vec![BundleFile {
                path: name.to_string(),
                data: source.as_bytes().to_vec(),
            }],
            notes: Vec::new(),
        }
    }

    /// A folder on the host, read whole. Symlinks and special files are
    /// refused like an archive's; `__pycache__`, `.git` and `*.pyc` are skipped.
    pub fn from_dir(dir: &Path, entry: Option<&str>) -> Result<Bundle, BundleError> {
        let mut files = Unpacked::default();
        read_dir_into(dir, "", 0, &mut files)?;
        Bundle::assemble(Origin::Directory, files, entry)
    }

    /// A path as `qtjudge verify` takes it: a folder, an archive or a
    /// notebook. `None` for anything else (an answer to extract).
    pub fn from_path(path: &Path, entry: Option<&str>) -> Option<Result<Bundle, BundleError>> {
        if path.is_dir() {
            return Some(Bundle::from_dir(path, entry));
        }
        let kind = InputKind::of_name(&path.to_string_lossy());
        if kind == InputKind::Answer {
            return None;
        }
        let read = std::fs::metadata(path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                // An archive is at most as big as what it unpacks to, give or take headers.
                if m.len() > MAX_BYTES * 2 {
                    Err("over the size limit".into())
                } else {
                    std::fs::read(path).map_err(|e| e.to_string())
                }
            });
        Some(match read {
            Ok(bytes) => Bundle::from_bytes(kind, &path.to_string_lossy(), &bytes, entry),
            Err(detail) if detail == "over the size limit" => Err(BundleError::TooLarge),
            Err(detail) => Err(BundleError::Read {
                path: path.display().to_string(),
                detail,
            }),
        })
    }

    /// An archive or notebook held in memory (an upload), by its kind.
    /// `name` is the upload's file name (a notebook's script is named after it).
    pub fn from_bytes(
        kind: InputKind,
        name: &str,
        bytes: &[u8],
        entry: Option<&str>,
    ) -> Result<Bundle, BundleError> {
        match kind {
            InputKind::Zip => Bundle::assemble(Origin::Zip, read_zip(bytes)?, entry),
            InputKind::TarGz => Bundle::assemble(Origin::TarGz, read_tar_gz(bytes)?, entry),
            InputKind::Notebook => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| BundleError::BadNotebook(format!("not UTF-8: {e}")))?;
                let mut notes = Vec::new();
                let script = notebook_script(text, &mut notes)?;
                let stem = Path::new(name)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(safe_stem)
                    .unwrap_or_else(|| "notebook".into());
                let mut bundle = Bundle::script(&format!("{stem}.py"), &script);
                bundle.origin = Origin::Notebook;
                bundle.notes = notes;
                Ok(bundle)
            }
            InputKind::Answer => Err(BundleError::BadArchive {
                format: "known".into(),
                detail: format!("`{name}` is not a .zip, .tar.gz or .ipynb"),
            }),
        }
    }

    /// Checks the unpacked files, strips one folder wrapping them all,
    /// converts a notebook entry and picks the entry.
    fn assemble(
        origin: Origin,
        unpacked: Unpacked,
        entry: Option<&str>,
    ) -> Result<Bundle, BundleError> {
        let mut notes = Vec::new();
        let mut files = unpacked.files;
        // `myapp/main.py`, `myapp/ui/…`: the folder a zip of a folder adds.
        let top: Option<String> = files.keys().next().and_then(|p| {
            let (first, _) = p.split_once('/')?;
            let prefix = format!("{first}/");
            files
                .keys()
                .all(|p| p.starts_with(&prefix))
                .then_some(prefix)
        });
        let mut entry = entry
            .map(|e| e.trim().trim_start_matches("./").to_string())
            .filter(|e| !e.is_empty());
        if let Some(prefix) = top {
            if let Some(e) = entry.as_mut().filter(|e| e.starts_with(&prefix)) {
                *e = e[prefix.len()..].to_string();
            }
            notes.push(format!(
                "the app's files are inside `{prefix}`: run from there"
            ));
            files = files
                .into_iter()
                .map(|(p, d)| (p[prefix.len()..].to_string(), d))
                .collect();
        }
        if let Some(e) = &entry {
            if !files.contains_key(e) {
                return Err(BundleError::EntryNotFound {
                    entry: e.clone(),
                    candidates: python_files(&files),
                });
            }
            if e.ends_with(".ipynb") {
                let text = String::from_utf8_lossy(&files[e]).into_owned();
                let script = notebook_script(&text, &mut notes)?;
                let converted = format!("{}.py", &e[..e.len() - ".ipynb".len()]);
                notes.push(format!("the notebook `{e}` runs as `{converted}`"));
                files.insert(converted.clone(), script.into_bytes());
                entry = Some(converted);
            }
        }
        let entry = match entry {
            Some(e) => e,
            None => find_entry(&files)?,
        };
        Ok(Bundle {
            origin,
            entry,
            files: files
                .into_iter()
                .map(|(path, data)| BundleFile { path, data })
                .collect(),
            notes,
        })
    }

    /// The text of one file (lossy), if the app has it.
    pub fn text(&self, path: &str) -> Option<String> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
    }

    /// The Python file to compare with an original whose window class is
    /// `window_class`: the file defining it, else the entry.
    pub fn compared_file(&self, window_class: &str) -> String {
        if !window_class.is_empty() {
            let pattern = Regex::new(&format!(
                r"(?m)^\s*class\s+{}\b",
                regex::escape(window_class)
            ));
            if let Ok(pattern) = pattern {
                if let Some(f) = self.files.iter().find(|f| {
                    f.path.ends_with(".py") && pattern.is_match(&String::from_utf8_lossy(&f.data))
                }) {
                    return f.path.clone();
                }
            }
        }
        self.entry.clone()
    }

    /// Every Python file's text, the entry first.
    pub fn python_sources(&self) -> Vec<String> {
        let mut files: Vec<&BundleFile> = self
            .files
            .iter()
            .filter(|f| f.path.ends_with(".py"))
            .collect();
        files.sort_by_key(|f| f.path != self.entry);
        files
            .into_iter()
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
            .collect()
    }

    /// The app's files as a `.tar.gz` (sorted, no times or owners), for
    /// sending it where an archive is taken (`grade --server`): what
    /// [`Bundle::from_bytes`] reads back is these files.
    pub fn to_tar_gz(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for file in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(file.data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            builder.append_data(&mut header, &file.path, file.data.as_slice())?;
        }
        let tar = builder.into_inner()?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar)?;
        gz.finish()
    }

    pub fn summary(&self, compared: &str) -> BundleSummary {
        BundleSummary {
            origin: self.origin,
            entry: self.entry.clone(),
            compared: compared.to_string(),
            files: self.files.iter().map(|f| f.path.clone()).collect(),
            bytes: self.files.iter().map(|f| f.data.len() as u64).sum(),
            notes: self.notes.clone(),
        }
    }
}

/// An app as it was uploaded (a zip, a .tar.gz or a notebook): kept
/// compressed where it rests and unpacked only when a worker runs it, so
/// that neither a request nor the store ever holds what it unpacks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub kind: InputKind,
    /// The upload's file name (a notebook's script is named after it).
    pub name: String,
    pub entry: Option<String>,
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

impl Upload {
    /// Checks what can be checked without unpacking, and returns the bytes
    /// the upload says it unpacks to: a zip's directory (names, kinds,
    /// sizes, the entry), a .tar.gz's gzip header and size trailer, a
    /// notebook's own size. What only unpacking shows (a member lying
    /// about its size, a tar's names) is checked by [`Upload::unpack`].
    pub fn check(&self) -> Result<u64, BundleError> {
        match self.kind {
            InputKind::Zip => zip_declared(&self.bytes, self.entry.as_deref()),
            InputKind::TarGz => gzip_declared(&self.bytes),
            InputKind::Notebook => {
                std::str::from_utf8(&self.bytes)
                    .map_err(|e| BundleError::BadNotebook(format!("not UTF-8: {e}")))?;
                Ok(self.bytes.len() as u64)
            }
            InputKind::Answer => Err(BundleError::BadArchive {
                format: "known".into(),
                detail: format!("`{}` is not a .zip, .tar.gz or .ipynb", self.name),
            }),
        }
    }

    /// The app, unpacked with every limit applied.
    pub fn unpack(&self) -> Result<Bundle, BundleError> {
        Bundle::from_bytes(self.kind, &self.name, &self.bytes, self.entry.as_deref())
    }
}

/// A zip's declared unpacked size, from its central directory only.
fn zip_declared(bytes: &[u8], entry: Option<&str>) -> Result<u64, BundleError> {
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

/// A .tar.gz's declared unpacked size: its gzip header checked and the
/// size trailer (the stream's length modulo 4 GiB; unpacking checks it).
fn gzip_declared(bytes: &[u8]) -> Result<u64, BundleError> {
    let bad = |detail: &str| BundleError::BadArchive {
        format: "tar.gz".into(),
        detail: detail.into(),
    };
    if bytes.len() < 18 || bytes[..2] != [0x1f, 0x8b] {
        return Err(bad("not gzip data (no gzip header)"));
    }
    if bytes[2] != 8 || bytes[3] & 0xe0 != 0 {
        return Err(bad(
            "not gzip data (an unknown compression method or flags)",
        ));
    }
    let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().expect("four bytes");
    let declared = u64::from(u32::from_le_bytes(trailer));
    if declared > MAX_TAR_STREAM {
        return Err(BundleError::TooLarge);
    }
    Ok(declared)
}

/// Files read so far, with the running totals the limits apply to.
#[derive(Default)]
struct Unpacked {
    files: BTreeMap<String, Vec<u8>>,
    bytes: u64,
}

impl Unpacked {
    fn add(&mut self, path: String, data: Vec<u8>) -> Result<(), BundleError> {
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
    fn room(&self) -> u64 {
        MAX_BYTES - self.bytes.min(MAX_BYTES)
    }
}

/// Names nobody needs in the sandbox: skipped, not refused.
fn skipped(path: &str) -> bool {
    path.split('/')
        .any(|part| part == "__pycache__" || part == ".git" || part == "__MACOSX")
        || path.ends_with(".pyc")
        || path.ends_with("/.DS_Store")
        || path == ".DS_Store"
}

/// Checks an archive member's name: relative, no `..`, no drive letters or
/// backslashes, not too long or deep. Returns the cleaned name.
fn clean_path(name: &str) -> Result<String, BundleError> {
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

fn read_zip(bytes: &[u8]) -> Result<Unpacked, BundleError> {
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

/// A `.tar.gz` read by its own small parser, not the `tar` crate's entry
/// iterator: that one reads a GNU long-name or PAX record whole, whatever
/// size its header declares (8 GiB fit in an 8 MiB upload), before any
/// entry is seen. Here every size is checked before its bytes are read.
fn read_tar_gz(bytes: &[u8]) -> Result<Unpacked, BundleError> {
    let mut stream = TarStream {
        inner: flate2::read::GzDecoder::new(bytes),
        consumed: 0,
    };
    let mut out = Unpacked::default();
    let mut members = 0usize;
    // What the extension records before a member say about it.
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax = PaxOverrides::default();
    while let Some(header) = stream.next_header()? {
        match header.kind {
            b'L' => {
                let mut name = stream.extension(&header, "a tar long-name record", "names")?;
                name.truncate(memchr::memchr(0, &name).unwrap_or(name.len()));
                long_name = Some(name);
                continue;
            }
            // Link targets are never needed: every link is refused.
            b'K' => {
                stream.extension(&header, "a tar long-link-name record", "names")?;
                continue;
            }
            b'x' => {
                let records = stream.extension(&header, "a tar PAX header", "header extensions")?;
                pax = PaxOverrides::parse(&records).map_err(|detail| stream.bad(detail))?;
                continue;
            }
            _ => {}
        }
        members += 1;
        if members > MAX_FILES * 4 {
            return Err(BundleError::TooManyFiles);
        }
        if header.kind == b'g' {
            // Global PAX records carry nothing an app needs (times, charsets).
            stream.extension(&header, "a tar global PAX header", "header extensions")?;
            continue;
        }
        // A GNU long name, else a PAX path, else the header's own.
        let name = long_name.take().or(pax.path.take()).unwrap_or(header.name);
        let size = pax.size.take().unwrap_or(header.size);
        let raw_name = String::from_utf8_lossy(&name).into_owned();
        let not_a_file = |kind: &str| BundleError::NotAFile {
            name: raw_name.clone(),
            kind: kind.into(),
        };
        match header.kind {
            // Old tars mark a folder only by the slash ending its name.
            b'0' | b'\0' | b'7' if !raw_name.ends_with('/') => {}
            b'0' | b'\0' | b'7' | b'5' => {
                clean_path(&raw_name)?;
                stream.skip(size)?;
                continue;
            }
            b'2' => return Err(not_a_file("symbolic link")),
            b'1' => return Err(not_a_file("hard link")),
            b'3' | b'4' => return Err(not_a_file("device")),
            b'6' => return Err(not_a_file("fifo")),
            b'S' => return Err(not_a_file("GNU sparse file")),
            b'D' => return Err(not_a_file("GNU dump directory")),
            b'M' => return Err(not_a_file("GNU multi-volume continuation")),
            b'V' => return Err(not_a_file("volume label")),
            other => {
                return Err(not_a_file(&format!(
                    "`{}` entry",
                    std::ascii::escape_default(other)
                )))
            }
        }
        let path = clean_path(&raw_name)?;
        if size > out.room() {
            return Err(BundleError::TooLarge);
        }
        let data = stream.read(size)?;
        if skipped(&path) {
            continue;
        }
        out.add(path, data)?;
    }
    Ok(out)
}

const TAR_BLOCK: usize = 512;

/// One 512-byte tar header, checked.
struct TarHeader {
    /// The name field, with the ustar prefix when there is one.
    name: Vec<u8>,
    kind: u8,
    size: u64,
}

/// What a PAX header says about the next member.
#[derive(Default)]
struct PaxOverrides {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl PaxOverrides {
    /// Records are `<length> <key>=<value>\n`, the length counting the whole record.
    fn parse(mut records: &[u8]) -> Result<PaxOverrides, String> {
        let mut overrides = PaxOverrides::default();
        // Some writers pad the records with NULs.
        while records.iter().any(|&b| b != 0) {
            let malformed = || "a malformed PAX record".to_string();
            let space = memchr::memchr(b' ', records).ok_or_else(malformed)?;
            let length: usize = std::str::from_utf8(&records[..space])
                .ok()
                .and_then(|digits| digits.parse().ok())
                .filter(|&length| length > space + 1 && length <= records.len())
                .ok_or_else(malformed)?;
            let record = records[space + 1..length]
                .strip_suffix(b"\n")
                .ok_or_else(malformed)?;
            let equals = memchr::memchr(b'=', record).ok_or_else(malformed)?;
            let (key, value) = (&record[..equals], &record[equals + 1..]);
            match key {
                b"path" => overrides.path = Some(value.to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|digits| digits.parse().ok())
                        .ok_or_else(|| "a PAX size that is not a number".to_string())?;
                    overrides.size = Some(size);
                }
                _ => {}
            }
            records = &records[length..];
        }
        Ok(overrides)
    }
}

/// The inflated tar stream, with every byte it will yield counted against
/// `MAX_TAR_STREAM` before it is read.
struct TarStream<R> {
    inner: R,
    consumed: u64,
}

impl<R: Read> TarStream<R> {
    fn bad(&self, detail: String) -> BundleError {
        BundleError::BadArchive {
            format: "tar.gz".into(),
            detail: format!("{detail} (at byte {} of the unpacked tar)", self.consumed),
        }
    }

    /// Counts `len` more bytes, refusing them past the stream's limit.
    fn claim(&mut self, len: u64) -> Result<(), BundleError> {
        let total = self.consumed.saturating_add(len);
        if total > MAX_TAR_STREAM {
            return Err(BundleError::OverLimit {
                what: "the unpacked tar (headers and skipped files included)".into(),
                size: total,
                limit: MAX_TAR_STREAM,
                limit_for: "an unpacked archive".into(),
            });
        }
        Ok(())
    }

    /// The next member's header, `None` at the end of the archive (two zero
    /// blocks, or none and the end of the stream).
    fn next_header(&mut self) -> Result<Option<TarHeader>, BundleError> {
        self.claim(TAR_BLOCK as u64)?;
        let mut block = [0u8; TAR_BLOCK];
        let mut filled = 0;
        while filled < TAR_BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.bad(e.to_string())),
            }
        }
        if filled == 0 || block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if filled < TAR_BLOCK {
            return Err(self.bad("the archive ends inside a header".into()));
        }
        let header = parse_tar_header(&block).map_err(|detail| self.bad(detail))?;
        self.consumed += TAR_BLOCK as u64;
        Ok(Some(header))
    }

    /// An extension record's content, refused unread when it is over
    /// `MAX_TAR_EXTENSION`.
    fn extension(
        &mut self,
        header: &TarHeader,
        what: &str,
        limit_for: &str,
    ) -> Result<Vec<u8>, BundleError> {
        if header.size > MAX_TAR_EXTENSION {
            return Err(BundleError::OverLimit {
                what: what.into(),
                size: header.size,
                limit: MAX_TAR_EXTENSION,
                limit_for: limit_for.into(),
            });
        }
        self.read(header.size)
    }

    /// A member's `size` bytes and the padding to the next block; `size`
    /// was checked against a limit far below memory.
    fn read(&mut self, size: u64) -> Result<Vec<u8>, BundleError> {
        let padded = padded_to_block(size);
        self.claim(padded)?;
        let mut data = Vec::with_capacity(size as usize);
        (&mut self.inner)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| self.bad(e.to_string()))?;
        if (data.len() as u64) < size {
            return Err(self.bad(format!("the archive ends inside a member of {size} bytes")));
        }
        self.skip_unclaimed(padded - size)?;
        self.consumed += size;
        Ok(data)
    }

    /// Passes over a member that is not kept (a folder's content, if any).
    fn skip(&mut self, size: u64) -> Result<(), BundleError> {
        let padded = padded_to_block(size);
        self.claim(padded)?;
        self.skip_unclaimed(padded)
    }

    fn skip_unclaimed(&mut self, len: u64) -> Result<(), BundleError> {
        let skipped = std::io::copy(&mut (&mut self.inner).take(len), &mut std::io::sink())
            .map_err(|e| self.bad(e.to_string()))?;
        if skipped < len {
            return Err(self.bad("the archive ends inside a member".into()));
        }
        self.consumed += len;
        Ok(())
    }
}

/// A member's size with its padding to the next block; a size so large
/// that the padding overflows is sure to be over every limit.
fn padded_to_block(size: u64) -> u64 {
    size.checked_next_multiple_of(TAR_BLOCK as u64)
        .unwrap_or(u64::MAX)
}

fn parse_tar_header(block: &[u8; TAR_BLOCK]) -> Result<TarHeader, String> {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &block[range];
        &bytes[..memchr::memchr(0, bytes).unwrap_or(bytes.len())]
    };
    let recorded = tar_number(&block[148..156])
        .map_err(|e| format!("a header's checksum field is {e} (not a tar archive?)"))?;
    // The checksum is the byte sum with its own field read as spaces;
    // some old writers summed signed bytes.
    let checksum_field = 148..156;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if checksum_field.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if recorded != unsigned && i64::try_from(recorded) != Ok(signed) {
        return Err(
            "a header's checksum does not match (not a tar archive, or a damaged one)".into(),
        );
    }
    let size = tar_number(&block[124..136]).map_err(|e| format!("a header's size is {e}"))?;
    // POSIX ustar splits long names into a prefix; GNU's magic (`ustar  `)
    // keeps other fields there.
    let mut name = Vec::new();
    if &block[257..263] == b"ustar\0" {
        let prefix = field(345..500);
        if !prefix.is_empty() {
            name.extend_from_slice(prefix);
            name.push(b'/');
        }
    }
    name.extend_from_slice(field(0..100));
    Ok(TarHeader {
        name,
        kind: block[156],
        size,
    })
}

/// A tar number field: octal digits (padded with spaces or NULs), or
/// GNU's base-256 for big values (the first byte's top bit set).
fn tar_number(field: &[u8]) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err("negative".into());
        }
        let mut value = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .map(|v| v | u64::from(b))
                .ok_or("too large a number")?;
        }
        return Ok(value);
    }
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != b' ' && b != 0);
    let mut value = 0u64;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err("not an octal number".into());
        }
        value = value
            .checked_mul(8)
            .map(|v| v | u64::from(b - b'0'))
            .ok_or("too large a number")?;
    }
    Ok(value)
}

fn read_dir_into(
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

fn python_files(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
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
fn find_entry(files: &BTreeMap<String, Vec<u8>>) -> Result<String, BundleError> {
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

fn safe_stem(stem: &str) -> String {
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

/// A notebook's code cells, in order, as one script. IPython-only lines
/// (`%magic`, `!shell`, `x = !cmd`, `obj?`) become `pass` at their indent
/// so blocks stay well formed; cells run by a `%%` cell magic are dropped
/// unless the magic only times or captures Python.
pub fn notebook_script(text: &str, notes: &mut Vec<String>) -> Result<String, BundleError> {
    let notebook: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| BundleError::BadNotebook(format!("not JSON: {e}")))?;
    let cells = notebook["cells"]
        .as_array()
        .ok_or_else(|| BundleError::BadNotebook("no `cells` list".into()))?;
    let mut script = String::new();
    let mut dropped = 0usize;
    let mut code_cells = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        if cell["cell_type"].as_str() != Some("code") {
            continue;
        }
        // nbformat 4 stores a cell's source as a string or a list of lines.
        let source = match &cell["source"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(lines) => {
                lines.iter().filter_map(|l| l.as_str()).collect::<String>()
            }
            _ => continue,
        };
        code_cells += 1;
        let mut lines = source.lines();
        let first = source.trim_start();
        if let Some(magic) = first.strip_prefix("%%") {
            let name = magic.split_whitespace().next().unwrap_or("");
            if !matches!(name, "time" | "timeit" | "capture") {
                notes.push(format!("notebook cell {}: `%%{name}` cell dropped", i + 1));
                continue;
            }
            lines.next();
        }
        script.push_str(&format!("# --- cell {} ---\n", i + 1));
        for line in lines {
            if ipython_only(line) {
                let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                script.push_str(&format!("{indent}pass  # qtjudge: IPython line dropped\n"));
                dropped += 1;
            } else {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    if code_cells == 0 {
        return Err(BundleError::BadNotebook("it has no code cell".into()));
    }
    if dropped > 0 {
        notes.push(format!(
            "notebook: {dropped} IPython magic or shell line(s) dropped"
        ));
    }
    Ok(script)
}

fn ipython_only(line: &str) -> bool {
    static ASSIGNED: OnceLock<Regex> = OnceLock::new();
    let assigned = ASSIGNED.get_or_init(|| {
        Regex::new(r"^[A-Za-z_][A-Za-z0-9_, ]*=\s*[!%]").expect("the pattern is valid")
    });
    let t = line.trim();
    t.starts_with('%')
        || t.starts_with('!')
        || assigned.is_match(t)
        || (t.ends_with('?') && !t.starts_with('#') && !t.contains(['"', '\'', '(']))
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap();
        out.into_inner()
    }

    fn upload(kind: InputKind, bytes: Vec<u8>, entry: Option<&str>) -> Upload {
        Upload {
            kind,
            name: "app".into(),
            entry: entry.map(String::from),
            bytes,
        }
    }

    #[test]
    fn an_upload_is_checked_from_its_directory_and_trailer_without_unpacking() {
        let app: &[u8] = b"if __name__ == \"__main__\":\n    print(1)\n";
        let zip = zip_of(&[("myapp/main.py", app), ("myapp/README", &[b'x'; 1000])]);
        assert_eq!(
            upload(InputKind::Zip, zip.clone(), None).check().unwrap(),
            app.len() as u64 + 1000
        );
        // The entry, with or without the folder wrapping every file.
        for entry in ["main.py", "myapp/main.py"] {
            assert!(
                upload(InputKind::Zip, zip.clone(), Some(entry))
                    .check()
                    .is_ok(),
                "{entry}"
            );
        }
        assert_eq!(
            upload(InputKind::Zip, zip, Some("other.py"))
                .check()
                .unwrap_err()
                .code()
                .as_str(),
            "entry_not_found"
        );
        assert_eq!(
            upload(InputKind::Zip, zip_of(&[("notes.txt", b"x")]), None)
                .check()
                .unwrap_err()
                .code()
                .as_str(),
            "no_python_file"
        );
        assert_eq!(
            upload(InputKind::Zip, zip_of(&[("../main.py", app)]), None)
                .check()
                .unwrap_err()
                .code()
                .as_str(),
            "unsafe_archive_path"
        );
        // A zip declaring more than an app may unpack to.
        let big = vec![0u8; MAX_BYTES as usize + 1];
        assert_eq!(
            upload(
                InputKind::Zip,
                zip_of(&[("main.py", app), ("data.bin", &big)]),
                None
            )
            .check()
            .unwrap_err()
            .code()
            .as_str(),
            "archive_too_large"
        );
        let tar_gz = tar_gz_of(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(app.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            b.append_data(&mut header, "main.py", app).unwrap();
        });
        let declared = upload(InputKind::TarGz, tar_gz.clone(), None)
            .check()
            .unwrap();
        assert!(
            declared >= 1024 && declared.is_multiple_of(512),
            "the tar stream's size: {declared}"
        );
        assert_eq!(
            upload(InputKind::TarGz, b"\x1f\x8bnot gzip at all".to_vec(), None)
                .check()
                .unwrap_err()
                .code()
                .as_str(),
            "bad_archive"
        );
        assert!(upload(InputKind::TarGz, tar_gz, None).unpack().is_ok());
    }

    #[test]
    fn a_gzip_trailer_that_lies_is_caught_by_the_limits_when_unpacked() {
        let big = vec![b'#'; MAX_BYTES as usize + 1];
        let mut tar_gz = tar_gz_of(|b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(big.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            b.append_data(&mut header, "main.py", big.as_slice())
                .unwrap();
        });
        let at = tar_gz.len() - 4;
        tar_gz[at..].copy_from_slice(&1u32.to_le_bytes());
        let lying = upload(InputKind::TarGz, tar_gz, None);
        assert_eq!(
            lying.check().unwrap(),
            1,
            "the check reads only the trailer"
        );
        assert_eq!(
            lying.unpack().unwrap_err().code().as_str(),
            "archive_too_large"
        );
    }

    fn tar_gz_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    const MAIN: &[u8] = b"from ui.window import W\nif __name__ == \"__main__\":\n    W()\n";

    #[test]
    fn an_app_packed_as_tar_gz_reads_back_as_the_same_files_and_entry() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/apps/package_settings");
        let app = Bundle::from_dir(&dir, None).unwrap();
        let bytes = app.to_tar_gz().unwrap();
        assert_eq!(bytes, app.to_tar_gz().unwrap(), "packing is deterministic");
        let back =
            Bundle::from_bytes(InputKind::TarGz, "x.tar.gz", &bytes, Some(&app.entry)).unwrap();
        assert_eq!((back.entry, back.files), (app.entry, app.files));
    }

    #[test]
    fn a_zipped_folder_is_read_in_memory_with_its_top_folder_stripped() {
        let bytes = zip_of(&[
            ("app/main.py", MAIN),
            ("app/ui/window.py", b"class W: pass\n"),
            ("app/ui/__pycache__/window.cpython-311.pyc", b"\0\0"),
            ("app/settings.json", b"{}"),
        ]);
        let b = Bundle::from_bytes(InputKind::Zip, "app.zip", &bytes, None).unwrap();
        assert_eq!(b.entry, "main.py");
        let paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["main.py", "settings.json", "ui/window.py"]);
        assert_eq!(b.compared_file("W"), "ui/window.py");
        assert_eq!(b.compared_file("Other"), "main.py");
    }

    #[test]
    fn hostile_zips_are_refused_with_what_is_wrong() {
        for (name, why) in [
            ("../evil.py", "`..`"),
            ("/etc/evil.py", "absolute"),
            ("a/../../evil.py", "`..`"),
            ("C:\\evil.py", "backslash"),
        ] {
            let bytes = zip_of(&[("main.py", MAIN), (name, b"x")]);
            let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &bytes, None).unwrap_err();
            assert_eq!(e.code().as_str(), "unsafe_archive_path", "{name}");
            assert!(e.to_string().contains(why), "{name}: {e}");
        }
        let many: Vec<(String, Vec<u8>)> = (0..MAX_FILES + 1)
            .map(|i| (format!("f{i}.txt"), vec![b'x']))
            .collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &zip_of(&refs), None).unwrap_err();
        assert_eq!(e, BundleError::TooManyFiles);
        // A zip bomb: 64 MiB of zeros deflate to a few tens of KiB.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = zip_of(&[("main.py", MAIN), ("zeros.bin", &zeros)]);
        assert!(bomb.len() < 1024 * 1024);
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &bomb, None).unwrap_err();
        assert_eq!(e, BundleError::TooLarge);
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", b"PK not really", None).unwrap_err();
        assert_eq!(e.code().as_str(), "bad_archive");
    }

    #[test]
    fn tar_links_devices_and_escapes_are_refused() {
        let with = |kind: tar::EntryType, link: Option<&str>| {
            tar_gz_of(|t| {
                let mut h = header(tar::EntryType::Regular, MAIN.len() as u64);
                t.append_data(&mut h, "main.py", MAIN).unwrap();
                let mut h = header(kind, 0);
                if let Some(target) = link {
                    h.set_link_name(target).unwrap();
                }
                t.append_data(&mut h, "other", &b""[..]).unwrap();
            })
        };
        for (kind, link, word) in [
            (
                tar::EntryType::Symlink,
                Some("/etc/passwd"),
                "symbolic link",
            ),
            (tar::EntryType::Link, Some("main.py"), "hard link"),
            (tar::EntryType::Char, None, "device"),
            (tar::EntryType::Block, None, "device"),
            (tar::EntryType::Fifo, None, "fifo"),
        ] {
            let e = Bundle::from_bytes(InputKind::TarGz, "a.tar.gz", &with(kind, link), None)
                .unwrap_err();
            assert_eq!(e.code().as_str(), "archive_special_file", "{kind:?}");
            assert!(e.to_string().contains(word), "{kind:?}: {e}");
        }
        // `tar::Builder` refuses to write `..`, so the name goes in raw.
        let escape = tar_gz_of(|t| {
            let mut h = header(tar::EntryType::Regular, 1);
            h.as_old_mut().name[..12].copy_from_slice(b"../../evil.p");
            h.set_cksum();
            t.append(&h, &b"x"[..]).unwrap();
        });
        let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &escape, None).unwrap_err();
        assert_eq!(e.code().as_str(), "unsafe_archive_path");
        let bomb = tar_gz_of(|t| {
            let zeros = vec![0u8; (MAX_BYTES + 1) as usize];
            let mut h = header(tar::EntryType::Regular, zeros.len() as u64);
            t.append_data(&mut h, "zeros.bin", zeros.as_slice())
                .unwrap();
        });
        let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &bomb, None).unwrap_err();
        assert_eq!(e, BundleError::TooLarge);
    }

    /// A raw tar header block: `size` is declared, never backed by data,
    /// so a refusal shows the record was judged before it was read.
    fn raw_header(name: &str, kind: u8, size: u64) -> [u8; 512] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_mode(0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        *h.as_bytes()
    }

    fn gz(tar: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        gz.finish().unwrap()
    }

    fn read_tar(tar: &[u8]) -> Result<Bundle, BundleError> {
        Bundle::from_bytes(InputKind::TarGz, "a.tar.gz", &gz(tar), None)
    }

    #[test]
    fn tar_header_extensions_over_the_limit_are_refused_unread_naming_it() {
        for (kind, words) in [
            (
                b'L',
                ["a tar long-name record is 1 GiB", "64 KiB limit for names"],
            ),
            (
                b'K',
                [
                    "a tar long-link-name record is 1 GiB",
                    "64 KiB limit for names",
                ],
            ),
            (
                b'x',
                [
                    "a tar PAX header is 1 GiB",
                    "64 KiB limit for header extensions",
                ],
            ),
            (
                b'g',
                [
                    "a tar global PAX header is 1 GiB",
                    "64 KiB limit for header extensions",
                ],
            ),
        ] {
            let e = read_tar(&raw_header("././@LongLink", kind, 1 << 30)).unwrap_err();
            assert_eq!(e.code().as_str(), "archive_too_large", "{}", kind as char);
            for word in words {
                assert!(e.to_string().contains(word), "{}: {e}", kind as char);
            }
        }
        // 8 GiB, the most an octal size field holds, and beyond it in base-256.
        let e = read_tar(&raw_header("x", b'L', (8 << 30) - 1)).unwrap_err();
        assert!(e.to_string().contains("is 8.0 GiB, over the 64 KiB"), "{e}");
        let e = read_tar(&raw_header("x", b'x', 1 << 40)).unwrap_err();
        assert!(e.to_string().contains("is 1024 GiB"), "{e}");
    }

    #[test]
    fn an_unpacked_tar_over_its_limit_is_refused_before_it_is_inflated() {
        // A folder declaring the largest size there is: its padding does not wrap.
        let e = read_tar(&raw_header("app/", b'5', u64::MAX)).unwrap_err();
        assert_eq!(e.code().as_str(), "archive_too_large", "{e}");
        // A folder declaring 1 GiB of content: skipped, but never inflated.
        let e = read_tar(&raw_header("app/", b'5', 1 << 30)).unwrap_err();
        assert_eq!(e.code().as_str(), "archive_too_large");
        assert!(
            e.to_string()
                .contains("the unpacked tar (headers and skipped files included) is 1.0 GiB, over the 32 MiB limit"),
            "{e}"
        );
        // Caches are skipped, not kept, yet still inflated: they count.
        let pyc = vec![0u8; 7 << 20];
        let caches = tar_gz_of(|t| {
            for i in 0..5 {
                let mut h = header(tar::EntryType::Regular, pyc.len() as u64);
                t.append_data(&mut h, format!("__pycache__/m{i}.pyc"), pyc.as_slice())
                    .unwrap();
            }
        });
        let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &caches, None).unwrap_err();
        assert!(e.to_string().contains("over the 32 MiB limit"), "{e}");
    }

    #[test]
    fn long_names_in_gnu_ustar_and_pax_form_read_back() {
        let long = format!("app/{}/main.py", "deep".repeat(30));
        let pax_name = format!("app/{}/pax.py", "p".repeat(150));
        let bytes = tar_gz_of(|t| {
            // The GNU header takes the name as a `L` record.
            let mut h = header(tar::EntryType::Regular, MAIN.len() as u64);
            t.append_data(&mut h, &long, MAIN).unwrap();
            // A ustar header splits it into prefix and name.
            let mut h = tar::Header::new_ustar();
            h.set_path(format!("app/{}/ustar.py", "u".repeat(100)))
                .unwrap();
            h.set_size(1);
            h.set_cksum();
            t.append(&h, &b"u"[..]).unwrap();
            t.append_pax_extensions([("path", pax_name.as_bytes())])
                .unwrap();
            let mut h = header(tar::EntryType::Regular, 1);
            h.as_old_mut().name[..5].copy_from_slice(b"short");
            h.set_cksum();
            t.append(&h, &b"p"[..]).unwrap();
        });
        let b = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &bytes, None).unwrap();
        let paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
        let short = |p: &str| p["app/".len()..].to_string();
        let mut expected = [
            short(&long),
            short(&pax_name),
            format!("{}/ustar.py", "u".repeat(100)),
        ];
        expected.sort();
        assert_eq!(paths, expected);
        assert_eq!(b.entry, short(&long));
    }

    #[test]
    fn a_pax_size_is_the_members_size_and_bad_headers_are_refused() {
        let with_pax = |records: &[u8], data: &[u8]| {
            let mut tar = Vec::new();
            tar.extend_from_slice(&raw_header("pax", b'x', records.len() as u64));
            tar.extend_from_slice(records);
            tar.resize(tar.len().next_multiple_of(512), 0);
            tar.extend_from_slice(&raw_header("main.py", b'0', 1));
            tar.extend_from_slice(data);
            tar.resize(tar.len().next_multiple_of(512) + 1024, 0);
            tar
        };
        let b = read_tar(&with_pax(b"10 size=4\n", b"x=1\n")).unwrap();
        assert_eq!(b.files[0].data, b"x=1\n");
        let e = read_tar(&with_pax(b"18 size=999999999\n", b"")).unwrap_err();
        assert_eq!(e, BundleError::TooLarge);
        for malformed in [
            &b"99 path=x\n"[..],
            b"8 path=x",
            b"x path=y\n",
            b"9 size=-\n",
        ] {
            let e = read_tar(&with_pax(malformed, b"x")).unwrap_err();
            assert_eq!(e.code().as_str(), "bad_archive", "{malformed:?}: {e}");
            assert!(e.to_string().contains("PAX"), "{e}");
        }
        let mut damaged = raw_header("main.py", b'0', 0);
        damaged[0] = b'n';
        let e = read_tar(&damaged).unwrap_err();
        assert!(e.to_string().contains("checksum does not match"), "{e}");
        let truncated = raw_header("main.py", b'0', 100);
        let e = read_tar(&truncated).unwrap_err();
        assert!(e.to_string().contains("ends inside a member"), "{e}");
        let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", b"not gzip", None).unwrap_err();
        assert_eq!(e.code().as_str(), "bad_archive");
        let e = read_tar(&raw_header("disk.img", b'S', 0)).unwrap_err();
        assert!(e.to_string().contains("is a GNU sparse file"), "{e}");
    }

    #[test]
    fn a_zip_directory_too_big_to_parse_is_refused_before_the_zip_reader_sees_it() {
        // Signatures alone: refused as too many before any of it is parsed.
        let spam = b"PK\x01\x02".repeat(MAX_ZIP_RECORDS + 1);
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &spam, None).unwrap_err();
        assert_eq!(e, BundleError::TooManyFiles);
        // Central headers whose comments declare 64 KiB each.
        let mut headers = Vec::new();
        for _ in 0..40 {
            let mut fixed = [0u8; 46];
            fixed[..4].copy_from_slice(b"PK\x01\x02");
            fixed[32..34].copy_from_slice(&u16::MAX.to_le_bytes());
            headers.extend_from_slice(&fixed);
        }
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &headers, None).unwrap_err();
        assert_eq!(e.code().as_str(), "archive_too_large");
        assert!(
            e.to_string().contains("central directory (names, extra fields and comments) is 2.5 MiB, over the 2 MiB limit"),
            "{e}"
        );
    }

    #[test]
    fn a_zip_declaring_less_than_it_inflates_to_is_never_read_past_the_cap() {
        let zeros = vec![0u8; 64 << 20];
        let mut bomb = zip_of(&[("main.py", MAIN), ("zeros.bin", &zeros)]);
        // Both headers of `zeros.bin` now claim 100 bytes.
        let declared = (zeros.len() as u32).to_le_bytes();
        let mut patched = 0;
        for at in memchr::memmem::find_iter(&bomb.clone(), &declared) {
            bomb[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
            patched += 1;
        }
        assert_eq!(patched, 2);
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &bomb, None).unwrap_err();
        assert!(
            e == BundleError::TooLarge || e.code().as_str() == "bad_archive",
            "{e}"
        );
    }

    #[test]
    fn the_committed_app_archive_reads_as_the_tar_crate_reads_it() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/apps/archived_chat.tar.gz");
        let bytes = std::fs::read(path).unwrap();
        let mut by_crate = BTreeMap::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for member in archive.entries().unwrap() {
            let mut member = member.unwrap();
            if member.header().entry_type().is_file() {
                let path = clean_path(&String::from_utf8_lossy(&member.path_bytes())).unwrap();
                let mut data = Vec::new();
                member.read_to_end(&mut data).unwrap();
                by_crate.insert(path, data);
            }
        }
        assert!(by_crate.len() > 1);
        assert_eq!(read_tar_gz(&bytes).unwrap().files, by_crate);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(100), "100 bytes");
        assert_eq!(human_bytes(64 * 1024), "64 KiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(8 << 30), "8 GiB");
    }

    #[test]
    fn the_entry_is_the_guarded_file_or_named_and_errors_name_the_candidates() {
        let files = |entries: &[(&str, &[u8])]| zip_of(entries);
        let two = files(&[("a.py", MAIN), ("b.py", MAIN), ("core/c.py", b"x = 1\n")]);
        let e = Bundle::from_bytes(InputKind::Zip, "x.zip", &two, None).unwrap_err();
        assert_eq!(e.code().as_str(), "ambiguous_entry_point");
        assert!(
            e.to_string().contains("a.py, b.py") && e.to_string().contains("--entry"),
            "{e}"
        );
        let b = Bundle::from_bytes(InputKind::Zip, "x.zip", &two, Some("b.py")).unwrap();
        assert_eq!(b.entry, "b.py");
        let e = Bundle::from_bytes(InputKind::Zip, "x.zip", &two, Some("nope.py")).unwrap_err();
        assert!(
            e.to_string().contains("nope.py") && e.to_string().contains("core/c.py"),
            "{e}"
        );
        // A guard deeper down does not compete with the top one.
        let nested = files(&[("main.py", MAIN), ("core/client.py", MAIN)]);
        let b = Bundle::from_bytes(InputKind::Zip, "x.zip", &nested, None).unwrap();
        assert_eq!(b.entry, "main.py");
        let none = files(&[("a.py", b"x = 1\n"), ("b.py", b"y = 2\n")]);
        let e = Bundle::from_bytes(InputKind::Zip, "x.zip", &none, None).unwrap_err();
        assert_eq!(e.code().as_str(), "no_entry_point");
        assert!(
            e.to_string().contains("a.py, b.py") && e.to_string().contains("--entry"),
            "{e}"
        );
        let one = files(&[("app.py", b"x = 1\n"), ("notes.txt", b"hi")]);
        assert_eq!(
            Bundle::from_bytes(InputKind::Zip, "x.zip", &one, None)
                .unwrap()
                .entry,
            "app.py"
        );
    }

    #[test]
    fn a_notebook_keeps_code_cells_in_order_without_ipython_lines() {
        let nb = serde_json::json!({
            "nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [
                {"cell_type": "markdown", "source": ["# A chat app"]},
                {"cell_type": "code", "source": ["%gui qt\n", "!pip install requests\n", "import sys\n"]},
                {"cell_type": "code", "source": "%%bash\necho hi\n"},
                {"cell_type": "code", "source": ["if True:\n", "    files = !ls\n", "    x = 1\n", "sys?\n"]},
                {"cell_type": "code", "source": "app.exec_()\n"},
            ]
        });
        let mut notes = Vec::new();
        let script = notebook_script(&nb.to_string(), &mut notes).unwrap();
        assert!(!script.contains("%gui") && !script.contains("pip") && !script.contains("echo"));
        assert!(script.contains("    pass  # qtjudge"), "{script}");
        let import = script.find("import sys").unwrap();
        let exec = script.find("app.exec_()").unwrap();
        assert!(import < exec);
        assert!(notes.iter().any(|n| n.contains("%%bash")), "{notes:?}");
        let b = Bundle::from_bytes(
            InputKind::Notebook,
            "dir/My Chat.ipynb",
            nb.to_string().as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(b.entry, "My_Chat.py");
        assert_eq!(b.origin, Origin::Notebook);
        let e = Bundle::from_bytes(InputKind::Notebook, "x.ipynb", b"{\"cells\": 3}", None)
            .unwrap_err();
        assert_eq!(e.code().as_str(), "bad_notebook");
    }

    #[test]
    fn a_folder_refuses_symlinks_and_skips_caches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ui/__pycache__")).unwrap();
        std::fs::write(dir.path().join("main.py"), MAIN).unwrap();
        std::fs::write(dir.path().join("ui/window.py"), "class W: pass\n").unwrap();
        std::fs::write(dir.path().join("ui/__pycache__/w.pyc"), "x").unwrap();
        let b = Bundle::from_path(dir.path(), None).unwrap().unwrap();
        assert_eq!(b.origin, Origin::Directory);
        assert_eq!(b.files.len(), 2);
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("ui/secret")).unwrap();
        let e = Bundle::from_path(dir.path(), None).unwrap().unwrap_err();
        assert_eq!(e.code().as_str(), "archive_special_file");
        assert!(e.to_string().contains("ui/secret"), "{e}");
    }
}
