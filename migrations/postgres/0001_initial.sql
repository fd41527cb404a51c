-- Control-plane state. Times are Unix milliseconds (BIGINT) and ids are text so the same
-- queries run on PostgreSQL and SQLite.

-- The one global sequence of policy revisions. Every change takes the next value while
-- holding this row's lock, so changes commit in revision order.
CREATE TABLE revision_counter (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision_counter (id, value) VALUES (1, 0);

CREATE TABLE tenants (
    id                      TEXT PRIMARY KEY,
    slug                    TEXT NOT NULL UNIQUE,
    display_name            TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    suspend_reason          TEXT NOT NULL,
    requests_per_second     BIGINT NOT NULL,
    burst                   BIGINT NOT NULL,
    max_concurrent_requests BIGINT NOT NULL,
    max_sessions            BIGINT NOT NULL,
    monthly_tool_calls      BIGINT NOT NULL,
    max_connectors          BIGINT NOT NULL,
    -- Revision of the tenant's own last change (its etag).
    revision                BIGINT NOT NULL,
    -- Revision of the last change to anything in its policy.
    policy_revision         BIGINT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);

CREATE TABLE connectors (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    enabled    BIGINT NOT NULL,
    -- Non-secret settings as JSON; header values live sealed in connector_headers.
    settings   TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Header values are secrets: AES-256-GCM under the master key, bound to tenant, connector
-- and header name.
CREATE TABLE connector_headers (
    connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    name         TEXT NOT NULL,
    sealed_value BYTEA NOT NULL,
    PRIMARY KEY (connector_id, position)
);

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role                TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    description         TEXT NOT NULL,
    requests_per_second BIGINT,
    burst               BIGINT,
    verifier            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT,
    last_used_at        BIGINT,
    revoked_at          BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Operator credentials for the admin API: SHA-256 of high-entropy tokens.
CREATE TABLE operator_tokens (
    token_hash TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- "Tenant X changed at revision R", written in the same transaction as the change; the
-- publisher drains it into the policy bucket.
CREATE TABLE policy_outbox (
    seq         BIGSERIAL PRIMARY KEY,
    tenant_slug TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
