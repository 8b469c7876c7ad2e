-- A usage record's updates of its key's and its owner's days become HOT updates: a new row
-- version on the same page and no index entry, where each wrote a new entry in the rollup's
-- primary key and in its (day, cost) index. An update is HOT only when no indexed value changes,
-- and every one changed the day's sums, which those indexes held:
--  * the top lists read an index on (day, cost_rank), the coarse rank of the day's cost that
--    SQLite's 0019 introduced (its number of digits, then its first digit): it changes at most
--    nine times per power of ten, and the spender's id rides in the index so that the candidates
--    of a day are read from it alone. The top lists take every row at or above a rank and sum
--    exact totals from the rows (src/store/postgres/fleet.rs);
--  * the primary keys no longer carry the sums (0017): the top lists and the users page read
--    them from the rows of the range they sum, and the users page reads a user's last use from
--    their latest day alone.
-- (SQLite's 0020 ranks the keys' remaining balances for the low-balance list's index; there is
-- no such index here, 0018.)
-- Whoever writes a rollup row sets its rank with keytop_cost_rank (the usage record, the bulk
-- load); SQLite's cost_rank! computes the same.
CREATE FUNCTION keytop_cost_rank(micros BIGINT) RETURNS SMALLINT LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN micros > 0 THEN (length(micros::text) * 10 + left(micros::text, 1)::int)::smallint
           ELSE 0::smallint END;

ALTER TABLE usage_daily ADD COLUMN cost_rank SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_user ADD COLUMN cost_rank SMALLINT NOT NULL DEFAULT 0;
UPDATE usage_daily SET cost_rank = keytop_cost_rank(cost_micros) WHERE cost_micros > 0;
UPDATE usage_daily_user SET cost_rank = keytop_cost_rank(cost_micros) WHERE cost_micros > 0;

DROP INDEX usage_daily_day_cost;
DROP INDEX usage_daily_user_day_cost;
CREATE INDEX usage_daily_day_rank ON usage_daily (day, cost_rank) INCLUDE (api_key_id);
CREATE INDEX usage_daily_user_day_rank ON usage_daily_user (day, cost_rank) INCLUDE (user_id);
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey,
    ADD CONSTRAINT usage_daily_pkey PRIMARY KEY (api_key_id, day);
ALTER TABLE usage_daily_user DROP CONSTRAINT usage_daily_user_pkey,
    ADD CONSTRAINT usage_daily_user_pkey PRIMARY KEY (user_id, day);
