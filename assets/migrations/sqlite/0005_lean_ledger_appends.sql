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

-- A top-up or deduction as one statement. SQLite has no stored procedures; an INSTEAD OF
-- trigger on a view is how several writes become one statement, which is atomic and takes the
-- write lock before it reads. The store inserts into `balance_additions` a row selected from
-- the key only when the rules allow the addition, so the trigger runs for an accepted change
-- only: it adds to the credited total, then appends the ledger row and the audit row (details
-- exactly as the store's `balance_audit` writes them). Through sqlx every statement is a round
-- trip to the connection's thread: one statement instead of five (BEGIN, three writes, COMMIT)
-- is most of what a top-up costs.
CREATE VIEW balance_additions AS SELECT
    NULL AS api_key_id, NULL AS delta_micros, NULL AS delta_text, NULL AS at, NULL AS actor,
    NULL AS action, NULL AS note, NULL AS idempotency_key;

CREATE TRIGGER balance_addition INSTEAD OF INSERT ON balance_additions BEGIN
    UPDATE api_keys SET credited_micros = credited_micros + NEW.delta_micros, updated_at = NEW.at
    WHERE id = NEW.api_key_id;
    INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key)
    SELECT NEW.api_key_id, NEW.at, NEW.actor, NEW.delta_micros, credited_micros, NEW.note, NEW.idempotency_key
    FROM api_keys WHERE id = NEW.api_key_id;
    INSERT INTO audit_log (at, actor, action, api_key_id, details)
    SELECT NEW.at, NEW.actor, NEW.action, NEW.api_key_id, json_object(
        'credited_after', printf('%d.%06d', credited_micros / 1000000, credited_micros % 1000000),
        'delta', NEW.delta_text,
        'note', NEW.note)
    FROM api_keys WHERE id = NEW.api_key_id;
END;
