-- edgemeet edge-api schema, part 4: one LiveKit room per session. Idempotent, like the others.
--
-- Sessions created from now on name their LiveKit room `<room_id>.<sid>` (room ids hold no
-- dot), so no webhook, deletion or listing for one session's LiveKit room can reach another
-- session of the same room id. Sessions created before this migration keep the name their
-- meeting started with, the room id (db.rs, LIVEKIT_ROOM).
CREATE TABLE IF NOT EXISTS livekit_naming (
    only             INTEGER PRIMARY KEY CHECK (only = 1),
    first_session_id INTEGER NOT NULL   -- rooms.id from which LiveKit rooms are per session
);
INSERT OR IGNORE INTO livekit_naming (only, first_session_id)
SELECT 1, COALESCE(MAX(id), 0) + 1 FROM rooms;
