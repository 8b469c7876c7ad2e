-- Key lists sort nullable times through a sentinel so that every order is total and keyset
-- paging can compare row values: a key that never expires sorts as expiring at the end of time
-- ('infinity'), a key never used as used at the beginning of time ('-infinity'), as in the SQLite
-- flavour. These indexes serve exactly those expressions.
CREATE INDEX api_keys_expires_order   ON api_keys ((COALESCE(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX api_keys_last_used_order ON api_keys ((COALESCE(last_used_at, '-infinity'::timestamptz)), id);

-- Nothing reads last_used_at by range any more; its plain index would only slow usage writes.
DROP INDEX api_keys_last_used;
