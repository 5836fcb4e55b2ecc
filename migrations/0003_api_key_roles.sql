-- API keys get a role, an optional plugin allow-list, and a short prefix of the key that
-- identifies it in listings and logs without revealing it. `key_hash` stays the only copy
-- of the key itself; `permissions` of the original schema is unused.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'reader';
ALTER TABLE api_keys ADD COLUMN plugins TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
CREATE INDEX api_keys_name ON api_keys (name);
