-- PostgreSQL's 0014 adds triggers that notify open TUIs of changes. SQLite needs nothing: a TUI
-- sees other connections' commits through PRAGMA data_version. The migration exists so that both
-- flavours number their schema alike.
SELECT 1;
