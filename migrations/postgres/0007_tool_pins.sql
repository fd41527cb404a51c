-- Tool pinning. Per connector, the approved definition of each tool its upstream listed
-- (the first one seen is trusted), and a changed definition held until an operator
-- approves it. Digests are "sha256:" and hex over the definition's canonical JSON.
CREATE TABLE tool_pins (
    connector_id       TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    tool               TEXT NOT NULL,
    digest             TEXT NOT NULL,
    -- JSON; NULL when it was too large to carry.
    definition         TEXT,
    approved_at        BIGINT NOT NULL,
    pending_digest     TEXT,
    pending_definition TEXT,
    pending_since      BIGINT,
    PRIMARY KEY (connector_id, tool)
);
