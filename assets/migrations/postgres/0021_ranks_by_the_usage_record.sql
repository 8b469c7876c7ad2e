-- SQLite's 0021 moves its rollups' rank upkeep from triggers into the usage record. PostgreSQL's
-- usage record has kept the ranks itself since 0020: nothing to do. The migration exists so that
-- both flavours number their schema alike.
SELECT 1;
