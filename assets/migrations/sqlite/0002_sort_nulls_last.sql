-- Key lists sort nullable columns through a sentinel so that every order is total and keyset
-- paging can compare row values: a key that never expires sorts as expiring at the end of time,
-- a key never used as used at the beginning of time. These indexes serve exactly those
-- expressions (SQLite only uses an expression index for the identical expression).
CREATE INDEX api_keys_expires_order   ON api_keys (COALESCE(expires_at, 9223372036854775807), id);
CREATE INDEX api_keys_last_used_order ON api_keys (COALESCE(last_used_at, -9223372036854775808), id);
