//! The HTML views: the service's pages (the recent verifications and
//! batches, one verification, one batch) and `--format html`, from the
//! askama templates in `templates/` (checked at compile time, every value
//! escaped unless marked safe). A page is given a [`Job`] or a [`Batch`],
//! the service's records as the pages show them, so this room imports
//! nothing of the service.

use std::collections::BTreeMap;

use askama::Template;

use crate::grading::leaderboard::{Leaderboard, Rate};
use crate::harness::Artifact;
use crate::render::board::{self, Cells};
use crate::render::diff;
use crate::render::Counts;
use crate::verify::Verification;

/// The only script a page holds: an image's two handlers, which let a
/// browser test see whether it loaded. The service's content security
/// policy allows these two by hash.
pub const IMAGE_LOADED: &str = "this.dataset.loaded='yes'";
pub const IMAGE_FAILED: &str = "this.dataset.loaded='no'";

/// The pages' escaper: `&`, `<`, `>`, `"` and `'` as the named entities
/// (and `&#39;`) the pages have always written, for element content and
/// quoted attribute values alike (askama's own escaper writes numeric
/// entities). Named in `templates/askama.toml`.
#[derive(Clone, Copy)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, text: &str) -> std::fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            dest.write_str(&rest[..at])?;
            dest.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        dest.write_str(rest)
    }
}

/// A job as a page shows it: the service's record, or a bare result (no
/// id, so no links).
pub struct Job<'a> {
    /// Empty for a bare result.
    pub id: &'a str,
    pub batch_id: Option<&'a str>,
    pub task: &'a str,
    pub model: &'a str,
    /// Which of the model's answers to the task it is.
    pub sample: Option<&'a str>,
    /// The submitter's metadata as JSON.
    pub metadata: Option<String>,
    /// `queued`, `running`, `done` or `error`.
    pub status: &'a str,
    pub finished: bool,
    /// Why a job ended in `error` without a result.
    pub error: Option<&'a str>,
    /// RFC 3339.
    pub created: Option<String>,
    pub result: Option<&'a Verification>,
    /// The verification this one runs again (a page's re-run).
    pub rerun_of: Option<&'a str>,
}

impl<'a> Job<'a> {
    /// A result with no job around it (`--format html`).
    pub fn bare(v: &'a Verification) -> Job<'a> {
        Job {
            id: "",
            batch_id: None,
            task: &v.task,
            model: &v.model,
            sample: v.sample.as_deref(),
            metadata: v.metadata.as_ref().map(|m| m.to_string()),
            status: "done",
            finished: true,
            error: None,
            created: None,
            result: Some(v),
            rerun_of: rerun_of(v.metadata.as_ref()),
        }
    }
}

/// The verification a re-run's metadata names (`rerun_of`).
pub fn rerun_of(metadata: Option<&serde_json::Value>) -> Option<&str> {
    metadata?.get(RERUN_OF)?.as_str()
}

/// The metadata key a re-run carries its original's id in (it travels to
/// every output, as all metadata does).
pub const RERUN_OF: &str = "rerun_of";

/// A batch as its page shows it.
pub struct Batch<'a> {
    /// Empty for bare results.
    pub id: &'a str,
    /// The tasks its answers are graded against.
    pub tasks: String,
    pub status: &'a str,
    pub done: bool,
    pub created: Option<String>,
    pub jobs: Vec<Job<'a>>,
    /// The k of each pass@k its leaderboard shows.
    pub pass_at: Vec<usize>,
}

/// A batch on the index page.
pub struct BatchLine {
    pub id: String,
    pub task: String,
    pub created: String,
    pub total: usize,
    pub finished: usize,
}

/// The tier badge of a job, whatever its state.
#[derive(Template)]
#[template(path = "badge.html", config = "src/render/templates/askama.toml")]
struct Badge {
    /// `t1`, `t2`, `t3`; `terr` not judged; `tq` not finished.
    class: String,
    text: String,
}

