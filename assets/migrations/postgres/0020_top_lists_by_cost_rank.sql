-- SQLite's 0020 reads the top lists from a coarse rank of each day's cost, so that a usage
-- record no longer moves two index entries there. Here the rollups' updates are not HOT anyway
-- (their primary keys hold the sums, 0017), so the (day, cost) indexes stay. Nothing to change;
-- the migration exists so that both flavours number their schema alike.
SELECT 1;
