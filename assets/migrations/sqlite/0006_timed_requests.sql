-- A key's average response time divides the sum of its response times by the requests that
-- reported one. It divided by every request, so a request recorded without a response time
-- counted as 0 ms and pulled the average down. Each rollup row now also counts its timed
-- requests; the rows written before are counted again from the usage rows they sum up (usage
-- rows are never deleted, and a rollup goes with its key).
ALTER TABLE usage_daily ADD COLUMN timed_requests INTEGER NOT NULL DEFAULT 0;

UPDATE usage_daily SET timed_requests = (
    SELECT COUNT(u.response_time_ms) FROM usage u
    WHERE u.api_key_id = usage_daily.api_key_id
      AND u.created_at >= unixepoch(usage_daily.day) * 1000
      AND u.created_at < unixepoch(usage_daily.day, '+1 day') * 1000
);

-- The usage record of migration 0005, counting the request as timed when it has a response time.
DROP TRIGGER usage_record;
CREATE TRIGGER usage_record INSTEAD OF INSERT ON usage_records BEGIN
    INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros,
                       response_time_ms, created_at)
    VALUES (NEW.request_id, NEW.api_key_id, NEW.provider, NEW.model, NEW.api_format, NEW.total_tokens,
            NEW.cost_micros, NEW.response_time_ms, NEW.created_at);
    INSERT INTO usage_daily (api_key_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    VALUES (NEW.api_key_id, NEW.day, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL)
    ON CONFLICT (api_key_id, day) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
    -- Charged even past the balance: the request has already been served.
    UPDATE api_keys SET used_micros = used_micros + CASE WHEN NEW.is_standalone THEN NEW.cost_micros ELSE 0 END,
        last_used_at = MAX(COALESCE(last_used_at, NEW.created_at), NEW.created_at)
    WHERE id = NEW.api_key_id;
END;
