-- Substring filters of the key list served by an index: an FTS5 trigram index over the name and
-- the display hint of every key (external content: the text stays in api_keys only), kept in
-- step by triggers. `list_keys` asks it for filters of three characters or more (a trigram needs
-- three) and still checks the exact LIKE semantics on what it returns.
--
-- The index refers to api_keys by rowid. `VACUUM` may renumber the rowids of a table without an
-- INTEGER PRIMARY KEY: after one, run  INSERT INTO api_keys_fts (api_keys_fts) VALUES ('rebuild').
CREATE VIRTUAL TABLE api_keys_fts USING fts5 (
    name, key_hint,
    content = 'api_keys', content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO api_keys_fts (api_keys_fts) VALUES ('rebuild');

CREATE TRIGGER api_keys_fts_insert AFTER INSERT ON api_keys BEGIN
    INSERT INTO api_keys_fts (rowid, name, key_hint) VALUES (new.rowid, new.name, new.key_hint);
END;
CREATE TRIGGER api_keys_fts_delete AFTER DELETE ON api_keys BEGIN
    INSERT INTO api_keys_fts (api_keys_fts, rowid, name, key_hint) VALUES ('delete', old.rowid, old.name, old.key_hint);
END;
CREATE TRIGGER api_keys_fts_update AFTER UPDATE OF name, key_hint ON api_keys BEGIN
    INSERT INTO api_keys_fts (api_keys_fts, rowid, name, key_hint) VALUES ('delete', old.rowid, old.name, old.key_hint);
    INSERT INTO api_keys_fts (rowid, name, key_hint) VALUES (new.rowid, new.name, new.key_hint);
END;
