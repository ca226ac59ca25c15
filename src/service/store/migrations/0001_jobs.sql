-- The first job store: batches, their jobs (the queue: a job is a row), and
-- each job's screenshots.
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE jobs (
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
CREATE INDEX jobs_status ON jobs(status, seq);
CREATE INDEX jobs_batch ON jobs(batch_id, seq);
CREATE INDEX jobs_finished ON jobs(finished_at);
CREATE TABLE artifacts (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);
