-- The top lists read each day's biggest spenders from an index on (day, cost): every usage
-- record moved its key's and its owner's entries in those two indexes, two more pages written
-- per record. They now read an index on (day, cost_rank), a coarse rank of the day's cost that
-- only grows with it: its number of digits, then its first digit (1,500 micros rank 41, 2,000
-- rank 42, 10,000 rank 51). A key's entry moves only when its day's cost reaches the next rank
-- (at most nine times per power of ten) instead of on every request. The top lists take every
-- row at or above a rank, a superset of the rows at or above a cost, then sum exact totals as
-- before. The same rank is written in src/store/sqlite/fleet.rs (cost_rank!).
ALTER TABLE usage_daily ADD COLUMN cost_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_user ADD COLUMN cost_rank INTEGER NOT NULL DEFAULT 0;

-- The owner's and fleet's rollups follow the per-key rollup's sums (0011, 0017), not its rank.
DROP TRIGGER usage_daily_update;
CREATE TRIGGER usage_daily_update
AFTER UPDATE OF requests, tokens, cost_micros, response_ms_sum, timed_requests, last_used_at ON usage_daily BEGIN
    INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                                  last_used_at)
    SELECT user_id, NEW.day, NEW.requests - OLD.requests, NEW.tokens - OLD.tokens,
           NEW.cost_micros - OLD.cost_micros, NEW.response_ms_sum - OLD.response_ms_sum,
           NEW.timed_requests - OLD.timed_requests, NEW.last_used_at
    FROM api_keys WHERE id = NEW.api_key_id
    ON CONFLICT (user_id, day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), COALESCE(excluded.last_used_at, last_used_at));
    INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    VALUES (NEW.day, NEW.requests - OLD.requests, NEW.tokens - OLD.tokens, NEW.cost_micros - OLD.cost_micros,
            NEW.response_ms_sum - OLD.response_ms_sum, NEW.timed_requests - OLD.timed_requests)
    ON CONFLICT (day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
END;

UPDATE usage_daily SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
UPDATE usage_daily_user SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
DROP INDEX usage_daily_day_cost;
DROP INDEX usage_daily_user_day_cost;
CREATE INDEX usage_daily_day_rank ON usage_daily (day, cost_rank);
CREATE INDEX usage_daily_user_day_rank ON usage_daily_user (day, cost_rank);

-- A row's rank, set as it is written and moved when its cost reaches the next rank. On a new
-- row the update rewrites a page its insert already wrote.
CREATE TRIGGER usage_daily_rank_insert AFTER INSERT ON usage_daily
WHEN NEW.cost_rank <> CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END BEGIN
    UPDATE usage_daily SET cost_rank = CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE api_key_id = NEW.api_key_id AND day = NEW.day;
END;
CREATE TRIGGER usage_daily_rank_update AFTER UPDATE OF cost_micros ON usage_daily
WHEN NEW.cost_rank <> CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END BEGIN
    UPDATE usage_daily SET cost_rank = CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE api_key_id = NEW.api_key_id AND day = NEW.day;
END;
CREATE TRIGGER usage_daily_user_rank_insert AFTER INSERT ON usage_daily_user
WHEN NEW.cost_rank <> CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END BEGIN
    UPDATE usage_daily_user SET cost_rank = CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE user_id = NEW.user_id AND day = NEW.day;
END;
CREATE TRIGGER usage_daily_user_rank_update AFTER UPDATE OF cost_micros ON usage_daily_user
WHEN NEW.cost_rank <> CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END BEGIN
    UPDATE usage_daily_user SET cost_rank = CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE user_id = NEW.user_id AND day = NEW.day;
END;
