-- keytop schema, PostgreSQL flavour. Same tables and columns as the SQLite flavour, with native
-- types: uuid, timestamptz, jsonb, date. Money is BIGINT micro-dollars.

CREATE TABLE users (
    id         UUID        PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    is_active  BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id                    UUID        PRIMARY KEY,
    user_id               UUID        NOT NULL REFERENCES users (id),
    key_hash              TEXT        NOT NULL UNIQUE,
    key_ciphertext        TEXT        NOT NULL,
    key_hint              TEXT        NOT NULL,
    name                  TEXT        NOT NULL,
    -- JSON arrays of strings; NULL means unrestricted, never an empty list or JSON null.
    allowed_providers     JSONB       CHECK (allowed_providers IS NULL OR jsonb_typeof(allowed_providers) = 'array' AND allowed_providers <> '[]'::jsonb),
    allowed_api_formats   JSONB       CHECK (allowed_api_formats IS NULL OR jsonb_typeof(allowed_api_formats) = 'array' AND allowed_api_formats <> '[]'::jsonb),
    allowed_models        JSONB       CHECK (allowed_models IS NULL OR jsonb_typeof(allowed_models) = 'array' AND allowed_models <> '[]'::jsonb),
    rate_limit            BIGINT      CHECK (rate_limit IS NULL OR rate_limit > 0),
    concurrent_limit      BIGINT      CHECK (concurrent_limit IS NULL OR concurrent_limit > 0),
    expires_at            TIMESTAMPTZ,
    is_standalone         BOOLEAN     NOT NULL DEFAULT FALSE,
    credited_micros       BIGINT,
    used_micros           BIGINT      NOT NULL DEFAULT 0,
    auto_delete_on_expiry BOOLEAN,
    is_active             BOOLEAN     NOT NULL DEFAULT TRUE,
    last_used_at          TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

-- Keyset paging for each sort order, and the lookups of the sweep and of a user's keys.
CREATE INDEX api_keys_created    ON api_keys (created_at, id);
CREATE INDEX api_keys_name       ON api_keys (name, id);
CREATE INDEX api_keys_expires    ON api_keys (expires_at, id);
CREATE INDEX api_keys_last_used  ON api_keys (last_used_at, id);
CREATE INDEX api_keys_user       ON api_keys (user_id, created_at, id);
CREATE INDEX api_keys_standalone ON api_keys (is_standalone, created_at, id);

CREATE TABLE usage (
    id               BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id       TEXT        NOT NULL UNIQUE,
    api_key_id       UUID        REFERENCES api_keys (id) ON DELETE SET NULL,
    provider         TEXT,
    model            TEXT,
    api_format       TEXT,
    total_tokens     BIGINT      NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    cost_micros      BIGINT      NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    response_time_ms BIGINT      CHECK (response_time_ms IS NULL OR response_time_ms >= 0),
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_key_created ON usage (api_key_id, created_at);

-- One row per key and UTC day, kept up to date by every usage write.
CREATE TABLE usage_daily (
    api_key_id      UUID   NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day             DATE   NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    tokens          BIGINT NOT NULL DEFAULT 0,
    cost_micros     BIGINT NOT NULL DEFAULT 0,
    response_ms_sum BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (api_key_id, day)
);

-- Append-only. No foreign key: the ledger of a purged key stays as history.
CREATE TABLE balance_ledger (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_key_id      UUID        NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    actor           TEXT        NOT NULL,
    delta_micros    BIGINT      NOT NULL,
    credited_after  BIGINT,
    note            TEXT,
    idempotency_key TEXT        UNIQUE
);
CREATE INDEX balance_ledger_key ON balance_ledger (api_key_id, id);

-- Append-only. details is a JSON object.
CREATE TABLE audit_log (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT        NOT NULL,
    action     TEXT        NOT NULL,
    api_key_id UUID,
    details    JSONB       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_key ON audit_log (api_key_id, id);
