-- Alerts run once per key, event and period: a claim row is inserted when an alert fires
-- (insert-if-absent, so of several processes seeing the same crossing only one runs the alert
-- command), and deleted once its condition stops holding, which arms the alert again.
-- event: 'low_balance', 'exhausted' or 'budget_reached'. period: 'balance' for the first two
-- (it lasts until the balance is back at or above the line), the budget's period for the
-- third ('month:2026-12-01').
CREATE TABLE alert_claims (
    api_key_id UUID        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    event      TEXT        NOT NULL CHECK (event IN ('low_balance', 'exhausted', 'budget_reached')),
    period     TEXT        NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (api_key_id, event, period)
);
