-- Money over time: a spending budget per period, a periodic refill of a prepaid balance, a
-- low-balance line per key, and the previous secret of a rolled key.
-- Periods are 'day', 'week' (from Monday) or 'month', calendar-aligned in UTC.

ALTER TABLE api_keys ADD COLUMN budget_micros INTEGER CHECK (budget_micros IS NULL OR budget_micros > 0);
ALTER TABLE api_keys ADD COLUMN budget_period TEXT
    CHECK ((budget_micros IS NULL) = (budget_period IS NULL) AND (budget_period IS NULL OR budget_period IN ('day', 'week', 'month')));
ALTER TABLE api_keys ADD COLUMN refill_micros INTEGER CHECK (refill_micros IS NULL OR refill_micros > 0);
ALTER TABLE api_keys ADD COLUMN refill_period TEXT
    CHECK ((refill_micros IS NULL) = (refill_period IS NULL) AND (refill_period IS NULL OR refill_period IN ('day', 'week', 'month')));
ALTER TABLE api_keys ADD COLUMN refill_mode TEXT
    CHECK ((refill_micros IS NULL) = (refill_mode IS NULL) AND (refill_mode IS NULL OR refill_mode IN ('add', 'reset')));
-- The start (epoch ms) of the period last refilled, or of the one in which the refill was set.
ALTER TABLE api_keys ADD COLUMN refill_last_period_start INTEGER
    CHECK ((refill_micros IS NULL) = (refill_last_period_start IS NULL));
-- NULL follows the config's alerts.low_balance; 0 is no line.
ALTER TABLE api_keys ADD COLUMN low_balance_micros INTEGER CHECK (low_balance_micros IS NULL OR low_balance_micros >= 0);
-- After a roll, the replaced secret's hash verifies until previous_key_expires_at (epoch ms).
ALTER TABLE api_keys ADD COLUMN previous_key_hash TEXT;
ALTER TABLE api_keys ADD COLUMN previous_key_expires_at INTEGER
    CHECK ((previous_key_hash IS NULL) = (previous_key_expires_at IS NULL));

-- The sweep finds keys due a refill without reading the others.
CREATE INDEX api_keys_refill_due ON api_keys (refill_last_period_start) WHERE refill_micros IS NOT NULL;
CREATE UNIQUE INDEX api_keys_previous_hash ON api_keys (previous_key_hash) WHERE previous_key_hash IS NOT NULL;

