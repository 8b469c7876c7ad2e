-- SQLite's 0007 drops the plain index on last_used_at, which this flavour dropped in its 0002.
-- Nothing to change here; the migration exists so that both flavours number their schema alike.
SELECT 1;
