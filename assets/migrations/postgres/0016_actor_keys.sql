-- The SHA256 fingerprint of the SSH key an admin of `keytop serve` signed in with, kept next to
-- their name in the audit log and the ledger: the name comes from an editable file, the
-- fingerprint cannot be made up. NULL for the CLI and the local TUI.
ALTER TABLE audit_log ADD COLUMN actor_key TEXT;
ALTER TABLE balance_ledger ADD COLUMN actor_key TEXT;

-- The audit screen is live too: a change that writes only an audit row (a reveal) notifies.
CREATE TRIGGER audit_log_notify_change AFTER INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION keytop_notify_change();
