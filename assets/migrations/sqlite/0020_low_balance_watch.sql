-- A charge no longer moves an index entry unless its key is near its line. 0018 indexed every
-- prepaid, enabled key's remaining balance, so each charge of such a key deleted and inserted an
-- entry: about a tenth of a usage record's work. The index now holds only the keys whose
-- remaining balance is under their own line or under 10 USD (twice the default line of
-- `alerts.low_balance`), whichever is higher: a charge of a key above both evaluates this
-- condition for the old and the new row and writes nothing. The low-balance list reads it in
-- order of remaining balance whenever its default line is at most 10 USD
-- (src/store/sqlite/attention.rs, which holds the same condition); above that it reads every
-- prepaid key.
DROP INDEX api_keys_prepaid_remaining;
CREATE INDEX api_keys_low_balance_watch ON api_keys (credited_micros - used_micros, id)
    WHERE is_standalone = 1 AND is_active = 1 AND credited_micros IS NOT NULL
      AND credited_micros - used_micros < MAX(COALESCE(low_balance_micros, 0), 10000000);
