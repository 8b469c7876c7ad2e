-- Substring filters of the key list served by indexes: pg_trgm GIN indexes answer
-- `name ILIKE '%…%'` and `key_hint ILIKE '%…%'` (patterns of three characters or more), and a
-- text_pattern_ops index on the id's text answers the id-prefix match, so the planner can OR the
-- four conditions of a filter together as bitmaps instead of scanning every key.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX api_keys_name_trgm ON api_keys USING gin (name gin_trgm_ops);
CREATE INDEX api_keys_hint_trgm ON api_keys USING gin (key_hint gin_trgm_ops);
CREATE INDEX api_keys_id_text ON api_keys ((id::text) text_pattern_ops);
