-- Operator tokens get an id to name them by, an optional expiry, and a revocation time:
-- a revoked token is kept (so a bootstrap token given again stays revoked).
ALTER TABLE operator_tokens ADD COLUMN id TEXT;
ALTER TABLE operator_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE operator_tokens ADD COLUMN revoked_at BIGINT;
UPDATE operator_tokens SET id = substr(token_hash, 1, 12) WHERE id IS NULL;
CREATE UNIQUE INDEX operator_tokens_id ON operator_tokens (id);
