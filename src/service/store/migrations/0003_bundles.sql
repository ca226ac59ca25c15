-- An uploaded app, unpacked at submission (JSON). Written by no version
-- since uploads are kept compressed (0005), still read for jobs queued
-- before an upgrade.
ALTER TABLE jobs ADD COLUMN bundle TEXT;
