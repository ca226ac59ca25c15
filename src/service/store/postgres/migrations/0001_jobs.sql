-- The PostgreSQL job store as one schema: the SQLite store's tables at its
-- version 7, in this dialect, plus what replicas need: who holds a job's
-- lease and until when (the database's clock, so replicas' clocks never
-- disagree), and the same for a callback delivery being sent.
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    callback_url TEXT
);
CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    batch_id TEXT REFERENCES batches(id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    -- Bytes: an answer may hold a NUL, which TEXT refuses.
    output BYTEA NOT NULL,
    metadata TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'error')),
    -- JSON as text (JSONB refuses the \u0000 an answer's output may hold),
    -- and the result without its bulky parts, written with it for a
    -- batch's progress (SQLite trims in SQL instead).
    result TEXT,
    result_summary TEXT,
    error TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    callback_url TEXT,
    task_choice TEXT,
    upload TEXT,
    -- The fencing token: raised by every claim.
    lease BIGINT NOT NULL DEFAULT 0,
    lease_holder TEXT,
    lease_expires_at TIMESTAMPTZ
);
CREATE INDEX jobs_queued ON jobs (seq) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_batch ON jobs (batch_id, seq);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE artifacts (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE callbacks (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- The replica sending it, while it lives: one sender at a time.
    holder TEXT,
    held_until TIMESTAMPTZ
);
CREATE INDEX callbacks_pending ON callbacks (next_attempt_ms) WHERE state = 'pending';
