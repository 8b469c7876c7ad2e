-- A usage record reads and writes less of its key.
--
-- A charge no longer moves an index entry unless its key is near its line. 0018 indexed every
-- prepaid, enabled key's remaining balance, so each charge of such a key deleted and inserted an
-- entry: about a tenth of a usage record's work. The index now holds only the keys whose
-- remaining balance is under their own line or under 10 USD (twice the default line of
-- `alerts.low_balance`), whichever is higher: a charge of a key above both evaluates this
-- condition for the old and the new row and writes nothing. The low-balance list reads it in
-- order of remaining balance whenever its default line is at most 10 USD
-- (src/store/sqlite/attention.rs, which holds the same condition); above that it reads every
-- prepaid key.
DROP INDEX api_keys_prepaid_remaining;
CREATE INDEX api_keys_low_balance_watch ON api_keys (credited_micros - used_micros, id)
    WHERE is_standalone = 1 AND is_active = 1 AND credited_micros IS NOT NULL
      AND credited_micros - used_micros < MAX(COALESCE(low_balance_micros, 0), 10000000);

-- A usage record no longer looks its key up a second time to find its last use fresh: the
-- statement that selects the key's owner (src/store/sqlite/usage.rs) passes its last use too, and
-- the trigger's update of the last use, whose condition on it no longer needs the row, is skipped
-- within the minute without a read. The rest of the trigger is 0019's.
DROP TRIGGER usage_record;
DROP VIEW usage_records;
CREATE VIEW usage_records AS SELECT
    NULL AS request_id, NULL AS api_key_id, NULL AS user_id, NULL AS is_standalone, NULL AS provider,
    NULL AS model, NULL AS api_format, NULL AS total_tokens, NULL AS cost_micros, NULL AS response_time_ms,
    NULL AS created_at, NULL AS day, NULL AS last_use_stale_before, NULL AS key_last_used_at;

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
    -- The key's last use as the statement read it: within the minute this is false before any read.
    UPDATE api_keys SET last_used_at = NEW.created_at
    WHERE (NEW.key_last_used_at IS NULL OR NEW.key_last_used_at < NEW.last_use_stale_before)
      AND id = NEW.api_key_id AND (last_used_at IS NULL OR last_used_at < NEW.last_use_stale_before);
END;
