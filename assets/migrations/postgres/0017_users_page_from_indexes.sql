-- A page of users in index reads only. Counting a user's keys and finding their last use read
-- every key row of the users on the page (a heavy owner has thousands of keys):
--  * the counts come from an index on (owner, enabled, expiry) alone (an index-only scan);
--  * the last use comes from the owner's rollup (0011), which now keeps the latest use of its
--    day: a user's last use is the largest of their few rollup rows, purged keys included (as
--    their spend is). An index on the keys' last use would move on every usage record instead.
CREATE INDEX api_keys_user_status ON api_keys (user_id, is_active, expires_at);

ALTER TABLE usage_daily_user ADD COLUMN last_used_at TIMESTAMPTZ;

-- The existing history: each owner's day gets the latest use of their keys last used that day.
UPDATE usage_daily_user o SET last_used_at = latest.at
FROM (SELECT user_id, (last_used_at AT TIME ZONE 'UTC')::date AS day, MAX(last_used_at) AS at
      FROM api_keys WHERE last_used_at IS NOT NULL GROUP BY 1, 2) latest
WHERE o.user_id = latest.user_id AND o.day = latest.day;

-- The sums the fleet's questions read, in the primary keys of the per-key and the owners'
-- rollups: a top list sums each candidate's days and the users page each user's days, and in a
-- heap appended day after day a spender's rows lie on as many pages as it has days. With the
-- sums in the index, those reads are index-only scans of a few adjacent pages. Writing them
-- costs nothing more: every upsert already changes `cost_micros`, which the (day, cost) indexes
-- of 0011 hold, so no rollup update was a HOT update and each one already wrote a new entry in
-- the primary key.
ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey,
    ADD CONSTRAINT usage_daily_pkey PRIMARY KEY (api_key_id, day) INCLUDE (requests, tokens, cost_micros);
ALTER TABLE usage_daily_user DROP CONSTRAINT usage_daily_user_pkey,
    ADD CONSTRAINT usage_daily_user_pkey PRIMARY KEY (user_id, day)
    INCLUDE (requests, tokens, cost_micros, last_used_at);
