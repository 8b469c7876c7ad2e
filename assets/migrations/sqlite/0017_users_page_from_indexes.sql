-- A page of users in index reads only. Counting a user's keys and finding their last use read
-- every key row of the users on the page (a heavy owner has thousands of keys):
--  * the counts come from an index on (owner, enabled, expiry) alone;
--  * the last use comes from the owner's rollup (0011), which now keeps the latest use of its
--    day: a user's last use is the largest of their few rollup rows, purged keys included (as
--    their spend is). An index on the keys' last use would move on every usage record instead.
-- The per-key rollup keeps its day's latest use too, so that the triggers of 0011, which see
-- only the per-key rollup's row, can carry it to the owner's.
CREATE INDEX api_keys_user_status ON api_keys (user_id, is_active, expires_at);

ALTER TABLE usage_daily ADD COLUMN last_used_at INTEGER;
ALTER TABLE usage_daily_user ADD COLUMN last_used_at INTEGER;

-- The usage record of 0006, keeping the day's latest use.
DROP TRIGGER usage_record;
CREATE TRIGGER usage_record INSTEAD OF INSERT ON usage_records BEGIN
    INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros,
                       response_time_ms, created_at)
    VALUES (NEW.request_id, NEW.api_key_id, NEW.provider, NEW.model, NEW.api_format, NEW.total_tokens,
            NEW.cost_micros, NEW.response_time_ms, NEW.created_at);
    INSERT INTO usage_daily (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                             last_used_at)
    VALUES (NEW.api_key_id, NEW.day, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL, NEW.created_at)
    ON CONFLICT (api_key_id, day) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at);
    -- Charged even past the balance: the request has already been served.
    UPDATE api_keys SET used_micros = used_micros + CASE WHEN NEW.is_standalone THEN NEW.cost_micros ELSE 0 END,
        last_used_at = MAX(COALESCE(last_used_at, NEW.created_at), NEW.created_at)
    WHERE id = NEW.api_key_id;
END;

-- The triggers of 0011, carrying the latest use to the owner's day (SQLite's MAX of a NULL is
-- NULL, hence the COALESCEs: either side may not know it).
DROP TRIGGER usage_daily_insert;
CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_daily BEGIN
    INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                                  last_used_at)
    SELECT user_id, NEW.day, NEW.requests, NEW.tokens, NEW.cost_micros, NEW.response_ms_sum, NEW.timed_requests,
           NEW.last_used_at
    FROM api_keys WHERE id = NEW.api_key_id
    ON CONFLICT (user_id, day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), COALESCE(excluded.last_used_at, last_used_at));
    INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    VALUES (NEW.day, NEW.requests, NEW.tokens, NEW.cost_micros, NEW.response_ms_sum, NEW.timed_requests)
    ON CONFLICT (day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
END;

DROP TRIGGER usage_daily_update;
CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_daily BEGIN
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

-- The existing history: each key's last use goes on its rollup row of that day, and through the
-- update trigger above (zero sums) on its owner's.
UPDATE usage_daily SET last_used_at = k.last_used_at
FROM api_keys k
WHERE k.id = usage_daily.api_key_id AND k.last_used_at IS NOT NULL
  AND usage_daily.day = strftime('%Y-%m-%d', k.last_used_at / 1000, 'unixepoch');