impl Badge {
    fn of(status: &str, result: Option<&Verification>) -> Badge {
        let (class, text) = match result {
            Some(v) => match v.tier {
                Some(t) => (format!("t{t}"), format!("{t} {}", v.label.as_str())),
                None => ("terr".into(), "not judged".into()),
            },
            None if status == "error" => ("terr".into(), "error".into()),
            None => ("tq".into(), status.into()),
        };
        Badge { class, text }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A job in a listing: its badge, failure code and reason (or why it
/// could not be judged).
struct JobRow<'a> {
    job: &'a Job<'a>,
    /// The model, and its sample when it has one (`devstral #2`).
    name: String,
    badge: Badge,
    failure: &'static str,
    reason: &'a str,
}

impl<'a> JobRow<'a> {
    fn of(job: &'a Job<'a>) -> JobRow<'a> {
        let v = job.result;
        JobRow {
            job,
            name: match job.sample {
                Some(sample) => format!("{} #{sample}", job.model),
                None => job.model.to_string(),
            },
            badge: Badge::of(job.status, v),
            failure: v.and_then(|v| v.failure).map(|f| f.as_str()).unwrap_or(""),
            reason: v.map(|v| v.reason.as_str()).or(job.error).unwrap_or(""),
        }
    }
}

/// A task the index page's form offers.
pub struct TaskOption {
    pub id: String,
    pub title: String,
}

#[derive(Template)]
#[template(path = "index.html", config = "src/render/templates/askama.toml")]
struct IndexPage<'a> {
    title: &'a str,
    refresh: bool,
    tasks: &'a [TaskOption],
    /// (id, task, created, jobs, finished), newest first.
    batches: Vec<(&'a str, &'a str, &'a str, usize, usize)>,
    jobs: Vec<JobRow<'a>>,
}

/// The form that submits an answer or an app, and the recent batches and
/// verifications, newest first.
pub fn index_page(
    tasks: &[TaskOption],
    batches: &[BatchLine],
    jobs: &[Job<'_>],
) -> askama::Result<String> {
    IndexPage {
        title: "qtjudge",
        // Never refreshed: it would wipe an answer being pasted.
        refresh: false,
        tasks,
        batches: batches
            .iter()
            .map(|b| {
                (
                    b.id.as_str(),
                    b.task.as_str(),
                    b.created.as_str(),
                    b.total,
                    b.finished,
                )
            })
            .collect(),
        jobs: jobs.iter().map(JobRow::of).collect(),
    }
    .render()
}

#[derive(Template)]
#[template(
    path = "verification.html",
    config = "src/render/templates/askama.toml"
)]
struct VerificationPage<'a> {
    title: &'a str,
    refresh: bool,
    job: &'a Job<'a>,
    badge: Badge,
    /// The answer beside its task's original …
    diff: Option<diff::SideBySide<'a>>,
    /// … or why it is not shown.
    no_diff: Option<String>,
}

impl VerificationPage<'_> {
    /// Whether a step's row shows as failed. The planes are judged by the
    /// host, after the steps: a history left in place shows on the step
    /// that checked it.
    fn failed(&self, step: &crate::harness::Step) -> bool {
        let host_found = self.job.result.is_some_and(|v| {
            v.failure == Some(crate::grading::FailureCode::HistoryNotCleared)
                && v.steps.iter().all(|s| s.ok)
        });
        !step.ok || (host_found && step.name == "check_cleared")
    }

    /// Where a screenshot is shown from: the service's artifact route, or
    /// for a bare result the file it was saved to (none: not shown).
    fn image_src(&self, a: &Artifact) -> Option<String> {
        if self.job.id.is_empty() {
            a.path.clone()
        } else {
            Some(format!(
                "/v1/verifications/{}/artifacts/{}",
                self.job.id, a.name
            ))
        }
    }
}

/// One verification's page; with its task's `original`, the script as
/// run beside it, the unrequested changes the static grader named
/// highlighted at their lines.
pub fn verification_page(job: &Job<'_>, original: Option<&str>) -> askama::Result<String> {
    let flagged = job.result.map(flagged_lines).unwrap_or_default();
    let script = job.result.and_then(|v| v.script.as_deref());
    let compared = original
        .filter(|o| !o.is_empty())
        .zip(script)
        .map(|(original, script)| diff::side_by_side(original, script, &flagged));
    let (diff, no_diff) = match compared {
        Some(Ok(d)) => (Some(d), None),
        Some(Err(too_large)) => (None, Some(too_large.to_string())),
        None => (None, None),
    };
    VerificationPage {
        title: job.model,
        refresh: !job.finished,
        job,
        badge: Badge::of(job.status, job.result),
        diff,
        no_diff,
    }
    .render()
}

