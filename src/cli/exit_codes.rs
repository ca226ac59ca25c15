//! Exit codes of every command, and what `--help` says of them.

/// The work was done (for `verify`: tier 1 or 2).
pub const OK: i32 = 0;
/// Judged and failed: `verify` gave tier 3; `grade`: `--fail-under`
/// not met; `compare`: a model's pass rate dropped past
/// `--fail-on-regression`.
pub const FAILED: i32 = 1;
/// Bad usage, or the environment (Docker, image, files) is not usable.
pub const USAGE_OR_ENVIRONMENT: i32 = 2;
/// Could not judge: the engine or the harness failed (`label: error`),
/// for `verify` that answer, for `grade` at least one. Never the
/// answer's fault: run it again once the engine is healthy.
pub const NOT_JUDGED: i32 = 3;
use crate::grading::verdict::Label;
use crate::render::Counts;
use crate::verify::Verification;

/// `verify`'s code for its one answer.
pub fn of_verification(label: Label) -> i32 {
    match label {
        Label::Flawless | Label::UnrequestedChanges => OK,
        Label::Fail => FAILED,
        Label::Error => NOT_JUDGED,
    }
}

/// `grade`'s code: an answer that could not be judged outranks the
/// bar (a rate over answers some of which were never judged says
/// nothing of the model: the run must be repeated, not gated on).
pub fn of_grade(done: &[Verification], fail_under: Option<f64>) -> i32 {
    if done.iter().any(|v| v.label == Label::Error) {
        NOT_JUDGED
    } else if fail_under.is_some_and(|bar| Counts::of(done).tier1_rate() < bar) {
        FAILED
    } else {
        OK
    }
}

/// `task check`'s code: a run that contradicts an item's expected
/// verdict is the task's (or the judge's) failure even beside an outage,
/// since a judged run is evidence; runs not judged alone are no evidence
/// either way.
pub fn of_task_check(report: &crate::gold::CheckReport) -> i32 {
    if report.items.iter().any(|i| i.status.is_failure()) {
        FAILED
    } else if report
        .items
        .iter()
        .any(|i| i.status == crate::gold::Status::NotJudged)
    {
        NOT_JUDGED
    } else {
        OK
    }
}

/// `compare`'s code: 1 when any model regressed past the bar.
pub fn of_compare(regressions: usize) -> i32 {
    if regressions > 0 {
        FAILED
    } else {
        OK
    }
}

/// What `--help` says of them.
pub const HELP: &str =
    "Exit codes: 0 judged and passed (tier 1 or 2; `grade`: done and any --fail-under met), \
1 judged and failed (tier 3; `grade`: --fail-under not met; `task check`: an item missed its expected verdict in a run; `compare`: a model's pass rate dropped by more than --fail-on-regression), \
2 usage or environment error (Docker unreachable, unknown task, unreadable file or run folder), \
3 could not judge (engine or harness fault; `grade`: at least one answer; `task check`: some runs, none missed; \
`generate` and `showdown`: a model server gave no answer for some samples, after its retries).";

#[cfg(test)]
mod tests {
    use super::*;

    fn graded(labels: &[Label]) -> Vec<Verification> {
        labels
            .iter()
            .map(|&label| {
                let mut v = Verification::unjudged("m", "t", "docker");
                v.label = label;
                v.tier = match label {
                    Label::Flawless => Some(1),
                    Label::UnrequestedChanges => Some(2),
                    Label::Fail => Some(3),
                    Label::Error => None,
                };
                v
            })
            .collect()
    }

    #[test]
    fn verify_tells_a_failed_answer_from_one_that_could_not_be_judged() {
        assert_eq!(of_verification(Label::Flawless), OK);
        assert_eq!(of_verification(Label::UnrequestedChanges), OK);
        assert_eq!(of_verification(Label::Fail), FAILED);
        assert_eq!(of_verification(Label::Error), NOT_JUDGED);
    }

    #[test]
    fn grade_gates_on_the_bar_only_when_every_answer_was_judged() {
        let run = graded(&[Label::Flawless, Label::Fail]);
        assert_eq!(
            of_grade(&run, None),
            OK,
            "failures alone are the run's result"
        );
        assert_eq!(of_grade(&run, Some(0.5)), OK);
        assert_eq!(of_grade(&run, Some(0.6)), FAILED);
        let outage = graded(&[Label::Flawless, Label::Error]);
        assert_eq!(of_grade(&outage, None), NOT_JUDGED);
        assert_eq!(of_grade(&outage, Some(0.0)), NOT_JUDGED);
    }
}
