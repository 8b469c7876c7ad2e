-- keytop schema, SQLite flavour. Ids are hyphenated UUID text; times are integer epoch
-- milliseconds (UTC); money is integer micro-dollars; days are 'YYYY-MM-DD' text (UTC).

CREATE TABLE users (
    id         TEXT    PRIMARY KEY NOT NULL,
    name       TEXT    NOT NULL UNIQUE,
    is_active  INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id                    TEXT    PRIMARY KEY NOT NULL,
    user_id               TEXT    NOT NULL REFERENCES users (id),
    key_hash              TEXT    NOT NULL UNIQUE,
    key_ciphertext        TEXT    NOT NULL,
    key_hint              TEXT    NOT NULL,
    name                  TEXT    NOT NULL,
    -- JSON arrays of strings; NULL means unrestricted, never an empty list or JSON null.
    allowed_providers     TEXT    CHECK (allowed_providers IS NULL OR allowed_providers NOT IN ('[]', 'null')),
    allowed_api_formats   TEXT    CHECK (allowed_api_formats IS NULL OR allowed_api_formats NOT IN ('[]', 'null')),
    allowed_models        TEXT    CHECK (allowed_models IS NULL OR allowed_models NOT IN ('[]', 'null')),
    rate_limit            INTEGER CHECK (rate_limit IS NULL OR rate_limit > 0),
    concurrent_limit      INTEGER CHECK (concurrent_limit IS NULL OR concurrent_limit > 0),
    expires_at            INTEGER,
    is_standalone         INTEGER NOT NULL DEFAULT 0 CHECK (is_standalone IN (0, 1)),
    credited_micros       INTEGER,
    used_micros           INTEGER NOT NULL DEFAULT 0,
    auto_delete_on_expiry INTEGER CHECK (auto_delete_on_expiry IS NULL OR auto_delete_on_expiry IN (0, 1)),
    is_active             INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    last_used_at          INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

-- Keyset paging for each sort order, and the lookups of the sweep and of a user's keys.
CREATE INDEX api_keys_created   ON api_keys (created_at, id);
CREATE INDEX api_keys_name      ON api_keys (name, id);
CREATE INDEX api_keys_expires   ON api_keys (expires_at, id);
CREATE INDEX api_keys_last_used ON api_keys (last_used_at, id);
CREATE INDEX api_keys_user      ON api_keys (user_id, created_at, id);
CREATE INDEX api_keys_standalone ON api_keys (is_standalone, created_at, id);

CREATE TABLE usage (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id       TEXT    NOT NULL UNIQUE,
    api_key_id       TEXT    REFERENCES api_keys (id) ON DELETE SET NULL,
    provider         TEXT,
    model            TEXT,
    api_format       TEXT,
    total_tokens     INTEGER NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    cost_micros      INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    response_time_ms INTEGER CHECK (response_time_ms IS NULL OR response_time_ms >= 0),
    created_at       INTEGER NOT NULL
);
CREATE INDEX usage_key_created ON usage (api_key_id, created_at);

-- One row per key and UTC day, kept up to date by every usage write.
CREATE TABLE usage_daily (
    api_key_id      TEXT    NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day             TEXT    NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (api_key_id, day)
) WITHOUT ROWID;

-- Append-only. No foreign key: the ledger of a purged key stays as history.
CREATE TABLE balance_ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    api_key_id      TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    delta_micros    INTEGER NOT NULL,
    credited_after  INTEGER,
    note            TEXT,
    idempotency_key TEXT    UNIQUE
);
CREATE INDEX balance_ledger_key ON balance_ledger (api_key_id, id);

-- Append-only. details is a JSON object.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    api_key_id TEXT,
    details    TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_key ON audit_log (api_key_id, id);
