-- The ledger and the audit log are append-only: no row is ever deleted, so the next id is always
-- one past the largest and AUTOINCREMENT guards nothing. Without it an append no longer rewrites
-- the `sqlite_sequence` row of its table. The idempotency index keeps only the rows that have
-- a key (most have none), so a top-up without one writes one index entry less.
--
-- SQLite cannot drop AUTOINCREMENT or a column's UNIQUE: both tables are rebuilt, keeping every
-- row and id.
CREATE TABLE balance_ledger_rebuilt (
    id              INTEGER PRIMARY KEY,
    api_key_id      TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    delta_micros    INTEGER NOT NULL,
    credited_after  INTEGER,
    note            TEXT,
    idempotency_key TEXT
);
INSERT INTO balance_ledger_rebuilt SELECT * FROM balance_ledger;
DROP TABLE balance_ledger;
ALTER TABLE balance_ledger_rebuilt RENAME TO balance_ledger;
CREATE INDEX balance_ledger_key ON balance_ledger (api_key_id, id);
CREATE UNIQUE INDEX balance_ledger_idempotency_key ON balance_ledger (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE audit_log_rebuilt (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    api_key_id TEXT,
    details    TEXT    NOT NULL DEFAULT '{}'
);
INSERT INTO audit_log_rebuilt SELECT * FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;
CREATE INDEX audit_log_key ON audit_log (api_key_id, id);
