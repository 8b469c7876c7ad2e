-- The fleet and its owners, in O(days): summing the per-key rollup over every key is
-- O(keys × days), and a purged key's rollup goes with it. Three rollups more:
--  * usage_daily_user: per owner and UTC day, all the owner's keys, purged ones included (a
--    user's spend stays theirs after their key is gone);
--  * usage_daily_fleet: per UTC day, every usage row ever recorded;
--  * usage_daily_purged: per UTC day, the part of the fleet's usage whose key is gone, written by
--    the purge and the sweep as they delete a key's rollup, so that the fleet's total splits
--    exactly into its keys' series and a "purged keys" line.
-- The first two are kept by triggers on usage_daily, so every writer of the per-key rollup (a
-- usage record, a bulk load) writes them in the same statement and none can forget them.
CREATE TABLE usage_daily_user (
    user_id         TEXT    NOT NULL,
    day             TEXT    NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    timed_requests  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

CREATE TABLE usage_daily_fleet (
    day             TEXT    PRIMARY KEY NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    timed_requests  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE usage_daily_purged (
    day             TEXT    PRIMARY KEY NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    timed_requests  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Top spenders: a day's biggest keys (owners) are the first entries of that day in these
-- indexes, so a top-N reads a few entries per day instead of summing every rollup row.
CREATE INDEX usage_daily_day_cost ON usage_daily (day, cost_micros);
CREATE INDEX usage_daily_user_day_cost ON usage_daily_user (day, cost_micros);

-- The existing history. Owners are known for the keys that still exist; usage of keys already
-- gone (and rows written before 0005 without their key) counts for the fleet as purged.
INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
SELECT k.user_id, d.day, SUM(d.requests), SUM(d.tokens), SUM(d.cost_micros), SUM(d.response_ms_sum),
       SUM(d.timed_requests)
FROM usage_daily d JOIN api_keys k ON k.id = d.api_key_id
GROUP BY k.user_id, d.day;

INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
SELECT strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), COUNT(*), SUM(total_tokens), SUM(cost_micros),
       COALESCE(SUM(response_time_ms), 0), COUNT(response_time_ms)
FROM usage GROUP BY 1;

INSERT INTO usage_daily_purged (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
SELECT strftime('%Y-%m-%d', u.created_at / 1000, 'unixepoch'), COUNT(*), SUM(u.total_tokens), SUM(u.cost_micros),
       COALESCE(SUM(u.response_time_ms), 0), COUNT(u.response_time_ms)
FROM usage u WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = u.api_key_id)
GROUP BY 1;

-- A new per-key rollup row, and each change to one, adds the same amounts to its owner's day
-- and to the fleet's day.
CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage_daily BEGIN
    INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    SELECT user_id, NEW.day, NEW.requests, NEW.tokens, NEW.cost_micros, NEW.response_ms_sum, NEW.timed_requests
    FROM api_keys WHERE id = NEW.api_key_id
    ON CONFLICT (user_id, day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
    INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    VALUES (NEW.day, NEW.requests, NEW.tokens, NEW.cost_micros, NEW.response_ms_sum, NEW.timed_requests)
    ON CONFLICT (day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
END;

CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage_daily BEGIN
    INSERT INTO usage_daily_user (user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    SELECT user_id, NEW.day, NEW.requests - OLD.requests, NEW.tokens - OLD.tokens,
           NEW.cost_micros - OLD.cost_micros, NEW.response_ms_sum - OLD.response_ms_sum,
           NEW.timed_requests - OLD.timed_requests
    FROM api_keys WHERE id = NEW.api_key_id
    ON CONFLICT (user_id, day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
    INSERT INTO usage_daily_fleet (day, requests, tokens, cost_micros, response_ms_sum, timed_requests)
    VALUES (NEW.day, NEW.requests - OLD.requests, NEW.tokens - OLD.tokens, NEW.cost_micros - OLD.cost_micros,
            NEW.response_ms_sum - OLD.response_ms_sum, NEW.timed_requests - OLD.timed_requests)
    ON CONFLICT (day) DO UPDATE SET
        requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests;
END;

-- The audit log newest first, filtered by who, by what, or from a time on.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);