/// The script's lines the static grader named as unrequested changes,
/// each with the kinds named there.
fn flagged_lines(v: &Verification) -> BTreeMap<usize, String> {
    let mut lines: BTreeMap<usize, String> = BTreeMap::new();
    for change in v
        .unrequested_changes
        .iter()
        .filter(|c| c.source == "static")
    {
        if let Some(line) = change.line.filter(|&l| l > 0) {
            let kinds = lines.entry(line).or_default();
            if !kinds.is_empty() {
                kinds.push_str(", ");
            }
            kinds.push_str(&change.kind);
        }
    }
    lines
}

#[derive(Template)]
#[template(path = "error.html", config = "src/render/templates/askama.toml")]
struct ErrorPage<'a> {
    title: &'a str,
    refresh: bool,
    status: &'a str,
    message: &'a str,
}

/// Why a form's submission was refused (`status`: its code and reason).
pub fn error_page(status: &str, message: &str) -> askama::Result<String> {
    ErrorPage {
        title: "not submitted",
        refresh: false,
        status,
        message,
    }
    .render()
}

#[derive(Template)]
#[template(path = "batch.html", config = "src/render/templates/askama.toml")]
struct BatchPage<'a> {
    title: String,
    heading: String,
    refresh: bool,
    batch: &'a Batch<'a>,
    finished: usize,
    counts: Counts,
    chart: Chart,
    /// The leaderboard's heads of pass@k, a line per model, and per model
    /// × task when there are several tasks.
    pass_heads: Vec<String>,
    board_rows: Vec<Cells>,
    task_rows: Vec<Cells>,
    board_notes: Vec<&'static str>,
    /// Whether the answers span several tasks: then each row names its own.
    show_task: bool,
    /// `pass_at=1,5` for the report links when other k than 1 were asked.
    pass_query: String,
    /// Sorted by model, as `grade` sorts them.
    jobs: Vec<JobRow<'a>>,
}

/// One batch's page: the leaderboard of its finished answers with a chart,
/// and the experiment's table with counts.
pub fn batch_page(batch: &Batch<'_>) -> askama::Result<String> {
    let mut jobs: Vec<&Job> = batch.jobs.iter().collect();
    jobs.sort_by(|a, b| {
        let sample = |j: &Job| {
            let s = j.sample.unwrap_or("");
            (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string())
        };
        (a.model, a.task, sample(a)).cmp(&(b.model, b.task, sample(b)))
    });
    let results: Vec<&Verification> = jobs.iter().filter_map(|j| j.result).collect();
    let leaderboard = crate::render::leaderboard(results.iter().copied(), &batch.pass_at);
    // As the leaderboard's `by_task`: a task column only when there are
    // several (an app's task is empty until it runs).
    let mut tasks: Vec<&str> = jobs
        .iter()
        .map(|j| j.task)
        .filter(|t| !t.is_empty())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    let title = if batch.id.is_empty() {
        "results".to_string()
    } else {
        format!("batch {}", short(batch.id))
    };
    BatchPage {
        heading: if batch.id.is_empty() {
            "Results".to_string()
        } else {
            format!("Batch {}", short(batch.id))
        },
        title,
        refresh: !batch.done,
        batch,
        finished: batch.jobs.iter().filter(|j| j.finished).count(),
        counts: Counts::of_all(results.iter().copied()),
        chart: Chart::of(&leaderboard),
        pass_heads: leaderboard
            .pass_at
            .iter()
            .map(|k| format!("pass@{k}"))
            .collect(),
        board_rows: leaderboard.models.iter().map(board::cells).collect(),
        task_rows: leaderboard.by_task.iter().map(board::cells).collect(),
        board_notes: std::iter::once(board::NOTE)
            .chain(board::undefined_note(&leaderboard))
            .collect(),
        show_task: tasks.len() > 1,
        pass_query: if batch.pass_at == [1] {
            String::new()
        } else {
            let ks: Vec<String> = batch.pass_at.iter().map(usize::to_string).collect();
            format!("pass_at={}", ks.join(","))
        },
        jobs: jobs.into_iter().map(JobRow::of).collect(),
    }
    .render()
}

