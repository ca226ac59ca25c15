//! Samples: which of a model's answers to a task each one is. Answers that
//! came without a sample are numbered in the order given, so that every
//! answer of a run or a batch has its own key (model, task, sample); a key
//! given twice is refused. Shared by `qtjudge grade` and the batch route.

use std::collections::{HashMap, HashSet};

/// An answer's key as submitted: model, the task it names (none: chosen
/// later, the same for all of a model's unnamed answers) and its sample.
pub type Key<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// Each answer's sample: its own, else when its model has more than one
/// answer to the task, its place among them (1, 2, …, skipping numbers
/// given explicitly). A model's only answer keeps none, as before samples.
/// Errs naming the model when two answers share a key.
pub fn number(keys: &[Key<'_>]) -> Result<Vec<Option<String>>, String> {
    let mut unnamed: HashMap<(&str, Option<&str>), Vec<usize>> = HashMap::new();
    let mut taken: HashMap<(&str, Option<&str>), HashSet<String>> = HashMap::new();
    let mut samples: Vec<Option<String>> = Vec::with_capacity(keys.len());
    for (i, &(model, task, sample)) in keys.iter().enumerate() {
        samples.push(sample.map(String::from));
        match sample {
            None => unnamed.entry((model, task)).or_default().push(i),
            Some(sample) => {
                if !taken
                    .entry((model, task))
                    .or_default()
                    .insert(sample.to_string())
                {
                    let task = task.map(|t| format!(" on task {t:?}")).unwrap_or_default();
                    return Err(format!(
                        "model {model:?}{task} has two answers named sample {sample:?}: give each answer its own `sample` (or none, to number them in order)"
                    ));
                }
            }
        }
    }
    for (group, indices) in unnamed {
        if indices.len() < 2 && !taken.contains_key(&group) {
            continue;
        }
        let used = taken.entry(group).or_default();
        let mut n = 0u64;
        for i in indices {
            n += 1;
            while used.contains(&n.to_string()) {
                n += 1;
            }
            used.insert(n.to_string());
            samples[i] = Some(n.to_string());
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_models_answers_are_numbered_in_order_and_a_lone_one_is_not() {
        let keys = [
            ("devstral", None, None),
            ("gpt-oss", None, None),
            ("devstral", None, None),
            ("devstral", None, None),
        ];
        assert_eq!(
            number(&keys).unwrap(),
            [some("1"), None, some("2"), some("3")]
        );
    }

    #[test]
    fn given_samples_are_kept_and_skipped_and_tasks_number_apart() {
        let keys = [
            ("m", None, Some("2")),
            ("m", None, None),
            ("m", None, None),
            ("m", Some("other"), None),
            ("m", Some("other"), None),
            ("n", None, Some("x7")),
        ];
        assert_eq!(
            number(&keys).unwrap(),
            [
                some("2"),
                some("1"),
                some("3"),
                some("1"),
                some("2"),
                some("x7")
            ]
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_naming_it() {
        let err = number(&[("m", Some("t"), Some("1")), ("m", Some("t"), Some("1"))]).unwrap_err();
        assert!(
            err.contains("\"m\" on task \"t\"") && err.contains("\"1\""),
            "{err}"
        );
        // The same sample of two tasks is two keys.
        assert!(number(&[("m", Some("a"), Some("1")), ("m", Some("b"), Some("1"))]).is_ok());
    }
}
