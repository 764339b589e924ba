-- The ids of applied webhook events, per region. `applied_events` (0002) was keyed by the
-- event id alone, so when two regions' sidecars named the same id the second one's was never
-- remembered, and each re-send of it was applied again. Its rows move here; it stays, empty.
-- Idempotent: every statement may run again on an existing database.

CREATE TABLE IF NOT EXISTS applied_region_events (
    region_id  TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (region_id, event_id)
);
CREATE INDEX IF NOT EXISTS applied_region_events_age ON applied_region_events (applied_at);

INSERT OR IGNORE INTO applied_region_events (region_id, event_id, applied_at)
SELECT region_id, event_id, applied_at FROM applied_events;
DELETE FROM applied_events;
