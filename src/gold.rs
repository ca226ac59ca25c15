//! A task's gold validation (issue 21), as a benchmark checks its gold
//! patches: what the unchanged original, each reference solution and each
//! fixture answer must get (read from the task folder), and the runs of
//! each summarised into matches, flakes and runs not judged. The runs
//! themselves are `qtjudge task check`'s (`cli::task_check`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::grading::failure::FailureCode;
use crate::grading::verdict::Label;
use crate::task::Task;
use crate::verify::Verification;

/// Where a task's references live when its `[gold]` table does not say.
pub const DEFAULT_REFERENCES: &str = "reference";

/// Files of a references folder taken as answers (as `grade` takes them).
const REFERENCE_EXTENSIONS: [&str; 3] = ["py", "md", "txt"];

/// Errors reading a task's gold.
#[derive(Debug, thiserror::Error)]
pub enum GoldError {
    #[error("task `{task}` has no original script, so nothing to validate (only a task folder with an original has gold)")]
    NoOriginal { task: String },
    #[error("{path} has no [gold] table with `original_failure`: add the failure code the unchanged original gets (run `qtjudge verify` on it to see it), e.g. `[gold]\\noriginal_failure = \"no_reset_control\"`")]
    NoGold { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("task `{task}` ships no reference solution: put at least one correct full script (.py, .md or .txt) in {dir}")]
    NoReference { task: String, dir: PathBuf },
}

/// A verdict an item must get: a tier, and for tier 3 its failure code
/// (the JSON contract's string; empty for tiers 1 and 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Verdict {
    pub tier: u8,
    #[serde(default)]
    pub failure: String,
}

impl Verdict {
    pub fn flawless() -> Verdict {
        Verdict {
            tier: 1,
            failure: String::new(),
        }
    }

    /// Checks a verdict as written in a task's files: tier 1 to 3, a
    /// known failure code for tier 3 and none otherwise (a misspelt code
    /// would otherwise make the item fail every run for the wrong reason).
    /// `task_codes`: the codes the task's scenario names (issue 21).
    fn checked(tier: u8, failure: &str, task_codes: &[String]) -> Result<Verdict, String> {
        match tier {
            1 | 2 if failure.is_empty() => {}
            1 | 2 => return Err(format!("tier {tier} has no failure code, not `{failure}`")),
            3 if FailureCode::ALL.iter().any(|c| c.as_str() == failure) => {}
            3 if task_codes.iter().any(|c| c == failure) => {}
            3 => {
                let mut known: Vec<&str> = FailureCode::ALL.map(FailureCode::as_str).to_vec();
                known.extend(task_codes.iter().map(String::as_str));
                return Err(format!(
                    "`{failure}` is not a failure code (one of: {})",
                    known.join(", ")
                ));
            }
            _ => return Err(format!("tier {tier} is not 1, 2 or 3")),
        }
        Ok(Verdict {
            tier,
            failure: failure.to_string(),
        })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.failure.as_str() {
            "" => write!(f, "tier {}", self.tier),
            failure => write!(f, "tier {} {failure}", self.tier),
        }
    }
}

/// What an item is to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// The unchanged original: it must fail, or the task tests nothing.
    Original,
    /// A reference solution: it must be tier 1.
    Reference,
    /// A fixture answer of the task's manifest: its own expected verdict.
    Answer,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Original => "original",
            ItemKind::Reference => "reference",
            ItemKind::Answer => "answer",
        }
    }
}

/// One thing to run and the verdict it must get.
#[derive(Debug, Clone)]
pub struct GoldItem {
    pub kind: ItemKind,
    /// Its name in reports: `original`, `reference/<file>`, the answer's model.
    pub name: String,
    pub path: PathBuf,
    pub expected: Verdict,
}

/// A task's gold: its items in order (the original, the references, the
/// fixture answers).
#[derive(Debug, Clone)]
pub struct Gold {
    pub task: String,
    pub items: Vec<GoldItem>,
    /// The folder of the references.
    pub references_dir: PathBuf,
    /// The manifest of the fixture answers, when the task names one.
    pub answers_manifest: Option<PathBuf>,
}

/// The `[gold]` table of a `task.toml`.
#[derive(Debug, Default, Deserialize)]
struct GoldSpec {
    /// The failure code the unchanged original gets.
    #[serde(default)]
    original_failure: String,
    /// The references' folder, relative to the task folder.
    references: Option<String>,
    /// The fixture answers' folder (holding `manifest.toml`), relative to
    /// the task folder.
    answers: Option<String>,
}

