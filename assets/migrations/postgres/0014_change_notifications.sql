-- Live updates: every statement that changes keys, owners or balances sends a notification on the
-- channel keytop_changes (recorded usage too: it updates the key's spend). pg_notify inside the
-- writing transaction is delivered only at COMMIT and dropped on ROLLBACK, and identical
-- notifications of one transaction are folded into one, so a bulk load or a sweep sends one.
-- Open TUIs LISTEN and re-query what they show.
CREATE FUNCTION keytop_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keytop_changes', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_notify_change AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keytop_notify_change();
CREATE TRIGGER users_notify_change AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION keytop_notify_change();
CREATE TRIGGER balance_ledger_notify_change AFTER INSERT OR UPDATE OR DELETE ON balance_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION keytop_notify_change();
