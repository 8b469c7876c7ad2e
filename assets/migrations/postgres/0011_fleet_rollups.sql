-- The fleet and its owners, in O(days): summing the per-key rollup over every key is
-- O(keys × days), and a purged key's rollup goes with it. Three rollups more:
--  * usage_daily_user: per owner and UTC day, all the owner's keys, purged ones included (a
--    user's spend stays theirs after their key is gone);
--  * usage_daily_fleet: per UTC day, every usage row ever recorded, in 16 shards by key so
--    that concurrent usage records of different keys do not queue on one row lock (the fleet's
--    day is the sum of its shards);
--  * usage_daily_purged: per UTC day, the part of the fleet's usage whose key is gone, written by
--    the purge and the sweep as they delete a key's rollup, so that the fleet's total splits
--    exactly into its keys' series and a "purged keys" line.
-- The usage record and the bulk load write the first two in the statement that writes the
-- per-key rollup.
CREATE TABLE usage_daily_user (
    user_id         UUID   NOT NULL,
    day             DATE   NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    tokens          BIGINT NOT NULL DEFAULT 0,
    cost_micros     BIGINT NOT NULL DEFAULT 0,
    response_ms_sum BIGINT NOT NULL DEFAULT 0,
    timed_requests  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

CREATE TABLE usage_daily_fleet (
    day             DATE     NOT NULL,
    shard           SMALLINT NOT NULL,
    requests        BIGINT   NOT NULL DEFAULT 0,
    tokens          BIGINT   NOT NULL DEFAULT 0,
    cost_micros     BIGINT   NOT NULL DEFAULT 0,
    response_ms_sum BIGINT   NOT NULL DEFAULT 0,
    timed_requests  BIGINT   NOT NULL DEFAULT 0,
    PRIMARY KEY (day, shard)
);

CREATE TABLE usage_daily_purged (
    day             DATE   PRIMARY KEY,
    requests        BIGINT NOT NULL DEFAULT 0,
    tokens          BIGINT NOT NULL DEFAULT 0,
    cost_micros     BIGINT NOT NULL DEFAULT 0,
    response_ms_sum BIGINT NOT NULL DEFAULT 0,
    timed_requests  BIGINT NOT NULL DEFAULT 0
);

-- Top spenders: a day's biggest keys (owners) are the last entries of that day in these
-- indexes, so a top-N reads a few entries per day instead of summing every rollup row.
CREATE INDEX usage_daily_day_cost ON usage_daily (day, cost_micros);
CREATE INDEX usage_daily_user_day_cost ON usage_daily_user (day, cost_micros);

-- The existing history. Owners are known for the keys that still exist; usage of keys already
-- gone (and rows written before 0004 without their key) counts for the fleet as purged.
INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
SELECT k.user_id, d.day, SUM(d.requests), SUM(d.tokens), SUM(d.cost_micros), SUM(d.response_ms_sum),
       SUM(d.timed_requests)
FROM usage_daily d JOIN api_keys k ON k.id = d.api_key_id
GROUP BY k.user_id, d.day;

INSERT INTO usage_daily_fleet (day, shard, requests, tokens, cost_micros, response_ms_sum, timed_requests)
SELECT (created_at AT TIME ZONE 'UTC')::date, 0, COUNT(*), SUM(total_tokens), SUM(cost_micros),
       COALESCE(SUM(response_time_ms), 0), COUNT(response_time_ms)
FROM usage GROUP BY 1;

INSERT INTO usage_daily_purged (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
SELECT (u.created_at AT TIME ZONE 'UTC')::date, COUNT(*), SUM(u.total_tokens), SUM(u.cost_micros),
       COALESCE(SUM(u.response_time_ms), 0), COUNT(u.response_time_ms)
FROM usage u WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = u.api_key_id)
GROUP BY 1;

-- The audit log newest first, filtered by who, by what, or from a time on.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);
