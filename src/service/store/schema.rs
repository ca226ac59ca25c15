//! The store's schema, in one place: the tables of jobs, artifacts and
//! batches, the columns added to them since their first version, and the
//! callback deliveries with the trigger that queues one whenever a job or
//! a batch finishes (its event names are `VERIFICATION_FINISHED` and
//! `BATCH_FINISHED` of `records`).

use rusqlite::{params, Connection};

/// Creates what is missing, and adds what a store made by an older version
/// lacks. Run at every open: each step is a no-op once done.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    add_job_columns(conn)?;
    add_callbacks(conn)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    output TEXT NOT NULL,
    metadata TEXT,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch_id, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at);
CREATE TABLE IF NOT EXISTS artifacts (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);
";

/// Columns of `jobs` added after its first version, each nullable JSON:
/// `bundle` (an uploaded app, unpacked: older versions), `task_choice` (why
/// its task was chosen) and `upload` (an uploaded app as it came).
const ADDED_JOB_COLUMNS: [&str; 3] = ["bundle", "task_choice", "upload"];

/// Adds the [`ADDED_JOB_COLUMNS`] a store made by an older version lacks.
fn add_job_columns(conn: &Connection) -> rusqlite::Result<()> {
    for column in ADDED_JOB_COLUMNS {
        let has_column: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
            params![column],
            |r| r.get(0),
        )?;
        if !has_column {
            conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {column} TEXT"))?;
        }
    }
    Ok(())
}

const CALLBACKS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS callbacks (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS callbacks_state ON callbacks(state, next_attempt_ms);
CREATE TRIGGER IF NOT EXISTS callbacks_on_finish
AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('done', 'error') AND OLD.status NOT IN ('done', 'error')
BEGIN
    INSERT OR IGNORE INTO callbacks (id, subject, event, url, created_at)
    SELECT lower(hex(randomblob(16))), NEW.id, 'verification.finished', NEW.callback_url,
           CAST(unixepoch('subsec') * 1000 AS INTEGER)
    WHERE NEW.callback_url IS NOT NULL;
    INSERT OR IGNORE INTO callbacks (id, subject, event, url, created_at)
    SELECT lower(hex(randomblob(16))), b.id, 'batch.finished', b.callback_url,
           CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM batches b
    WHERE b.id = NEW.batch_id AND b.callback_url IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.status NOT IN ('done', 'error'));
END;
";

/// Adds the callback columns to a store made by an older version, then
/// the deliveries table and the trigger that fills it.
fn add_callbacks(conn: &Connection) -> rusqlite::Result<()> {
    for table in ["jobs", "batches"] {
        let has_column: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = 'callback_url'",
            params![table],
            |r| r.get(0),
        )?;
        if !has_column {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN callback_url TEXT"))?;
        }
    }
    conn.execute_batch(CALLBACKS_SCHEMA)
}
