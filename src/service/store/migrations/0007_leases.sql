-- The fencing token of a job's claim: raised by every claim, and a job's
-- outcome is written only with the token of its current claim.
ALTER TABLE jobs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
