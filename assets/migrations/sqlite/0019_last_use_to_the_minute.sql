-- A usage record moves its key's last use only when it is older than a minute (as `verify`
-- does), and writes a key without a balance only for that: moving the last use on every request
-- moved the key's entry in the list's last-use index (0002) on every usage record. The store
-- passes the time before which the last use is stale, so the minute is defined in one place.
DROP TRIGGER usage_record;
DROP VIEW usage_records;
CREATE VIEW usage_records AS SELECT
    NULL AS request_id, NULL AS api_key_id, NULL AS is_standalone, NULL AS provider, NULL AS model,
    NULL AS api_format, NULL AS total_tokens, NULL AS cost_micros, NULL AS response_time_ms,
    NULL AS created_at, NULL AS day, NULL AS last_use_stale_before;

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
    UPDATE api_keys SET used_micros = used_micros + NEW.cost_micros
    WHERE id = NEW.api_key_id AND NEW.is_standalone AND NEW.cost_micros <> 0;
    UPDATE api_keys SET last_used_at = NEW.created_at
    WHERE id = NEW.api_key_id AND (last_used_at IS NULL OR last_used_at < NEW.last_use_stale_before);
END;
