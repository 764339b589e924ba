-- edgemeet edge-api schema, part 13: recording states not yet written into their LiveKit rooms.
-- Idempotent, like the others.
--
-- Whenever a recorder reports a job's state, the edge writes the session's live jobs into its
-- LiveKit room's metadata, which every page in the room reads (recording/announce.rs). A write
-- that fails (the region's LiveKit did not answer) leaves the session here, and a recorder's
-- heartbeat writes it again, a few at a time, until LiveKit takes it or the session ends.
CREATE TABLE IF NOT EXISTS unannounced_sessions (
    room_sid TEXT    PRIMARY KEY,
    since_ms INTEGER NOT NULL            -- Unix ms, the edge's clock: the first failed write
);
