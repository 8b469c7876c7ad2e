-- Every index on api_keys is paid by each key inserted and each key deleted (a sweep deletes
-- hundreds of thousands at a time); two of them no query needs any more. PostgreSQL dropped both
-- in its 0004.
--  * api_keys_expires: the sweep, its dry run and the counts read api_keys_expires_order (0002),
--    the same order with the largest integer standing for "never";
--    `COALESCE(expires_at, 9223372036854775807) <= now` equals `expires_at <= now` for any now.
--  * api_keys_standalone: a third of the keys are prepaid, so a scope filter walks the list's own
--    order and finds a page of matches after a few rows.
DROP INDEX api_keys_expires;
DROP INDEX api_keys_standalone;
