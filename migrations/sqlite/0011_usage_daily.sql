-- Usage per tenant and UTC day, for billing: real calls (tool calls among them, and how
-- many failed) and the time upstreams took, folded from the workers' usage events; and
-- refusals per reason, folded from their refusal tallies (a tally counts toward the day it
-- began). Kept whatever the audit retention.
CREATE TABLE usage_daily (
    tenant      TEXT NOT NULL,
    day         TEXT NOT NULL,
    calls       BIGINT NOT NULL,
    tool_calls  BIGINT NOT NULL,
    failed      BIGINT NOT NULL,
    upstream_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, day)
);

CREATE TABLE refusals_daily (
    tenant TEXT NOT NULL,
    day    TEXT NOT NULL,
    reason TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (tenant, day, reason)
);
