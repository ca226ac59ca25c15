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
//! Only [`Bundle::from_path`] does IO (with `folder`); everything else is pure.
//!
//! A file a concern: this one is the bundle and the inputs it is made
//! from; `error` why one could not be made; `limits` the unpacked files
//! under the app's limits and its paths checked; `zip_archive` and
//! `tar_gz` the archives, `folder` a folder on the host, `notebook` a
//! notebook's code cells; `entry` the file run as `__main__`; `upload` an
//! app kept compressed until a worker runs it.

mod entry;
mod error;
mod folder;
mod limits;
mod notebook;
mod tar_gz;
mod upload;
mod zip_archive;

use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use entry::{find_entry, python_files, safe_stem};
use folder::read_dir_into;
use limits::Unpacked;
use tar_gz::read_tar_gz;
use zip_archive::read_zip;

pub use error::BundleError;
pub use notebook::notebook_script;
pub use upload::Upload;

/// Most files one app may carry.
pub const MAX_FILES: usize = 256;

/// Most bytes one app may carry once unpacked (the job travels as base64 in
/// one stdin line the supervisor caps at 16 MiB; the sandbox's `/tmp` is 64 MiB).
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Longest path inside an app, and deepest folder nesting.
const MAX_PATH_LEN: usize = 240;

const MAX_DEPTH: usize = 12;

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

// Last: the tidy test reads a file's product code up to its first test module.
#[cfg(test)]
mod tests;
