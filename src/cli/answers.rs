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

/// One answer to grade, keyed by (model, task, sample).
#[derive(Debug, Clone)]
pub struct Answer {
    pub model: String,
    /// The task its JSONL line names (it wins over `--task`); none: the
    /// one given with `--task`, else chosen by resemblance.
    pub task: Option<String>,
    /// Which of the model's answers to the task this is: the line's
    /// `sample` (or `id`), else its place among the model's answers when
    /// there are several.
    pub sample: Option<String>,
    /// The line's free `metadata` object, carried to every output.
    pub metadata: Option<serde_json::Value>,
    pub output: String,
    /// An app of several files (or a notebook); `output` is then empty.
    pub bundle: Option<Bundle>,
}

impl Answer {
    /// A raw answer of `model`, with no task, sample or metadata.
    pub fn text(model: &str, output: String) -> Answer {
        Answer {
            model: model.to_string(),
            task: None,
            sample: None,
            metadata: None,
            output,
            bundle: None,
        }
    }

    /// Its files' name in the run folder, from what is known before it is
    /// judged (so `--resume` finds them).
    pub fn stem(&self) -> String {
        super::run_dir::stem(&self.model, self.task.as_deref(), self.sample.as_deref())
    }
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
    number_samples(&mut answers)?;
    Ok(answers)
}

/// Numbers the samples of a model's answers to a task that came without
/// one (`grading::samples`); a key given twice is refused.
fn number_samples(answers: &mut [Answer]) -> Result<()> {
    let keys: Vec<_> = answers
        .iter()
        .map(|a| (a.model.as_str(), a.task.as_deref(), a.sample.as_deref()))
        .collect();
    let samples = crate::grading::samples::number(&keys).map_err(anyhow::Error::msg)?;
    for (answer, sample) in answers.iter_mut().zip(samples) {
        answer.sample = sample;
    }
    Ok(())
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
            bundle: Some(bundle),
            ..Answer::text(&model_name(path), String::new())
        }]);
    }
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut answers = Vec::new();
        let mut not_generated = 0;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
            // `generate` records an answer it could not get (`error`, no
            // `output`): nothing of the model's to judge.
            if value["output"].is_null() && value["error"].is_string() {
                not_generated += 1;
                continue;
            }
            answers.push(
                answer_of_line(&value, format!("line-{}", i + 1))
                    .with_context(|| format!("{} line {}", path.display(), i + 1))?,
            );
        }
        if not_generated > 0 {
            tracing::warn!(
                file = %path.display(),
                lines = not_generated,
                "left out: lines recording an answer that could not be generated (`error`, no `output`); rerun `qtjudge generate` with this --out to ask for them again"
            );
        }
        return Ok(answers);
    }
    Ok(vec![Answer::text(&model_name(path), read_answer(path)?)])
}

/// One JSONL line: `output` and the optional `model`, `task`, `sample`
/// (or `id`) and `metadata`; a line without `model` is named `unnamed`.
fn answer_of_line(value: &serde_json::Value, unnamed: String) -> Result<Answer> {
    let text = |key: &str| -> Result<Option<String>> {
        match &value[key] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
            serde_json::Value::String(s) => Ok(Some(s.clone())),
            // A sample numbered by its generator (`"sample": 3`).
            serde_json::Value::Number(n) if key != "task" => Ok(Some(n.to_string())),
            other => bail!("`{key}` must be a string, not {other}"),
        }
    };
    let output = value["output"]
        .as_str()
        .context("no \"output\" string (the model's raw answer)")?
        .to_string();
    let metadata = match &value["metadata"] {
        serde_json::Value::Null => None,
        m @ serde_json::Value::Object(_) => Some(m.clone()),
        other => bail!("`metadata` must be a JSON object, not {other}"),
    };
    let sample = match text("sample")? {
        Some(sample) => Some(sample),
        None => text("id")?,
    };
    Ok(Answer {
        model: text("model")?.unwrap_or(unnamed),
        task: text("task")?,
        sample,
        metadata,
        output,
        bundle: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSONL lines name their model, task, sample (or `id`) and metadata;
    /// a model's answers without a sample are numbered, an old line (model
    /// and output only) still reads.
    #[test]
    fn jsonl_lines_carry_their_keys_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        std::fs::write(
            &path,
            [
                r#"{"model": "a", "output": "x"}"#,
                r#"{"model": "a", "output": "y", "metadata": {"temperature": 0.7}}"#,
                r#"{"model": "b", "task": "generic-reset", "sample": 3, "output": "z"}"#,
                r#"{"model": "b", "task": "generic-reset", "id": "s-9", "output": "w"}"#,
                r#"{"output": "v"}"#,
                r#"{"model": "c", "task": "generic-reset", "sample": 1, "error": "gave up after 5 attempts"}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let answers = collect_answers(std::slice::from_ref(&path)).unwrap();
        let keys: Vec<_> = answers
            .iter()
            .map(|a| (a.model.as_str(), a.task.as_deref(), a.sample.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("a", None, Some("1")),
                ("a", None, Some("2")),
                ("b", Some("generic-reset"), Some("3")),
                ("b", Some("generic-reset"), Some("s-9")),
                ("line-5", None, None),
            ]
        );
        assert_eq!(
            answers[1].metadata,
            Some(serde_json::json!({"temperature": 0.7}))
        );
        assert_eq!(answers[2].stem(), "b_generic-reset_3");

        std::fs::write(&path, r#"{"model": "a", "output": "x", "metadata": [1]}"#).unwrap();
        let err = format!(
            "{:#}",
            collect_answers(std::slice::from_ref(&path)).unwrap_err()
        );
        assert!(
            err.contains("line 1") && err.contains("`metadata` must be a JSON object"),
            "{err}"
        );
        std::fs::write(
            &path,
            "{\"model\": \"a\", \"sample\": 1, \"output\": \"x\"}\n{\"model\": \"a\", \"id\": \"1\", \"output\": \"y\"}\n",
        )
        .unwrap();
        let err = format!("{:#}", collect_answers(&[path]).unwrap_err());
        assert!(err.contains("two answers named sample \"1\""), "{err}");
    }
}
