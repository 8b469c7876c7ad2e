-- A key's day lies beside its owner's day, on the same page.
--
-- Each usage record commits on its own, and what it costs beyond its usage row is the pages its
-- commit writes to the write-ahead log (and copies back at the next checkpoint): its key's day,
-- its owner's day and the fleet's day, each on a page of its own B-tree (BENCHMARKS.md, "record
-- usage at full scale on kept databases"). The per-key and the owners' rollups are now one
-- B-tree, ordered by owner, day, then key, where the owner's own row has the empty key '': an
-- owner's day and the days of the keys they used that day are neighbours, and a usage record
-- writes one page for the two.
--
-- Readers keep their names: `usage_daily` (the keys' rows) and `usage_daily_user` (the owners')
-- are views, and each reading path has its index: a key's days by `usage_days_key`, an owner's
-- by `usage_days_owner`, the top spenders by one rank index each. Those indexes change only when
-- a row is created or its cost reaches the next rank (0019), not on every record. The writers
-- write `usage_days`: the usage record (below), the bulk load (src/store/sqlite/bulk.rs), and the
-- purge and the sweep, which now delete a key's days themselves (the per-key rollup's foreign
-- key deleted them with the key; an owner's row has no key to refer to).
CREATE TABLE usage_days (
    user_id         TEXT    NOT NULL,
    day             TEXT    NOT NULL,
    -- The key, or '' for the owner's day: all of the owner's keys, purged ones included.
    api_key_id      TEXT    NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    timed_requests  INTEGER NOT NULL DEFAULT 0,
    last_used_at    INTEGER,
    cost_rank       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, api_key_id)
) WITHOUT ROWID;

INSERT INTO usage_days (user_id, day, api_key_id, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                        last_used_at, cost_rank)
SELECT user_id, day, '', requests, tokens, cost_micros, response_ms_sum, timed_requests, last_used_at, cost_rank
FROM usage_daily_user;
INSERT INTO usage_days (user_id, day, api_key_id, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                        last_used_at, cost_rank)
SELECT k.user_id, d.day, d.api_key_id, d.requests, d.tokens, d.cost_micros, d.response_ms_sum, d.timed_requests,
       d.last_used_at, d.cost_rank
FROM usage_daily d JOIN api_keys k ON k.id = d.api_key_id
ORDER BY 1, 2, 3;

DROP TRIGGER usage_record;
DROP TABLE usage_daily;
DROP TABLE usage_daily_user;

-- Partial, so that no owner's question reads it for the owners' rows (all under the key ''):
-- SQLite uses it where the statement says `api_key_id <> ''`, as the view `usage_daily` does.
CREATE INDEX usage_days_key ON usage_days (api_key_id, day) WHERE api_key_id <> '';
CREATE INDEX usage_days_owner ON usage_days (user_id, day) WHERE api_key_id = '';
CREATE INDEX usage_days_key_rank ON usage_days (day, cost_rank) WHERE api_key_id <> '';
CREATE INDEX usage_days_owner_rank ON usage_days (day, cost_rank) WHERE api_key_id = '';

CREATE VIEW usage_daily AS
SELECT api_key_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests, last_used_at, cost_rank,
       user_id
FROM usage_days WHERE api_key_id <> '';
CREATE VIEW usage_daily_user AS
SELECT user_id, day, requests, tokens, cost_micros, response_ms_sum, timed_requests, last_used_at, cost_rank
FROM usage_days WHERE api_key_id = '';

-- 0019's rank triggers on new rows, for any writer but the usage record and the bulk load.
CREATE TRIGGER usage_days_rank_insert AFTER INSERT ON usage_days
WHEN NEW.cost_rank <> CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END BEGIN
    UPDATE usage_days SET cost_rank = CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE user_id = NEW.user_id AND day = NEW.day AND api_key_id = NEW.api_key_id;
END;

-- 0021's usage record, writing the key's and the owner's days into `usage_days`.
CREATE TRIGGER usage_record INSTEAD OF INSERT ON usage_records BEGIN
    INSERT INTO usage (request_id, api_key_id, provider, model, api_format, total_tokens, cost_micros,
                       response_time_ms, created_at)
    VALUES (NEW.request_id, NEW.api_key_id, NEW.provider, NEW.model, NEW.api_format, NEW.total_tokens,
            NEW.cost_micros, NEW.response_time_ms, NEW.created_at);
    INSERT INTO usage_days (user_id, day, api_key_id, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                            last_used_at, cost_rank)
    VALUES (NEW.user_id, NEW.day, NEW.api_key_id, 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL, NEW.created_at, CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END)
    ON CONFLICT (user_id, day, api_key_id) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at);
    UPDATE usage_days SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE user_id = NEW.user_id AND day = NEW.day AND api_key_id = NEW.api_key_id
      AND cost_rank <> CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END;
    INSERT INTO usage_days (user_id, day, api_key_id, requests, tokens, cost_micros, response_ms_sum, timed_requests,
                            last_used_at, cost_rank)
    VALUES (NEW.user_id, NEW.day, '', 1, NEW.total_tokens, NEW.cost_micros, COALESCE(NEW.response_time_ms, 0),
            NEW.response_time_ms IS NOT NULL, NEW.created_at, CASE WHEN NEW.cost_micros > 0 THEN length(NEW.cost_micros) * 10 + CAST(substr(NEW.cost_micros, 1, 1) AS INTEGER) ELSE 0 END)
    ON CONFLICT (user_id, day, api_key_id) DO UPDATE SET
        requests = requests + 1, tokens = tokens + excluded.tokens,
        cost_micros = cost_micros + excluded.cost_micros,
        response_ms_sum = response_ms_sum + excluded.response_ms_sum,
        timed_requests = timed_requests + excluded.timed_requests,
        last_used_at = MAX(COALESCE(last_used_at, excluded.last_used_at), excluded.last_used_at);
    UPDATE usage_days SET cost_rank = CASE WHEN cost_micros > 0 THEN length(cost_micros) * 10 + CAST(substr(cost_micros, 1, 1) AS INTEGER) ELSE 0 END
    WHERE user_id = NEW.user_id AND day = NEW.day AND api_key_id = ''
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
