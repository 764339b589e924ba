-- edgemeet edge-api schema, part 5: a running room leaves a region that is gone. Idempotent,
-- like the others.
--
-- A session pinned to a region that left, or whose sidecar has been silent for several
-- heartbeat timeouts, is placed again at its next join (sessions.rs). Each move is a row here,
-- inserted only while the session is still pinned where the mover saw it; the trigger moves
-- the session and records everyone LiveKit reported in the old region as gone, in the same
-- statement, so that the room's empty timeout counts from the move.
CREATE TABLE IF NOT EXISTS region_moves (
    id          INTEGER PRIMARY KEY,
    room_sid    TEXT    NOT NULL,   -- rooms.sid
    from_region TEXT    NOT NULL,
    to_region   TEXT    NOT NULL,
    moved_at    INTEGER NOT NULL    -- Unix seconds
);
CREATE INDEX IF NOT EXISTS region_moves_room ON region_moves (room_sid);

CREATE TRIGGER IF NOT EXISTS region_move_applied AFTER INSERT ON region_moves
BEGIN
    UPDATE rooms SET region = NEW.to_region
    WHERE sid = NEW.room_sid AND region = NEW.from_region AND is_running = 1;
    UPDATE room_participants SET left_at = NEW.moved_at
    WHERE room_sid = NEW.room_sid AND left_at IS NULL;
END;
