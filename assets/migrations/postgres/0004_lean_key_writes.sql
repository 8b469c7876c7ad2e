-- Cheaper writes to api_keys and usage, for the sweep, usage records and bulk loads at a
-- million keys.

-- Usage rows keep the id of their key after it is purged or swept, as the ledger does: history
-- that names the key it was. With `ON DELETE SET NULL`, deleting a key rewrote every usage row
-- it ever had (and their index entries), so a sweep's cost grew with the usage history of the
-- keys it deleted, and each usage row inserted paid a per-row foreign key check. Writers check
-- and share-lock the key themselves, once per statement.
ALTER TABLE usage DROP CONSTRAINT usage_api_key_id_fkey;
--
-- Every index on api_keys is paid by each insert and by each update that cannot be HOT; three of
-- them no query needs:
--  * api_keys_expires: the sweep reads api_keys_expires_order (the same order, with 'infinity'
--    standing for "never", and `COALESCE(expires_at, 'infinity') <= now` equals
--    `expires_at <= now` for any finite now);
--  * api_keys_standalone: a third of the keys are prepaid, so a scope filter walks the list's
--    own order and finds a page of matches after a few rows;
--  * api_keys_id_text: id prefixes are uuid ranges on the primary key.
DROP INDEX api_keys_expires;
DROP INDEX api_keys_standalone;
DROP INDEX api_keys_id_text;

-- Hashes and request ids are machine text: compared byte by byte ("C") their unique indexes skip
-- the locale's collation rules. Key names sort byte by byte too, as on SQLite, whatever the
-- database's locale.
ALTER TABLE api_keys ALTER COLUMN key_hash TYPE TEXT COLLATE "C";
ALTER TABLE api_keys ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE usage ALTER COLUMN request_id TYPE TEXT COLLATE "C";

-- Room on each page for new row versions: a disable by the sweep, a charge or a top-up changes no
-- indexed column, so with free room on the page the new version is a heap-only (HOT) tuple and
-- none of the indexes, the trigram ones included, takes a new entry. Applies to pages written
-- from now on.
ALTER TABLE api_keys SET (fillfactor = 70);
