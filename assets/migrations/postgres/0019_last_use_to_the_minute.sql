-- SQLite's 0019 rewrites its usage-record trigger to move a key's last use at most once a
-- minute; here the usage record is one statement of the store's, changed in the code. Nothing
-- to change in the schema; the migration exists so that both flavours number their schema alike.
SELECT 1;
