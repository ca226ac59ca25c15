-- An uploaded app as it came (still compressed, JSON), unpacked by the
-- worker that runs it.
ALTER TABLE jobs ADD COLUMN upload TEXT;
