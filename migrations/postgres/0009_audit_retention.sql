-- Audit retention: the oldest records of a chain may be removed, by the control plane's
-- pruning job only, which records in the head row the last sequence number removed, so a
-- verification knows where the chain now starts.
ALTER TABLE audit_heads ADD COLUMN pruned_through BIGINT NOT NULL DEFAULT 0;

-- Deletes pass only inside a transaction that set switchyard.audit_pruning (the job's).
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('switchyard.audit_pruning', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