/// Bare results as a page of their own (`--format html`): one result's
/// page, or the batch page of several with pass@k for each of `pass_at`.
pub fn results(results: &[Verification], pass_at: &[usize]) -> String {
    let rendered = match results {
        [one] => verification_page(&Job::bare(one), None),
        many => batch_page(&Batch {
            id: "",
            tasks: {
                let mut tasks: Vec<&str> = many.iter().map(|v| v.task.as_str()).collect();
                tasks.sort_unstable();
                tasks.dedup();
                tasks.join(", ")
            },
            status: "done",
            done: true,
            created: None,
            jobs: many.iter().map(Job::bare).collect(),
            pass_at: pass_at.to_vec(),
        }),
    };
    // The templates were checked when compiled; what they are given cannot fail to write.
    rendered.expect("a page renders into a String")
}

/// An inline SVG of tier shares per model (of its judged answers: tier 1
/// green, 2 yellow, 3 red), in the leaderboard's order, with the 95%
/// Wilson intervals of its tier-1 rate (upper line) and pass rate (lower
/// line) drawn over the bar. Numbers are written with one decimal.
struct Chart {
    width: usize,
    height: usize,
    bar_height: usize,
    bars: Vec<Bar>,
}

struct Bar {
    /// The first 32 characters of the model's name.
    model: String,
    y: usize,
    text_y: usize,
    segments: Vec<Segment>,
    whiskers: Vec<Whisker>,
    label_x: usize,
    label: String,
}

struct Segment {
    x: String,
    width: String,
    colour: &'static str,
    title: String,
}

/// An interval: a line from `x1` to `x2` at `y` with ticks at its ends.
struct Whisker {
    x1: String,
    x2: String,
    y: String,
    top: String,
    bottom: String,
    title: String,
}

impl Chart {
    fn of(board: &Leaderboard) -> Chart {
        let (row, bar_height, label_width, scale) = (26, 18, 230.0, 360.0);
        let x = |share: f64| format!("{:.1}", label_width + share * scale);
        let bars = board
            .models
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let y = i * row + 4;
                let n = r.n.max(1) as f64;
                let mut segments = Vec::new();
                let mut start = 0.0;
                for (count, colour, name) in [
                    (r.tier1, "#2e7d32", "tier 1 flawless"),
                    (r.tier2, "#f9a825", "tier 2 unrequested changes"),
                    (r.tier3, "#c62828", "tier 3 fail"),
                ] {
                    if count == 0 {
                        continue;
                    }
                    let share = count as f64 / n;
                    segments.push(Segment {
                        x: x(start),
                        width: format!("{:.1}", share * scale),
                        colour,
                        title: format!("{name}: {count} of {}", r.n),
                    });
                    start += share;
                }
                if r.n == 0 {
                    segments.push(Segment {
                        x: x(0.0),
                        width: format!("{scale:.1}"),
                        colour: "#9e9e9e",
                        title: format!("{} not judged", r.not_judged),
                    });
                }
                let whisker = |rate: &Rate, at: f64, what: &str| {
                    let (low, high) = (rate.low?, rate.high?);
                    let centre = y as f64 + bar_height as f64 * at;
                    Some(Whisker {
                        x1: x(low),
                        x2: x(high),
                        y: format!("{centre:.1}"),
                        top: format!("{:.1}", centre - 3.0),
                        bottom: format!("{:.1}", centre + 3.0),
                        title: format!("{what} {}", board::rate(rate)),
                    })
                };
                let whiskers = [
                    whisker(&r.tier1_rate, 0.3, "tier-1 rate"),
                    whisker(&r.pass_rate, 0.7, "pass rate"),
                ]
                .into_iter()
                .flatten()
                .collect();
                Bar {
                    model: r.model.chars().take(32).collect(),
                    y,
                    text_y: y + 14,
                    segments,
                    whiskers,
                    label_x: (label_width + scale) as usize + 8,
                    label: format!(
                        "n={} · tier 1 {} · pass {}",
                        r.n,
                        board::rate(&r.tier1_rate),
                        board::rate(&r.pass_rate)
                    ),
                }
            })
            .collect();
        Chart {
            width: (label_width + scale) as usize + 330,
            height: row * board.models.len() + 8,
            bar_height,
            bars,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The five characters as the pages have always written them, the
    /// rest (multi-byte text included) as it is.
    #[test]
    fn the_escaper_writes_named_entities() {
        let mut out = String::new();
        askama::filters::Escaper::write_escaped_str(&Html, &mut out, "a<b>&\"c\"'d' été").unwrap();
        assert_eq!(out, "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39; été");
    }
}
