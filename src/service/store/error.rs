//! What can go wrong in a job store, said for whoever reads the log or the
//! serve error: what the store was doing, and on which job. The backend's
//! own error is kept as the source, boxed, so no caller names the
//! database library.

use std::path::PathBuf;

/// A database library's error, kept for its message.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {path}: {source} (check --data-dir)")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the job store {location}: {source} (is another qtjudge serve using --data-dir, or is the file damaged?)")]
    Open {
        location: String,
        source: BackendError,
    },
    #[error("cannot reach the job store {location}: {source} (is PostgreSQL running there, and is the --store URL right?)")]
    Connect {
        location: String,
        source: BackendError,
    },
    #[error(
        "cannot bring the job store {location} to schema version {version} ({name}): {source}"
    )]
    Migrate {
        location: String,
        version: u32,
        name: &'static str,
        source: BackendError,
    },
    #[error("the job store {location} has schema version {found}, newer than this qtjudge knows ({known}): run the newer qtjudge on it, or use another --data-dir")]
    TooNew {
        location: String,
        found: i64,
        known: u32,
    },
    #[error("job store error while {doing}: {source}")]
    Query {
        doing: &'static str,
        source: BackendError,
    },
    /// The store's server is out of reach (down, restarting, the
    /// connection cut): nothing was done; retry once it is back.
    #[error("the job store is unreachable ({doing}): {source}")]
    Unavailable {
        doing: &'static str,
        source: BackendError,
    },
    #[error("cannot encode {what} for the job store: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// The job was given back to the queue (recovery, shutdown) or claimed
    /// again since this claim: its holder no longer writes it.
    #[error("job {job_id} is no longer held by this claim (lease {token}): not written")]
    LeaseLost { job_id: String, token: i64 },
    #[error("the queue is full ({queued} queued, at most {max}): retry later")]
    QueueFull { queued: usize, max: usize },
    #[error("the job store's thread stopped: {0}")]
    Thread(String),
}
