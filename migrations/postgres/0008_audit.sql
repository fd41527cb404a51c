-- The audit trail. One hash chain per tenant (chain = the tenant's slug; '' for changes
-- that belong to no tenant, such as operator tokens): each record commits to the previous
-- record's hash, and audit_heads holds each chain's last sequence number and hash, locked
-- by every append so concurrent writers never fork a chain.
CREATE TABLE audit_events (
    chain     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    id        TEXT NOT NULL UNIQUE,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    -- JSON: an admin change's field-level diff (never a secret value), or a call's details.
    detail    TEXT NOT NULL,
    trace_id  TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_events_at ON audit_events (chain, at);

CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

-- Append-only: the platform never updates or deletes an audit record.
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
