-- edgemeet edge-api schema, part 6: LiveKit rooms still to be deleted. Idempotent, like the
-- others.
--
-- Ending a session deletes its LiveKit room, which disconnects everyone in it. When LiveKit
-- does not answer, the room waits here and the delete is retried on its region's heartbeats,
-- with a growing delay, until LiveKit confirms (or has no such room) or the attempts run out.
CREATE TABLE IF NOT EXISTS livekit_deletions (
    region_id    TEXT    NOT NULL,
    livekit_room TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,   -- failed so far
    next_at      INTEGER NOT NULL,   -- Unix seconds: not retried before
    PRIMARY KEY (region_id, livekit_room)
);
