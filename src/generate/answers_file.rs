//! The JSONL file `generate` writes, the one `grade` reads: append-only,
//! one line an answer written whole and synced before the next, so a run
//! stopped at any point loses at most the answer it was writing; reopened,
//! it tells which (model, task, sample) keys are already answered.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// An answer's key: (model, task, sample).
pub type Key = (String, String, String);

/// The open file, locked against a second writer.
pub struct AnswersFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// What an existing file already holds.
#[derive(Debug, Default)]
pub struct Existing {
    /// Keys with an answer (`output`): not asked again.
    pub answered: HashSet<Key>,
    /// Lines recording a failed answer (`error`, no `output`): asked again.
    pub failed_lines: usize,
    /// Bytes of a last line cut off mid-write, dropped.
    pub torn_bytes: usize,
}

impl AnswersFile {
    /// Opens (or creates) `path` for appending. A last line without its
    /// newline was cut off by a stop mid-write: it is cut away, so the file
    /// stays one JSON object a line. Any other line that is not JSON is an
    /// error: the file is not one `generate` wrote.
    pub fn open(path: &Path) -> Result<(AnswersFile, Existing)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        lock(&file, path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let whole = match memchr::memrchr(b'\n', &bytes) {
            Some(at) => at + 1,
            None => 0,
        };
        let mut existing = Existing {
            torn_bytes: bytes.len() - whole,
            ..Existing::default()
        };
        if existing.torn_bytes > 0 {
            tracing::warn!(
                file = %path.display(),
                bytes = existing.torn_bytes,
                "the last line was cut off mid-write (a run stopped); dropping it, its answer is asked again"
            );
            file.set_len(whole as u64)
                .with_context(|| format!("cannot cut the torn last line of {}", path.display()))?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        for (i, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_slice(line).with_context(|| {
                format!(
                    "{} line {} is not JSON: not a file `qtjudge generate` wrote (give another --out)",
                    path.display(),
                    i + 1
                )
            })?;
            match (key_of(&value), value["output"].is_string()) {
                (Some(key), true) => {
                    existing.answered.insert(key);
                }
                (Some(_), false) if value["error"].is_string() => existing.failed_lines += 1,
                // Another tool's line (no sample, no task): kept, not ours.
                _ => {}
            }
        }
        let answers = AnswersFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        };
        Ok((answers, existing))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and syncs it to disk before returning: the line
    /// is in the file whatever happens next. Blocking: call it off the
    /// async threads.
    pub fn append(&self, line: &impl serde::Serialize) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// A line's (model, task, sample), the sample a string or a number.
pub fn key_of(value: &Value) -> Option<Key> {
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Some((
        text(&value["model"])?,
        text(&value["task"])?,
        text(&value["sample"])?,
    ))
}

/// One writer at a time: two runs appending the same answers would ask
/// for every answer twice and write duplicate keys, which `grade` refuses.
fn lock(file: &File, path: &Path) -> Result<()> {
    // SAFETY: flock on a descriptor this function's caller owns; the lock
    // is released when the file is closed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        bail!(
            "{} is being written by another `qtjudge generate` (or `showdown`); wait for it or give another --out",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_reopened_file_knows_its_answers_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/answers.jsonl");
        {
            let (file, existing) = AnswersFile::open(&path).unwrap();
            assert!(existing.answered.is_empty());
            file.append(&json!({"model": "a", "task": "t", "sample": 1, "output": "x\ny"}))
                .unwrap();
            file.append(
                &json!({"model": "a", "task": "t", "sample": 2, "error": "429 five times"}),
            )
            .unwrap();
            file.append(&json!({"model": "b", "task": "t", "sample": "s-1", "output": ""}))
                .unwrap();
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "one line an answer: {text}");
        let torn = r#"{"model": "b", "task": "t", "sample": 2, "outp"#;
        text.push_str(torn);
        std::fs::write(&path, &text).unwrap();

        let (file, existing) = AnswersFile::open(&path).unwrap();
        let key = |m: &str, s: &str| (m.to_string(), "t".to_string(), s.to_string());
        assert_eq!(
            existing.answered,
            HashSet::from([key("a", "1"), key("b", "s-1")])
        );
        assert_eq!(
            (existing.failed_lines, existing.torn_bytes),
            (1, torn.len())
        );
        file.append(&json!({"model": "b", "task": "t", "sample": 2, "output": "z"}))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["output"], "z");
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()));

        // A second writer is refused while the first holds the file.
        let err = AnswersFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("another `qtjudge generate`"), "{err}");
        drop(file);

        std::fs::write(&path, "not json\n{}\n").unwrap();
        let err = format!("{:#}", AnswersFile::open(&path).err().unwrap());
        assert!(err.contains("line 1 is not JSON"), "{err}");
    }
}
