//! Answers read from disk: `verify`'s one input, and every answer `grade`
//! finds in its files, folders and JSONL files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bundle::Bundle;
use crate::verify;

/// An input read from disk: a raw answer to extract, or an app.
pub enum Loaded {
    Answer(String),
    App(Bundle),
}

impl Loaded {
    /// What verification takes.
    pub fn input(&self) -> verify::Input<'_> {
        match self {
            Loaded::Answer(text) => verify::Input::Answer(text),
            Loaded::App(bundle) => verify::Input::Bundle(bundle),
        }
    }

    /// The code to compare with the tasks' originals (an app's Python
    /// files, the entry first).
    pub fn code(&self) -> String {
        match self {
            Loaded::Answer(text) => text.clone(),
            Loaded::App(bundle) => bundle.python_sources().join("\n"),
        }
    }
}

/// Reads `path` as `verify` takes it: a folder, an archive or a notebook
/// becomes an app (its entry from `entry` or its `__main__` guard);
/// anything else is an answer to extract.
pub fn load_input(path: &Path, entry: Option<&str>) -> Result<Loaded> {
    match Bundle::from_path(path, entry) {
        Some(bundle) => Ok(Loaded::App(bundle.with_context(|| {
            format!("cannot use {} as an app", path.display())
        })?)),
        None if entry.is_some() => bail!(
            "--entry applies to an app given as a folder, a .zip/.tar.gz or a .ipynb; {} is one script",
            path.display()
        ),
        None => Ok(Loaded::Answer(read_answer(path)?)),
    }
}

/// Reads an answer as text; invalid UTF-8 is replaced, not refused.
pub(super) fn read_answer(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the answer {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) fn model_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `app.tar.gz` is the model `app`, like `app.zip`.
    let stem = name
        .strip_suffix(".tar.gz")
        .map(String::from)
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if stem.is_empty() {
        "answer".into()
    } else {
        stem
    }
}

/// One answer to grade.
#[derive(Debug, Clone)]
pub struct Answer {
    pub model: String,
    pub output: String,
    /// An app of several files (or a notebook); `output` is then empty.
    pub bundle: Option<Bundle>,
}

const ANSWER_EXTENSIONS: [&str; 4] = ["md", "py", "txt", "markdown"];

/// Collects answers from files, folders and JSONL files.
pub fn collect_answers(paths: &[PathBuf]) -> Result<Vec<Answer>> {
    let mut answers = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    // A subfolder is an app of its own (hidden ones are not).
                    let hidden = p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                    (p.is_dir() && !hidden)
                        || (p.is_file()
                            && (is_app_file(p)
                                || p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                                    ANSWER_EXTENSIONS.contains(&e) || e == "jsonl"
                                })))
                })
                .collect();
            files.sort();
            for file in files {
                answers.extend(answers_of_file(&file)?);
            }
        } else if path.is_file() {
            answers.extend(answers_of_file(path)?);
        } else {
            bail!("no such answer file or folder: {}", path.display());
        }
    }
    let mut seen = std::collections::HashMap::new();
    for answer in &mut answers {
        let n = seen.entry(answer.model.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            answer.model = format!("{}#{}", answer.model, n);
        }
    }
    Ok(answers)
}

/// A `.zip`, `.tar.gz` or `.ipynb`: an app, not an answer to extract.
fn is_app_file(path: &Path) -> bool {
    crate::bundle::InputKind::of_name(&path.to_string_lossy()) != crate::bundle::InputKind::Answer
}

fn answers_of_file(path: &Path) -> Result<Vec<Answer>> {
    if path.is_dir() || is_app_file(path) {
        let Loaded::App(bundle) = load_input(path, None)? else {
            bail!("{} is not an app", path.display());
        };
        return Ok(vec![Answer {
            model: model_name(path),
            output: String::new(),
            bundle: Some(bundle),
        }]);
    }
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut answers = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
            let output = value["output"].as_str().with_context(|| {
                format!("{} line {}: no \"output\" string", path.display(), i + 1)
            })?;
            let model = value["model"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("line-{}", i + 1));
            answers.push(Answer {
                model,
                output: output.to_string(),
                bundle: None,
            });
        }
        return Ok(answers);
    }
    Ok(vec![Answer {
        model: model_name(path),
        output: read_answer(path)?,
        bundle: None,
    }])
}
