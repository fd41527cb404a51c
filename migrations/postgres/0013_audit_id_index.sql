-- A record's id is never looked up (records are found by chain and sequence number, and a
-- reported event's id is deduplicated in usage_events_seen), so its unique index only cost
-- every append a random-key insert.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_id_key;
