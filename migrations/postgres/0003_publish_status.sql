-- How each tenant's policy reaches the workers: the newest revision published to the policy
-- bus and when, which policy key sealed it (a key's fingerprint, so a changed key re-seals
-- every tenant), and why publishing it fails while it does (cleared by the next success).
CREATE TABLE tenant_publish_status (
    tenant_id          TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    published_revision BIGINT NOT NULL,
    published_at       BIGINT,
    policy_key         TEXT NOT NULL,
    last_error         TEXT NOT NULL,
    last_error_at      BIGINT
);
