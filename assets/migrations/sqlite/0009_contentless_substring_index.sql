-- The substring index (0003) becomes contentless with `contentless_delete = 1` (SQLite 3.43 and
-- later): deleting a key then writes a tombstone for its rowid, where the external-content
-- index had to re-tokenise the old name and hint and write a delete entry for every trigram.
-- A sweep deletes keys by the hundred thousand. The key list only ever asks the index for
-- rowids, which a contentless index keeps; the text stays in api_keys, as before.
--
-- The index refers to api_keys by rowid. `VACUUM` may renumber the rowids of a table without an
-- INTEGER PRIMARY KEY: after one, run
--   DELETE FROM api_keys_fts; INSERT INTO api_keys_fts (rowid, name, key_hint) SELECT rowid, name, key_hint FROM api_keys;
DROP TRIGGER api_keys_fts_insert;
DROP TRIGGER api_keys_fts_delete;
DROP TRIGGER api_keys_fts_update;
DROP TABLE api_keys_fts;

CREATE VIRTUAL TABLE api_keys_fts USING fts5 (
    name, key_hint,
    content = '', contentless_delete = 1,
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO api_keys_fts (rowid, name, key_hint) SELECT rowid, name, key_hint FROM api_keys;

CREATE TRIGGER api_keys_fts_insert AFTER INSERT ON api_keys BEGIN
    INSERT INTO api_keys_fts (rowid, name, key_hint) VALUES (new.rowid, new.name, new.key_hint);
END;
CREATE TRIGGER api_keys_fts_delete AFTER DELETE ON api_keys BEGIN
    DELETE FROM api_keys_fts WHERE rowid = old.rowid;
END;
CREATE TRIGGER api_keys_fts_update AFTER UPDATE OF name, key_hint ON api_keys BEGIN
    DELETE FROM api_keys_fts WHERE rowid = old.rowid;
    INSERT INTO api_keys_fts (rowid, name, key_hint) VALUES (new.rowid, new.name, new.key_hint);
END;
