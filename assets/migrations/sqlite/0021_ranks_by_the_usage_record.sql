-- A usage record keeps its rollups' ranks itself, and charges its key by row id.
--
-- 0019's rank triggers fired after every update of a day's cost, the key's and the owner's, to
-- move the row's rank (src/store/sqlite/fleet.rs) when its cost reached the next one: two trigger
-- programs started per usage record, each to find nothing to do (4-5 % of the usage record at
-- full scale, BENCHMARKS.md). The usage record now tests the rank after each of its two upserts,
-- a look-up of the row it has just written that writes nothing until the cost reaches the next
-- rank. The update triggers go: the bulk load computes the ranks it writes
-- (src/store/sqlite/bulk.rs), and no other statement updates a day's cost. 0019's insert
-- triggers stay for any other writer of new rows.
--
-- The statement that reads the key (src/store/sqlite/usage.rs) also passes its row id, so the
-- charge and the last use update the key's row without looking its id up in the id index again.
DROP TRIGGER usage_daily_rank_update;
DROP TRIGGER usage_daily_user_rank_update;

DROP TRIGGER usage_record;
DROP VIEW usage_records;
CREATE VIEW usage_records AS SELECT
    NULL AS request_id, NULL AS api_key_id, NULL AS user_id, NULL AS is_standalone, NULL AS provider,
    NULL AS model, NULL AS api_format, NULL AS total_tokens, NULL AS cost_micros, NULL AS response_time_ms,
    NULL AS created_at, NULL AS day, NULL AS last_use_stale_before, NULL AS key_last_used_at, NULL AS key_rowid;

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
    UPDATE usage_daily SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE api_key_id = NEW.api_key_id AND day = NEW.day
      AND cost_rank <> CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
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
    UPDATE usage_daily_user SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE user_id = NEW.user_id AND day = NEW.day
      AND cost_rank <> CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
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
    WHERE rowid = NEW.key_rowid AND NEW.is_standalone AND NEW.cost_micros <> 0;
    -- The key's last use as the statement read it: within the minute this is false before any read.
    UPDATE api_keys SET last_used_at = NEW.created_at
    WHERE (NEW.key_last_used_at IS NULL OR NEW.key_last_used_at < NEW.last_use_stale_before)
      AND rowid = NEW.key_rowid AND (last_used_at IS NULL OR last_used_at < NEW.last_use_stale_before);
END;
