-- The replicas sharing this store, by the label they put on their sandbox
-- containers (`owner`): each says it is alive now and then (`last_seen`).
-- One that stopped saying so is dead, and the first replica to claim it
-- (`reaper`, until `reaping_until`) removes its containers from the engine
-- they share, then its row.
CREATE TABLE replicas (
    owner TEXT PRIMARY KEY,
    last_seen TIMESTAMPTZ NOT NULL,
    reaper TEXT,
    reaping_until TIMESTAMPTZ
);
