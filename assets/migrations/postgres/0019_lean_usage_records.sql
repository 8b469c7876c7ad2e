-- SQLite's 0019 makes its usage record write fewer pages (the key's last use once a minute, top
-- lists by a coarse rank of the day's cost, the owner's and fleet's days without triggers).
-- Here the usage record is one statement of the store's, which moves the key's last use once a
-- minute too (src/store/postgres/usage.rs); the (day, cost) indexes stay, as the rollups'
-- updates write new primary-key entries anyway (their sums are in them, 0017). Nothing to
-- change in the schema; the migration exists so that both flavours number their schema alike.
SELECT 1;
