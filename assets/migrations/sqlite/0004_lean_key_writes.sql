-- Usage rows keep the id of their key after it is purged or swept, as the ledger does: history
-- that names the key it was. With `ON DELETE SET NULL`, deleting a key rewrote every usage row
-- it ever had (and their index entries), so a sweep's cost grew with the usage history of the
-- keys it deleted. Writers check the key themselves, inside their write transaction.
--
-- SQLite cannot drop a constraint: the table is rebuilt without it, keeping every row and id
-- (the AUTOINCREMENT counter follows the rename).
CREATE TABLE usage_without_key_reference (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id       TEXT    NOT NULL UNIQUE,
    api_key_id       TEXT,
    provider         TEXT,
    model            TEXT,
    api_format       TEXT,
    total_tokens     INTEGER NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    cost_micros      INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    response_time_ms INTEGER CHECK (response_time_ms IS NULL OR response_time_ms >= 0),
    created_at       INTEGER NOT NULL
);
INSERT INTO usage_without_key_reference SELECT * FROM usage;
DROP TABLE usage;
ALTER TABLE usage_without_key_reference RENAME TO usage;
CREATE INDEX usage_key_created ON usage (api_key_id, created_at);
