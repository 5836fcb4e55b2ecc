-- Waygate's schema on PostgreSQL: the same tables and columns as the SQLite migrations
-- 0001-0004 in `migrations/` reach, in one step. Later changes get their own numbered file
-- here, beside the SQLite one. Timestamps are RFC 3339 text, as on SQLite, so both
-- backends hand the same strings to the API.

CREATE TABLE config (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,
    value TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    updated_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
);

CREATE TABLE api_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    expires_at TEXT,
    last_used TEXT,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    role TEXT NOT NULL DEFAULT 'reader',
    plugins TEXT,
    prefix TEXT NOT NULL DEFAULT ''
);
CREATE INDEX api_keys_name ON api_keys (name);
-- Moves on every change to a key (not on a recorded use), inside the changing transaction,
-- so every replica's key ring notices a new, rotated or revoked key with one cheap read and
-- never sees the new version before the change itself (a sequence would: nextval is not
-- transactional).
CREATE TABLE api_keys_version (
    version BIGINT NOT NULL
);
INSERT INTO api_keys_version (version) VALUES (0);

CREATE TABLE plugins (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    version TEXT NOT NULL,
    module_path TEXT NOT NULL,
    config TEXT,
    status TEXT NOT NULL DEFAULT 'inactive',
    created_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    updated_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    content_hash TEXT,
    error TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE command_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command TEXT NOT NULL,
    params TEXT,
    result TEXT,
    status TEXT NOT NULL,
    duration_ms BIGINT,
    client_id TEXT,
    created_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    plugin TEXT,
    request_id TEXT,
    source TEXT
);
CREATE INDEX command_history_created_at ON command_history (created_at);

CREATE TABLE metrics (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    metric_name TEXT NOT NULL,
    metric_value DOUBLE PRECISION NOT NULL,
    tags TEXT,
    timestamp TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
);

-- Keys compare bytewise ("C"), as SQLite's BINARY does, whatever the database's locale:
-- a prefix's keys are then one contiguous, ordered run of the primary key.
CREATE TABLE plugin_kv (
    plugin TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value BYTEA NOT NULL,
    updated_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    PRIMARY KEY (plugin, key)
);

CREATE TABLE plugin_kv_usage (
    plugin TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
);