/// The fixture answers' `manifest.toml` (the one `scripts/grade-fixtures`
/// and the fixture tests read).
#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    answer: Vec<ManifestAnswer>,
}

#[derive(Debug, Deserialize)]
struct ManifestAnswer {
    file: String,
    model: String,
    tier: u8,
    #[serde(default)]
    failure: String,
}

impl Gold {
    /// Reads the gold of `task`, whose folder is `dir`: the `[gold]` table
    /// of its `task.toml`, its references' folder and its answers' manifest.
    pub fn load(dir: &Path, task: &Task) -> Result<Gold, GoldError> {
        if !task.has_original() {
            return Err(GoldError::NoOriginal {
                task: task.id.clone(),
            });
        }
        let toml_path = dir.join("task.toml");
        let spec = read_spec(&toml_path)?;
        let task_codes = task.scenario_codes();
        let original =
            Verdict::checked(3, &spec.original_failure, &task_codes).map_err(|message| {
                GoldError::Invalid {
                    path: toml_path.clone(),
                    message: format!("[gold] original_failure: {message}"),
                }
            })?;
        let mut items = vec![GoldItem {
            kind: ItemKind::Original,
            name: "original".into(),
            path: dir.join(&task.original),
            expected: original,
        }];
        let references_dir = dir.join(spec.references.as_deref().unwrap_or(DEFAULT_REFERENCES));
        let references = references_in(&references_dir)?;
        if references.is_empty() {
            return Err(GoldError::NoReference {
                task: task.id.clone(),
                dir: references_dir,
            });
        }
        items.extend(references.into_iter().map(|path| GoldItem {
            kind: ItemKind::Reference,
            name: format!(
                "reference/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            path,
            expected: Verdict::flawless(),
        }));
        let answers_manifest = spec
            .answers
            .as_deref()
            .map(|answers| dir.join(answers).join("manifest.toml"));
        if let Some(manifest) = &answers_manifest {
            items.extend(answers_of(manifest, &task_codes)?);
        }
        Ok(Gold {
            task: task.id.clone(),
            items,
            references_dir,
            answers_manifest,
        })
    }

    /// How many items are of `kind`.
    pub fn count(&self, kind: ItemKind) -> usize {
        self.items.iter().filter(|i| i.kind == kind).count()
    }
}

fn read_spec(path: &Path) -> Result<GoldSpec, GoldError> {
    #[derive(Deserialize)]
    struct TaskFile {
        gold: Option<GoldSpec>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| GoldError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: TaskFile = toml::from_str(&text).map_err(|e| GoldError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    match file.gold {
        Some(spec) if !spec.original_failure.is_empty() => Ok(spec),
        _ => Err(GoldError::NoGold {
            path: path.to_path_buf(),
        }),
    }
}

/// The reference solutions of a folder, sorted (hidden files left out).
pub(crate) fn references_in(dir: &Path) -> Result<Vec<PathBuf>, GoldError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(GoldError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| REFERENCE_EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The fixture answers of a manifest, each file checked to exist.
fn answers_of(manifest: &Path, task_codes: &[String]) -> Result<Vec<GoldItem>, GoldError> {
    let text = std::fs::read_to_string(manifest).map_err(|source| GoldError::Read {
        path: manifest.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| GoldError::Invalid {
        path: manifest.to_path_buf(),
        message,
    };
    let parsed: Manifest = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let folder = manifest.parent().unwrap_or(Path::new("."));
    parsed
        .answer
        .into_iter()
        .map(|a| {
            let expected = Verdict::checked(a.tier, &a.failure, task_codes)
                .map_err(|m| invalid(format!("answer `{}`: {m}", a.file)))?;
            let path = folder.join(&a.file);
            if !path.exists() {
                return Err(invalid(format!(
                    "answer `{}` names {}, which does not exist",
                    a.model,
                    path.display()
                )));
            }
            Ok(GoldItem {
                kind: ItemKind::Answer,
                name: a.model,
                path,
                expected,
            })
        })
        .collect()
}

/// What one run of an item got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunGot {
    /// `None` when the run could not be judged (an engine or harness fault).
    pub verdict: Option<Verdict>,
    pub label: Label,
    pub reason: String,
    pub duration_ms: u64,
}

impl RunGot {
    pub fn of(v: &Verification) -> RunGot {
        let verdict = match (v.label, v.tier) {
            (Label::Error, _) | (_, None) => None,
            (_, Some(tier)) => Some(Verdict {
                tier,
                // A task written as data is checked on its own codes.
                failure: v.task_failure.clone().unwrap_or_else(|| {
                    v.failure
                        .map(|f| f.as_str().to_string())
                        .unwrap_or_default()
                }),
            }),
        };
        RunGot {
            verdict,
            label: v.label,
            reason: v.reason.clone(),
            duration_ms: v.duration_ms,
        }
    }
}

/// An item's outcome over its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every run got the expected verdict.
    Pass,
    /// No judged run got it.
    Mismatch,
    /// Some judged runs got it and some did not.
    Flaky,
    /// No judged run disagreed, but some could not be judged.
    NotJudged,
}

impl Status {
    /// Whether the item shows the task (or the judge) wrong.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Mismatch | Status::Flaky)
    }
}

/// One item's report: what it must get, what each run got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemReport {
    pub kind: ItemKind,
    pub name: String,
    pub file: PathBuf,
    pub expected: Verdict,
    pub runs: Vec<RunGot>,
    /// Judged runs that got the expected verdict.
    pub matched: usize,
    /// Judged runs that disagree with the item's most common verdict.
    pub flakes: usize,
    pub not_judged: usize,
    pub status: Status,
}

impl ItemReport {
    pub fn new(item: &GoldItem, runs: Vec<RunGot>) -> ItemReport {
        let judged: Vec<&Verdict> = runs.iter().filter_map(|r| r.verdict.as_ref()).collect();
        let matched = judged.iter().filter(|v| ***v == item.expected).count();
        let not_judged = runs.len() - judged.len();
        let mut counts = std::collections::BTreeMap::<&Verdict, usize>::new();
        for verdict in &judged {
            *counts.entry(verdict).or_default() += 1;
        }
        let most_common = counts.values().copied().max().unwrap_or(0);
        let status = match (matched, judged.len() - matched) {
            (_, 0) if not_judged > 0 => Status::NotJudged,
            (_, 0) => Status::Pass,
            (0, _) => Status::Mismatch,
            _ => Status::Flaky,
        };
        ItemReport {
            kind: item.kind,
            name: item.name.clone(),
            file: item.path.clone(),
            expected: item.expected.clone(),
            matched,
            flakes: judged.len() - most_common,
            not_judged,
            status,
            runs,
        }
    }

    /// The distinct verdicts the runs got, each with how many runs got it
    /// (most first), `None` for runs not judged.
    pub fn tally(&self) -> Vec<(Option<&Verdict>, usize)> {
        let mut tally: Vec<(Option<&Verdict>, usize)> = Vec::new();
        for run in &self.runs {
            match tally.iter_mut().find(|(v, _)| *v == run.verdict.as_ref()) {
                Some((_, n)) => *n += 1,
                None => tally.push((run.verdict.as_ref(), 1)),
            }
        }
        tally.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        tally
    }
}

/// The whole check of one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub task: String,
    /// Runs of each item.
    pub runs: usize,
    pub items: Vec<ItemReport>,
}

impl CheckReport {
    /// Items whose status is `status`.
    pub fn count(&self, status: Status) -> usize {
        self.items.iter().filter(|i| i.status == status).count()
    }

