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

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
WHEN NOT EXISTS (SELECT 1 FROM audit_pruning)
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
