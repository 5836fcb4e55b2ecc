-- What became of each plugin package at the last load: `status` is active, failed or
-- disabled; `disabled` is the operator's wish, kept across reloads and restarts.
ALTER TABLE plugins ADD COLUMN content_hash TEXT;
ALTER TABLE plugins ADD COLUMN error TEXT;
ALTER TABLE plugins ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