    /// Every flake over the items.
    pub fn flakes(&self) -> usize {
        self.items.iter().map(|i| i.flakes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(verdict: Option<(u8, &str)>) -> RunGot {
        RunGot {
            verdict: verdict.map(|(tier, failure)| Verdict {
                tier,
                failure: failure.into(),
            }),
            label: match verdict {
                None => Label::Error,
                Some((1, _)) => Label::Flawless,
                Some((2, _)) => Label::UnrequestedChanges,
                Some(_) => Label::Fail,
            },
            reason: String::new(),
            duration_ms: 0,
        }
    }

    fn item(expected: Verdict) -> GoldItem {
        GoldItem {
            kind: ItemKind::Reference,
            name: "reference/x.py".into(),
            path: "x.py".into(),
            expected,
        }
    }

    #[test]
    fn runs_that_disagree_are_flakes_and_an_outage_is_not_a_mismatch() {
        let reference = item(Verdict::flawless());
        let all = ItemReport::new(&reference, vec![run(Some((1, ""))); 3]);
        assert_eq!((all.status, all.matched, all.flakes), (Status::Pass, 3, 0));

        let flaky = ItemReport::new(
            &reference,
            vec![
                run(Some((1, ""))),
                run(Some((3, "timeout"))),
                run(Some((1, ""))),
            ],
        );
        assert_eq!(
            (flaky.status, flaky.matched, flaky.flakes),
            (Status::Flaky, 2, 1)
        );
        assert!(flaky.status.is_failure());
        assert_eq!(flaky.tally()[0], (Some(&Verdict::flawless()), 2));

        let wrong = ItemReport::new(&reference, vec![run(Some((3, "timeout"))); 2]);
        assert_eq!((wrong.status, wrong.flakes), (Status::Mismatch, 0));

        let outage = ItemReport::new(&reference, vec![run(Some((1, ""))), run(None)]);
        assert_eq!(
            (outage.status, outage.not_judged, outage.flakes),
            (Status::NotJudged, 1, 0)
        );
        assert!(!outage.status.is_failure());

        // A mismatch found in the judged runs stands beside an outage.
        let both = ItemReport::new(&reference, vec![run(Some((2, ""))), run(None)]);
        assert_eq!(both.status, Status::Mismatch);
    }

    #[test]
    fn verdicts_in_a_tasks_files_are_checked() {
        assert!(Verdict::checked(3, "no_reset_control", &[]).is_ok());
        assert!(Verdict::checked(1, "", &[]).is_ok());
        let typo = Verdict::checked(3, "no_reset_button", &[]).unwrap_err();
        assert!(typo.contains("not a failure code"), "{typo}");
        assert!(Verdict::checked(3, "", &[]).is_err());
        assert!(Verdict::checked(2, "timeout", &[]).is_err());
        assert!(Verdict::checked(4, "", &[]).is_err());
        assert_eq!(
            Verdict::checked(3, "timeout", &[]).unwrap().to_string(),
            "tier 3 timeout"
        );
        // A task written as data names codes of its own (issue 21).
        let own = ["wrong_temperature".to_string()];
        assert!(Verdict::checked(3, "wrong_temperature", &own).is_ok());
        let typo = Verdict::checked(3, "wrong_temprature", &own).unwrap_err();
        assert!(typo.contains("wrong_temperature"), "{typo}");
        assert!(Verdict::checked(3, "wrong_temperature", &[]).is_err());
    }

    #[test]
    fn the_reset_task_ships_its_gold() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks");
        let task = Task::load(&dir, "reset-conversation").unwrap();
        let gold = Gold::load(&dir.join("reset-conversation"), &task).unwrap();
        assert_eq!(gold.items[0].kind, ItemKind::Original);
        assert_eq!(gold.items[0].expected.tier, 3);
        assert!(gold.count(ItemKind::Reference) >= 1);
        assert!(gold.count(ItemKind::Answer) >= 20, "the manifest's answers");
        for item in &gold.items {
            assert!(item.path.is_file(), "{}", item.path.display());
        }
    }

    #[test]
    fn a_task_without_gold_or_references_says_what_to_add() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("original.py"), "print(1)\n").unwrap();
        let toml = "id = \"t\"\ntitle = \"t\"\nprompt = \"p\"\noriginal = \"original.py\"\n[reset_control]\ntext_pattern = 'reset'\n";
        std::fs::write(dir.join("task.toml"), toml).unwrap();
        let task = Task::load(root.path(), "t").unwrap();
        let no_gold = Gold::load(&dir, &task).unwrap_err().to_string();
        assert!(no_gold.contains("original_failure"), "{no_gold}");

        let with_gold = format!("{toml}[gold]\noriginal_failure = \"no_reset_control\"\n");
        std::fs::write(dir.join("task.toml"), with_gold).unwrap();
        let no_reference = Gold::load(&dir, &task).unwrap_err().to_string();
        assert!(
            no_reference.contains("no reference solution"),
            "{no_reference}"
        );

        std::fs::create_dir(dir.join("reference")).unwrap();
        std::fs::write(dir.join("reference/fixed.py"), "print(2)\n").unwrap();
        let gold = Gold::load(&dir, &task).unwrap();
        assert_eq!(gold.items.len(), 2);
        assert_eq!(gold.items[1].name, "reference/fixed.py");
        assert!(gold.answers_manifest.is_none());
    }
}
