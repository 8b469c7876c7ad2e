-- A charge of a prepaid key no longer moves its entry in the low-balance list's index. 0018
-- indexed the remaining balance itself, so every charge of a prepaid, enabled key deleted and
-- inserted an entry (about a tenth of a usage record's work). The index now holds a coarse rank
-- of the remaining balance, kept in a column that changes only when the balance crosses into the
-- next rank: its number of digits, then its first three digits (negated below zero; 0 at zero;
-- NULL without a balance). A key charged 0.0015 USD a request at 5 USD left crosses a rank every
-- seven requests, at 500 USD every 667. The rank never decreases as the balance grows, so the list
-- walks the ranks up to its largest line's in index order and sorts only each rank's keys by their
-- exact balance (src/store/sqlite/attention.rs; src/store/sqlite.rs computes the rank in
-- balance_rank!, src/store/sqlite/bulk.rs in Rust for the keys it inserts).
ALTER TABLE api_keys ADD COLUMN balance_rank INTEGER;
UPDATE api_keys SET balance_rank = CASE WHEN (credited_micros - used_micros) > 0 THEN length(credited_micros - used_micros) * 1000 + CAST(substr(credited_micros - used_micros, 1, 3) AS INTEGER) WHEN (credited_micros - used_micros) < 0 THEN -(length(used_micros - credited_micros) * 1000 + CAST(substr(used_micros - credited_micros, 1, 3) AS INTEGER)) WHEN credited_micros = used_micros THEN 0 END;
DROP INDEX api_keys_prepaid_remaining;
CREATE INDEX api_keys_prepaid_balance_rank ON api_keys (balance_rank)
    WHERE is_standalone = 1 AND is_active = 1 AND credited_micros IS NOT NULL;

-- The rank follows the balance whoever writes it: a charge, a top-up, an edit, a load. A write
-- that leaves the rank as it was costs the comparison only; the rank's own update fires neither.
CREATE TRIGGER api_keys_balance_rank_insert AFTER INSERT ON api_keys
WHEN NEW.balance_rank IS NOT (CASE WHEN (NEW.credited_micros - NEW.used_micros) > 0 THEN length(NEW.credited_micros - NEW.used_micros) * 1000 + CAST(substr(NEW.credited_micros - NEW.used_micros, 1, 3) AS INTEGER) WHEN (NEW.credited_micros - NEW.used_micros) < 0 THEN -(length(NEW.used_micros - NEW.credited_micros) * 1000 + CAST(substr(NEW.used_micros - NEW.credited_micros, 1, 3) AS INTEGER)) WHEN NEW.credited_micros = NEW.used_micros THEN 0 END) BEGIN
    UPDATE api_keys SET balance_rank = CASE WHEN (NEW.credited_micros - NEW.used_micros) > 0 THEN length(NEW.credited_micros - NEW.used_micros) * 1000 + CAST(substr(NEW.credited_micros - NEW.used_micros, 1, 3) AS INTEGER) WHEN (NEW.credited_micros - NEW.used_micros) < 0 THEN -(length(NEW.used_micros - NEW.credited_micros) * 1000 + CAST(substr(NEW.used_micros - NEW.credited_micros, 1, 3) AS INTEGER)) WHEN NEW.credited_micros = NEW.used_micros THEN 0 END WHERE id = NEW.id;
END;
CREATE TRIGGER api_keys_balance_rank_update AFTER UPDATE OF credited_micros, used_micros ON api_keys
WHEN NEW.balance_rank IS NOT (CASE WHEN (NEW.credited_micros - NEW.used_micros) > 0 THEN length(NEW.credited_micros - NEW.used_micros) * 1000 + CAST(substr(NEW.credited_micros - NEW.used_micros, 1, 3) AS INTEGER) WHEN (NEW.credited_micros - NEW.used_micros) < 0 THEN -(length(NEW.used_micros - NEW.credited_micros) * 1000 + CAST(substr(NEW.used_micros - NEW.credited_micros, 1, 3) AS INTEGER)) WHEN NEW.credited_micros = NEW.used_micros THEN 0 END) BEGIN
    UPDATE api_keys SET balance_rank = CASE WHEN (NEW.credited_micros - NEW.used_micros) > 0 THEN length(NEW.credited_micros - NEW.used_micros) * 1000 + CAST(substr(NEW.credited_micros - NEW.used_micros, 1, 3) AS INTEGER) WHEN (NEW.credited_micros - NEW.used_micros) < 0 THEN -(length(NEW.used_micros - NEW.credited_micros) * 1000 + CAST(substr(NEW.used_micros - NEW.credited_micros, 1, 3) AS INTEGER)) WHEN NEW.credited_micros = NEW.used_micros THEN 0 END WHERE id = NEW.id;
END;
