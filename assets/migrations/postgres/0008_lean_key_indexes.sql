-- SQLite's 0008 drops the plain expiry and standalone indexes, which this flavour dropped in its
-- 0004. Nothing to change here; the migration exists so that both flavours number their schema
-- alike.
SELECT 1;
