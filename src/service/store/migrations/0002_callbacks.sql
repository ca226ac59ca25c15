-- Callbacks: where a finished job's or batch's view is POSTed, and one
-- delivery row per job or batch (`subject`), kept across restarts. The
-- stores of this version also had a trigger filling `callbacks`; 0006 drops
-- it (the store queues deliveries in Rust since), so it is not made here.
ALTER TABLE jobs ADD COLUMN callback_url TEXT;
ALTER TABLE batches ADD COLUMN callback_url TEXT;
CREATE TABLE callbacks (
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
CREATE INDEX callbacks_state ON callbacks(state, next_attempt_ms);
