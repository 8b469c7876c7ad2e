-- A key's average response time divides the sum of its response times by the requests that
-- reported one. It divided by every request, so a request recorded without a response time
-- counted as 0 ms and pulled the average down. Each rollup row now also counts its timed
-- requests; the rows written before are counted again from the usage rows they sum up (usage
-- rows are never deleted, and a rollup goes with its key).
ALTER TABLE usage_daily ADD COLUMN timed_requests BIGINT NOT NULL DEFAULT 0;

UPDATE usage_daily d SET timed_requests = timed.requests
FROM (SELECT api_key_id, (created_at AT TIME ZONE 'UTC')::date AS day, COUNT(*) AS requests
      FROM usage WHERE response_time_ms IS NOT NULL AND api_key_id IS NOT NULL
      GROUP BY 1, 2) AS timed
WHERE d.api_key_id = timed.api_key_id AND d.day = timed.day;
