-- SQLite's 0009 makes its FTS5 substring index contentless; the trigram indexes of this flavour
-- (0003) need no change. The migration exists so that both flavours number their schema alike.
SELECT 1;
