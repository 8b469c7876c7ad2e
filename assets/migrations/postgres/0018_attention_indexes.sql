-- The largest low-balance line any key has, for the usage screen's list of keys under their line,
-- read from an index instead of every key. The line changes only when an admin sets it.
-- No index on the remaining balance here, unlike SQLite: an index on an expression of
-- used_micros would make every charge of a prepaid key a non-HOT update (a new entry in every
-- index of api_keys), on the hot path of the gateway's usage records; the list reads the
-- prepaid, enabled keys instead.
CREATE INDEX api_keys_low_balance_line ON api_keys (low_balance_micros) WHERE low_balance_micros IS NOT NULL;
