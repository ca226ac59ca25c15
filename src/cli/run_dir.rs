//! A grade run's folder: each answer's result (JSON) and screenshots, kept
//! as they come and read back by `report` and `--resume`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::verify::{self, Verification};

/// A model label made safe as a file name.
pub fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "answer".into()
    } else {
        cleaned.chars().take(100).collect()
    }
}

/// The name of an answer's files in the run folder: its model, the task
/// its line named and its sample, made safe (`devstral#2` is
/// `devstral_2`, the name a run before samples gave it).
pub fn stem(model: &str, task: Option<&str>, sample: Option<&str>) -> String {
    let mut key = model.to_string();
    if let Some(task) = task {
        key.push('@');
        key.push_str(task);
    }
    if let Some(sample) = sample {
        key.push('#');
        key.push_str(sample);
    }
    sanitize(&key)
}

/// Keeps one result in the run folder, as `name`: its JSON and its screenshots.
pub(super) fn keep_result(run_dir: &Path, name: &str, v: &mut Verification) {
    if let Err(e) = verify::save_artifacts(v, &run_dir.join(name)) {
        tracing::warn!(error = %e, "could not save screenshots");
    }
    if let Ok(json) = serde_json::to_vec_pretty(&v) {
        let _ = std::fs::write(run_dir.join(format!("{name}.json")), json);
    }
}

/// Reads the results a grade run saved.
pub fn load_run(dir: &Path) -> Result<Vec<Verification>> {
    let mut results = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the run folder {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let bytes = std::fs::read(&path)?;
            let v: Verification = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a qtjudge result", path.display()))?;
            results.push(v);
        }
    }
    split_old_samples(&mut results);
    results.sort_by(Verification::report_order);
    Ok(results)
}

/// A run before samples named a model's answers `devstral`, `devstral#2`,
/// `devstral#3`: read back as the model `devstral`, samples 1, 2 and 3.
fn split_old_samples(results: &mut [Verification]) {
    let mut split = std::collections::HashSet::new();
    for v in results.iter_mut().filter(|v| v.sample.is_none()) {
        if let Some((model, n)) = v.model.rsplit_once('#') {
            if !model.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                v.sample = Some(n.to_string());
                v.model = model.to_string();
                split.insert(v.model.clone());
            }
        }
    }
    for v in results.iter_mut() {
        if v.sample.is_none() && split.contains(&v.model) {
            v.sample = Some("1".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run folder written before samples (`devstral`, `devstral#2`) reads
    /// back as one model's samples 1 and 2; a new one as it was written.
    #[test]
    fn a_run_before_samples_reads_back_as_samples() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, model: &str, sample: Option<&str>| {
            let mut v = Verification::unjudged(model, "reset-conversation", "docker");
            v.sample = sample.map(String::from);
            std::fs::write(dir.path().join(name), serde_json::to_vec(&v).unwrap()).unwrap();
        };
        write("devstral.json", "devstral", None);
        write("devstral_2.json", "devstral#2", None);
        write("devstral_10.json", "devstral#10", None);
        write("gpt.json", "gpt", None);
        write("qwen_3.json", "qwen", Some("3"));
        let keys: Vec<(String, Option<String>)> = load_run(dir.path())
            .unwrap()
            .into_iter()
            .map(|v| (v.model, v.sample))
            .collect();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            keys,
            [
                ("devstral".into(), some("1")),
                ("devstral".into(), some("2")),
                ("devstral".into(), some("10")),
                ("gpt".into(), None),
                ("qwen".into(), some("3")),
            ]
        );
        assert_eq!(stem("devstral", None, Some("2")), "devstral_2");
    }
}
