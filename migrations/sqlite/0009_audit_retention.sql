-- Audit retention: the oldest records of a chain may be removed, by the control plane's
-- pruning job only, which records in the head row the last sequence number removed, so a
-- verification knows where the chain now starts.
ALTER TABLE audit_heads ADD COLUMN pruned_through BIGINT NOT NULL DEFAULT 0;

-- Deletes pass only while the job's transaction holds a row here.
CREATE TABLE audit_pruning (active INTEGER NOT NULL);

DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_pruning)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
