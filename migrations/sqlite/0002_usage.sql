-- Tool calls per tenant and calendar month (UTC, "YYYY-MM"), counted from workers' usage
-- events; the monthly quota is enforced from these counts.
CREATE TABLE tenant_usage (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period     TEXT NOT NULL,
    tool_calls BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, period)
);

-- Usage events already counted, so a redelivered event is not counted twice. Rows older
-- than the bus's redelivery horizon are pruned.
CREATE TABLE usage_events_seen (
    event_id TEXT PRIMARY KEY,
    seen_at  BIGINT NOT NULL
);
CREATE INDEX usage_events_seen_at ON usage_events_seen (seen_at);
