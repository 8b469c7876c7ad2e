-- The idempotency index keeps only the ledger rows that have a key (most have none), so a top-up
-- without one writes one index entry less. Unique as before: a reused key still fails the insert.
CREATE UNIQUE INDEX balance_ledger_idempotency_key ON balance_ledger (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE balance_ledger DROP CONSTRAINT balance_ledger_idempotency_key_key;
