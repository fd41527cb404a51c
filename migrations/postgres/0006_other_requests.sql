-- A tenant's requests that are not real work (listings, completions, subscriptions, open
-- streams, notifications) in flight at once.
ALTER TABLE tenants ADD COLUMN max_concurrent_other_requests BIGINT NOT NULL DEFAULT 64;
