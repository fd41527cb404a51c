-- Signed checkpoints of the audit trail: now and then the control plane signs each chain's
-- head (sequence number and hash) with its Ed25519 audit key. A rewrite of the chain from
-- a record on (the head row included) no longer matches a checkpoint signed before it.
CREATE TABLE audit_checkpoints (
    chain     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    -- Which key signed it: the first 16 hex digits of the SHA-256 of its public key.
    key_id    TEXT NOT NULL,
    -- Base64 Ed25519 signature over the checkpoint's canonical JSON (chain, seq, hash, at).
    signature TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);

-- The append-only rule of audit_events, naming the table refused.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('switchyard.audit_pruning', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
