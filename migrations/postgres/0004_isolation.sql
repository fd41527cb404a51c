-- The tenant's tier (shared workers, or a dedicated pool in its own namespace), its compute
-- profile (empty: the control plane's default), and whether its dedicated workers serve it.
ALTER TABLE tenants ADD COLUMN tier TEXT NOT NULL DEFAULT 'shared';
ALTER TABLE tenants ADD COLUMN compute_profile TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN pool_ready BIGINT NOT NULL DEFAULT 0;

-- What the namespace reconciler last did for each tenant.
CREATE TABLE tenant_isolation (
    tenant_id           TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    namespace           TEXT NOT NULL,
    reconciled_revision BIGINT NOT NULL,
    reconciled_at       BIGINT,
    last_error          TEXT NOT NULL,
    last_error_at       BIGINT
);
