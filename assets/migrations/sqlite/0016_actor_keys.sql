-- The SHA256 fingerprint of the SSH key an admin of `keytop serve` signed in with, kept next to
-- their name in the audit log and the ledger: the name comes from an editable file, the
-- fingerprint cannot be made up. NULL for the CLI and the local TUI.
ALTER TABLE audit_log ADD COLUMN actor_key TEXT;
ALTER TABLE balance_ledger ADD COLUMN actor_key TEXT;

-- The one-statement top-up of 0005, carrying the fingerprint into both rows.
DROP TRIGGER balance_addition;
DROP VIEW balance_additions;

CREATE VIEW balance_additions AS SELECT
    NULL AS api_key_id, NULL AS delta_micros, NULL AS delta_text, NULL AS credited_after,
    NULL AS used_micros, NULL AS at, NULL AS actor, NULL AS actor_key, NULL AS action, NULL AS note,
    NULL AS idempotency_key;

CREATE TRIGGER balance_addition INSTEAD OF INSERT ON balance_additions BEGIN
    UPDATE api_keys SET credited_micros = NEW.credited_after, updated_at = NEW.at
    WHERE id = NEW.api_key_id;
    INSERT INTO balance_ledger (api_key_id, at, actor, actor_key, delta_micros, credited_after, note,
                                idempotency_key)
    VALUES (NEW.api_key_id, NEW.at, NEW.actor, NEW.actor_key, NEW.delta_micros, NEW.credited_after, NEW.note,
            NEW.idempotency_key);
    INSERT INTO audit_log (at, actor, actor_key, action, api_key_id, details)
    VALUES (NEW.at, NEW.actor, NEW.actor_key, NEW.action, NEW.api_key_id, json_object(
        'credited_after', printf('%d.%06d', NEW.credited_after / 1000000, NEW.credited_after % 1000000),
        'delta', NEW.delta_text,
        'note', NEW.note));
END;
