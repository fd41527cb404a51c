-- A tenant's identity settings, as JSON: whether its API keys are accepted at its
-- endpoint, its OpenID Connect provider (issuer, audience, role claim and the roles its
-- values give), and the lifetimes of the tokens issued for it.
ALTER TABLE tenants ADD COLUMN identity TEXT NOT NULL DEFAULT '{}';
