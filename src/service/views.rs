//! A job and a batch as the API shows them (the JSON of their GET routes,
//! which a callback carries too), and the facts of a batch the pages share.

use serde_json::{json, Value};

use crate::render::{self, Counts, Format};
use crate::service::store::{BatchRecord, JobRecord, Status};
use crate::verify::Verification;

pub(super) fn verification_link(id: &str) -> String {
    format!("/v1/verifications/{id}")
}

/// A job's result with the job's sample and metadata, which travel with
/// the answer (a worker judges the answer alone).
fn job_result(job: &JobRecord) -> Option<Verification> {
    job.result.clone().map(|mut v| {
        v.sample = job.sample.clone();
        v.metadata = job.metadata.clone();
        v
    })
}

/// A finished job's result as its reports render it (no script).
pub(super) fn job_report(job: &JobRecord) -> Option<Verification> {
    job_result(job).map(|mut v| {
        v.script = None;
        v
    })
}

/// A result as `qtjudge grade --format json` gives it (no script).
fn public_result(mut v: Verification) -> Value {
    v.script = None;
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A job as the API shows it.
pub(super) fn verification_view(job: &JobRecord) -> Value {
    let link = verification_link(&job.id);
    let artifacts: serde_json::Map<String, Value> = job
        .result
        .iter()
        .flat_map(|v| &v.artifacts)
        .map(|a| {
            (
                a.name.clone(),
                Value::String(format!("{link}/artifacts/{}", a.name)),
            )
        })
        .collect();
    json!({
        "id": job.id,
        "status": job.status,
        "task": job.task,
        "task_choice": job.task_choice,
        "model": job.model,
        "sample": job.sample,
        "metadata": job.metadata,
        "batch_id": job.batch_id,
        "created_at": rfc3339(job.created_at),
        "started_at": job.started_at.map(rfc3339),
        "finished_at": job.finished_at.map(rfc3339),
        "error": job.error,
        "attempts": job.attempts,
        "result": job_result(job).map(public_result),
        "callback": job.callback,
        "links": {"self": link, "artifacts": artifacts, "page": format!("/verifications/{}", job.id)},
    })
}

pub(super) fn batch_status(batch: &BatchRecord) -> Status {
    if batch.jobs.iter().all(|j| j.status.is_finished()) {
        Status::Done
    } else if batch.jobs.iter().any(|j| j.status != Status::Queued) {
        Status::Running
    } else {
        Status::Queued
    }
}

/// The finished results of a batch, each with its job's sample and
/// metadata, in the order `grade` gives them.
pub(super) fn batch_results(batch: &BatchRecord) -> Vec<Verification> {
    let mut results: Vec<Verification> = batch.jobs.iter().filter_map(job_result).collect();
    results.sort_by(Verification::report_order);
    results
}

/// The tasks a batch's answers are graded against, as chosen so far (an
/// uploaded app's when it runs; before any, what the batch was given).
pub(super) fn batch_tasks(batch: &BatchRecord) -> String {
    let mut tasks: Vec<&str> = batch
        .jobs
        .iter()
        .map(|j| j.task.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    if tasks.is_empty() {
        batch.task.clone()
    } else {
        tasks.join(", ")
    }
}

/// How far a batch got: `{id, status, total, finished}` (a comparison
/// asked for before both batches are finished says it of each).
pub(super) fn batch_progress(batch: &BatchRecord) -> Value {
    json!({
        "id": batch.id,
        "status": batch_status(batch),
        "total": batch.jobs.len(),
        "finished": batch.jobs.iter().filter(|j| j.status.is_finished()).count(),
    })
}

pub(super) fn batch_view(batch: &BatchRecord) -> Value {
    batch_view_with(batch, &[1])
}

/// A batch as the API shows it, its leaderboard (of the answers finished
/// so far) with pass@k for each k of `pass_at`.
pub(super) fn batch_view_with(batch: &BatchRecord, pass_at: &[usize]) -> Value {
    let count = |s: Status| batch.jobs.iter().filter(|j| j.status == s).count();
    let status = batch_status(batch);
    let results = batch_results(batch);
    let verifications: Vec<Value> = batch
        .jobs
        .iter()
        .map(|j| {
            let r = j.result.as_ref();
            json!({
                "id": j.id,
                "model": j.model,
                "sample": j.sample,
                "task": j.task,
                "task_choice": j.task_choice,
                "status": j.status,
                "tier": r.and_then(|r| r.tier),
                "label": r.map(|r| r.label),
                "failure": r.and_then(|r| r.failure),
                "reason": r.map(|r| r.reason.clone()).or_else(|| j.error.clone()),
                "links": {"self": verification_link(&j.id)},
            })
        })
        .collect();
    json!({
        "id": batch.id,
        "task": batch_tasks(batch),
        "status": status,
        "created_at": rfc3339(batch.created_at),
        "total": batch.jobs.len(),
        "progress": {
            "queued": count(Status::Queued),
            "running": count(Status::Running),
            "done": count(Status::Done),
            "error": count(Status::Error),
        },
        "counts": Counts::of(&results),
        "leaderboard": render::leaderboard(&results, pass_at),
        "verifications": verifications,
        "table": (status == Status::Done).then(|| render::report(&results, Format::Text, pass_at)),
        "callback": batch.callback,
        "links": {"self": format!("/v1/batches/{}", batch.id), "page": format!("/batches/{}", batch.id)},
    })
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2025-01-31T12:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
    }
}
