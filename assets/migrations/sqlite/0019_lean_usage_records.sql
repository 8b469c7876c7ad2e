-- A usage record writes fewer pages. What it wrote beyond the usage row and its key's day:
--  * its key's last use, moving the key's entry in the list's last-use index (0002) on every
--    request: now only when the last use is older than a minute, as `verify` does (the store
--    passes the time before which it is stale, so the minute is defined in one place), and a
--    key without a balance is not written at all otherwise;
--  * its key's and its owner's entries in the (day, cost) indexes of the top lists (0011),
--    moved on every request: the top lists now read an index on (day, cost_rank), a coarse rank
--    of the day's cost that only grows with it: its number of digits, then its first digit
--    (1,500 micros rank 41, 2,000 rank 42, 10,000 rank 51). An entry moves only when its day's
--    cost reaches the next rank, at most nine times per power of ten. The top lists take every
--    row at or above a rank (a superset of the rows at or above a cost) and sum exact totals as
--    before; src/store/sqlite/fleet.rs computes the same rank (cost_rank!);
--  * its owner's and the fleet's days through triggers on the per-key rollup (0011, 0017),
--    which looked the owner up again and subtracted the old sums from the new: the usage record
--    now adds its own numbers to them directly, with the owner read with the key; a bulk load
--    writes them itself (src/store/sqlite/bulk.rs).
ALTER TABLE usage_daily ADD COLUMN cost_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_user ADD COLUMN cost_rank INTEGER NOT NULL DEFAULT 0;
UPDATE usage_daily SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
UPDATE usage_daily_user SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
DROP INDEX usage_daily_day_cost;
DROP INDEX usage_daily_user_day_cost;
CREATE INDEX usage_daily_day_rank ON usage_daily (day, cost_rank);
CREATE INDEX usage_daily_user_day_rank ON usage_daily_user (day, cost_rank);

-- A row's rank moves when its cost reaches the next rank. The usage record and the bulk load set
-- it on a new row; these triggers catch any other writer.
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

DROP TRIGGER usage_daily_insert;
DROP TRIGGER usage_daily_update;
DROP TRIGGER usage_record;
DROP VIEW usage_records;
CREATE VIEW usage_records AS SELECT
    NULL AS request_id, NULL AS api_key_id, NULL AS user_id, NULL AS is_standalone, NULL AS provider,
    NULL AS model, NULL AS api_format, NULL AS total_tokens, NULL AS cost_micros, NULL AS response_time_ms,
    NULL AS created_at, NULL AS day, NULL AS last_use_stale_before;

CREATE TRIGGER usage_record INSTEAD OF INSERT ON usage_records BEGIN
    INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros,
                       response_time_ms, created_at)
    VALUES (NEW.request_id, NEW.api_key_id, NEW.provider, NEW.model, NEW.api_format, NEW.total_tokens,
            NEW.cost_micros, NEW.response_time_ms, NEW.created_at);
    INSERT INTO usage_daily (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                             last_used_at, cost_rank)
    VALUES (NEW.api_key_id, NEW.day, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL, NEW.created_at, CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END)
    ON CONFLICT (api_key_id, day) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at);
    INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                                  last_used_at, cost_rank)
    VALUES (NEW.user_id, NEW.day, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL, NEW.created_at, CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END)
    ON CONFLICT (user_id, day) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at);
    INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    VALUES (NEW.day, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL)
    ON CONFLICT (day) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
    -- Charged even past the balance: the request has already been served.
    UPDATE api_keys SET used_micros = used_micros + NEW.cost_micros
    WHERE id = NEW.api_key_id AND NEW.is_standalone AND NEW.cost_micros <> 0;
    UPDATE api_keys SET last_used_at = NEW.created_at
    WHERE id = NEW.api_key_id AND (last_used_at IS NULL OR last_used_at < NEW.last_use_stale_before);
END;
