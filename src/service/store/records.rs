//! What the job store takes in and gives back, whichever store it is: jobs
//! and batches to enqueue, their records as read, a claimed job and its
//! lease, queue depth, batch listings, and callback deliveries (pending
//! ones, and their state as the views show it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::task::TaskChoice;
use crate::verify::Verification;

/// The event of a delivery whose verification finished (written by the
/// store when it queues the delivery, sent as `X-Qtjudge-Event`).
pub const VERIFICATION_FINISHED: &str = "verification.finished";
/// The event of a delivery whose batch finished.
pub const BATCH_FINISHED: &str = "batch.finished";

/// Where a job stands. `error` means it could not be judged (engine down,
/// task gone, given up after crashes): never the answer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Done,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Error => "error",
        }
    }

    pub(super) fn parse(text: &str) -> Status {
        match text {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "done" => Status::Done,
            _ => Status::Error,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Error)
    }
}

/// An answer to verify, as accepted by the API.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub task: String,
    pub model: String,
    /// Which of the model's answers to the task this is, when it sent
    /// several: a job is keyed by (model, task, sample).
    pub sample: Option<String>,
    pub output: String,
    /// An app as uploaded (still compressed); `output` is then empty.
    /// Stored with the job, so a job queued before a crash still runs
    /// after it, and unpacked by the worker that runs it.
    pub upload: Option<crate::bundle::Upload>,
    pub metadata: Option<Value>,
    /// Where the finished view is POSTed (checked by the API).
    pub callback_url: Option<String>,
    /// Why `task` was chosen (given, or resembled): kept with the job and
    /// put in its result, as a local `grade` puts it.
    pub task_choice: Option<TaskChoice>,
}

/// What a job was given to verify, read back to run it again (a page's
/// re-run): the raw answer, or the app still compressed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    pub output: String,
    pub upload: Option<crate::bundle::Upload>,
}

/// A batch to create with its jobs.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: String,
    pub task: String,
    /// Where the finished batch's view is POSTed.
    pub callback_url: Option<String>,
}

/// A job as stored (without the answer's text, which only workers need).
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    pub batch_id: Option<String>,
    pub task: String,
    pub model: String,
    pub sample: Option<String>,
    pub metadata: Option<Value>,
    pub status: Status,
    pub result: Option<Verification>,
    /// Why a job ended in `error` without a result.
    pub error: Option<String>,
    pub attempts: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub callback: Option<CallbackStatus>,
    /// Why `task` was chosen (none for jobs stored by older versions).
    pub task_choice: Option<TaskChoice>,
}

#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: String,
    pub task: String,
    pub created_at: i64,
    /// In the order they were submitted.
    pub jobs: Vec<JobRecord>,
    pub callback: Option<CallbackStatus>,
}

/// A claimed job: what a worker needs to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub batch_id: Option<String>,
    pub task: String,
    pub model: String,
    pub output: String,
    pub upload: Option<crate::bundle::Upload>,
    /// An app unpacked at submission by a version before uploads were
    /// kept compressed (a job queued before an upgrade).
    pub bundle: Option<crate::bundle::Bundle>,
    pub task_choice: Option<TaskChoice>,
    /// What the claimer shows to write the job's outcome.
    pub lease: Lease,
}

/// A claim on a running job: only its holder may record the job's task,
/// its outcome or its return to the queue. `token` is a fencing token,
/// raised by every claim of the job, so that a holder whose claim was
/// released (at recovery) or taken over cannot write after the fact: the
/// store refuses it (`StoreError::LeaseLost`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub token: i64,
}

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Depth {
    pub queued: usize,
    pub running: usize,
}

/// What start-up recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub requeued: usize,
    pub given_up: usize,
}

/// A batch as the index page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchListing {
    pub id: String,
    pub task: String,
    pub created_at: i64,
    /// Its jobs, and how many of them are finished.
    pub jobs: usize,
    pub finished: usize,
}

/// How much of a batch's jobs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDetail {
    /// Everything: reports of every format.
    Full,
    /// Progress, tiers and reasons: the batch view, its page, its callback.
    Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One delivery attempt's outcome as recorded: still `pending` (due again
/// at `next_attempt_ms`), `delivered` or `failed`, after `attempts` tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAttempt {
    pub attempts: u32,
    pub state: DeliveryState,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
}

impl CallbackAttempt {
    /// When the delivery ended (delivered or given up), now; `None` while
    /// it is still pending.
    pub fn finished_at(&self) -> Option<i64> {
        (self.state != DeliveryState::Pending).then(super::now_ms)
    }
}

/// A callback as the views show it. `pending` also covers the time before
/// the verification or batch is finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackStatus {
    pub url: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// A delivery still to make (its body is read when its turn comes).
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub id: String,
    /// The job's or batch's id.
    pub subject: String,
    pub event: String,
    pub url: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
}
