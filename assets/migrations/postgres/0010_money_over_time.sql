-- Money over time: a spending budget per period, a periodic refill of a prepaid balance, a
-- low-balance line per key, and the previous secret of a rolled key.
-- Periods are 'day', 'week' (from Monday) or 'month', calendar-aligned in UTC.

ALTER TABLE api_keys
    ADD COLUMN budget_micros BIGINT CHECK (budget_micros > 0),
    ADD COLUMN budget_period TEXT CHECK (budget_period IN ('day', 'week', 'month')),
    ADD COLUMN refill_micros BIGINT CHECK (refill_micros > 0),
    ADD COLUMN refill_period TEXT CHECK (refill_period IN ('day', 'week', 'month')),
    ADD COLUMN refill_mode TEXT CHECK (refill_mode IN ('add', 'reset')),
    -- The start of the period last refilled, or of the one in which the refill was set.
    ADD COLUMN refill_last_period_start TIMESTAMPTZ,
    -- NULL follows the config's alerts.low_balance; 0 is no line.
    ADD COLUMN low_balance_micros BIGINT CHECK (low_balance_micros >= 0),
    -- After a roll, the replaced secret's hash verifies until previous_key_expires_at.
    ADD COLUMN previous_key_hash TEXT,
    ADD COLUMN previous_key_expires_at TIMESTAMPTZ,
    ADD CONSTRAINT api_keys_budget_whole CHECK ((budget_micros IS NULL) = (budget_period IS NULL)),
    ADD CONSTRAINT api_keys_refill_whole CHECK (
        (refill_micros IS NULL) = (refill_period IS NULL)
        AND (refill_micros IS NULL) = (refill_mode IS NULL)
        AND (refill_micros IS NULL) = (refill_last_period_start IS NULL)),
    ADD CONSTRAINT api_keys_previous_whole CHECK ((previous_key_hash IS NULL) = (previous_key_expires_at IS NULL));

-- The sweep finds keys due a refill without reading the others.
CREATE INDEX api_keys_refill_due ON api_keys (refill_last_period_start) WHERE refill_micros IS NOT NULL;
CREATE UNIQUE INDEX api_keys_previous_hash ON api_keys (previous_key_hash) WHERE previous_key_hash IS NOT NULL;

