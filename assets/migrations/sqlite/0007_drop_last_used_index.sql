-- Nothing reads last_used_at by range: key lists sort by api_keys_last_used_order (0002). The
-- plain index only made every write that moves last_used_at (each usage record, each charge of
-- a bulk load, verify's once-a-minute touch) update one index more. PostgreSQL dropped it in
-- its 0002.
DROP INDEX api_keys_last_used;
