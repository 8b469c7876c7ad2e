-- SQLite's 0022 puts a key's daily rollup row beside its owner's, so that a usage record writes
-- one page for the two. PostgreSQL writes rows, not pages, into its log, and its rollups' updates
-- are heap-only since 0020: nothing to do. The migration exists so that both flavours number
-- their schema alike.
SELECT 1;
