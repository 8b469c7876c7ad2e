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
-- the key only when the rules allow the addition, carrying the key's new credited total and its
-- used total, so the trigger runs for an accepted change only: it stores the new total, then
-- appends the ledger row and the audit row (details exactly as `AuditRecord::for_adjustment`
-- writes them). Through sqlx every statement is a round trip to the connection's thread: one
-- statement instead of five (BEGIN, three writes, COMMIT) is most of what a top-up costs.
CREATE VIEW balance_additions AS SELECT
    NULL AS api_key_id, NULL AS delta_micros, NULL AS delta_text, NULL AS credited_after,
    NULL AS used_micros, NULL AS at, NULL AS actor, NULL AS action, NULL AS note,
    NULL AS idempotency_key;

CREATE TRIGGER balance_addition INSTEAD OF INSERT ON balance_additions BEGIN
    UPDATE api_keys SET credited_micros = NEW.credited_after, updated_at = NEW.at
    WHERE id = NEW.api_key_id;
    INSERT INTO balance_ledger (api_key_id, at, actor, delta_micros, credited_after, note, idempotency_key)
    VALUES (NEW.api_key_id, NEW.at, NEW.actor, NEW.delta_micros, NEW.credited_after, NEW.note, NEW.idempotency_key);
    INSERT INTO audit_log (at, actor, action, api_key_id, details)
    VALUES (NEW.at, NEW.actor, NEW.action, NEW.api_key_id, json_object(
        'credited_after', printf('%d.%06d', NEW.credited_after / 1000000, NEW.credited_after % 1000000),
        'delta', NEW.delta_text,
        'note', NEW.note));
END;

-- A usage record as one statement, for the same reason: the store inserts into `usage_records`
-- a row selected from the key only when the key exists and the request id is new (carrying
-- whether the key is prepaid), and the trigger appends the usage row, counts it in the day's
-- rollup and charges the key (a prepaid key's used total; any key's last use).
CREATE VIEW usage_records AS SELECT
    NULL AS request_id, NULL AS api_key_id, NULL AS is_standalone, NULL AS provider, NULL AS model,
    NULL AS api_format, NULL AS total_tokens, NULL AS cost_micros, NULL AS response_time_ms,
    NULL AS created_at, NULL AS day;

CREATE TRIGGER usage_record INSTEAD OF INSERT ON usage_records BEGIN
    INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros,
                       response_time_ms, created_at)
    VALUES (NEW.request_id, NEW.api_key_id, NEW.provider, NEW.model, NEW.api_format, NEW.total_tokens,
            NEW.cost_micros, NEW.response_time_ms, NEW.created_at);
    INSERT INTO usage_daily (api_key_id, day, requests, tokens, cost_micros, response_ms_sum)
    VALUES (NEW.api_key_id, NEW.day, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0))
    ON CONFLICT (api_key_id, day) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum;
    -- Charged even past the balance: the request has already been served.
    UPDATE api_keys SET used_micros = used_micros + CASE WHEN NEW.is_standalone THEN NEW.cost_micros ELSE 0 END,
        last_used_at = MAX(COALESCE(last_used_at, NEW.created_at), NEW.created_at)
    WHERE id = NEW.api_key_id;
END;
