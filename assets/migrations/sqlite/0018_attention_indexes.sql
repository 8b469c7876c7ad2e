-- The usage screen's list of keys under their low-balance line, in index order: without these it
-- read every key twice (once for the largest line any key has, once for the keys under it) and
-- took ~290 ms at 1,000,000 keys, the whole of the usage screen's first frame.
--  * the prepaid, enabled keys by remaining balance: only their rows are in it, so a usage record
--    moves an entry only when it charges such a key;
--  * every key's own line, for the largest of them (a plain index: SQLite's MAX does not use a
--    partial one); the line changes only when an admin sets it.
CREATE INDEX api_keys_prepaid_remaining ON api_keys (credited_micros - used_micros, id)
    WHERE is_standalone = 1 AND is_active = 1 AND credited_micros IS NOT NULL;
CREATE INDEX api_keys_low_balance_line ON api_keys (low_balance_micros);
