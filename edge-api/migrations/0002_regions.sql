-- edgemeet edge-api schema, part 2: the region registry and room lifecycle from LiveKit's
-- webhooks (relayed by each region's media-sidecar). Idempotent, like part 1.
--
-- Every webhook is applied by one statement; the triggers below do what follows from it in the
-- same statement, so a request cut short never leaves half an event applied.

-- The last heartbeat of each region's media-sidecar.
CREATE TABLE IF NOT EXISTS region_status (
    region_id          TEXT    PRIMARY KEY,
    sidecar_id         TEXT    NOT NULL,
    sent_at_ms         INTEGER NOT NULL,  -- the sidecar's clock: an older heartbeat is dropped
    received_at_ms     INTEGER NOT NULL,  -- the edge's clock: liveness
    livekit_ok         INTEGER NOT NULL,
    draining           INTEGER NOT NULL,
    left_at_ms         INTEGER,           -- set when a drained sidecar left; NULL while registered
    rooms              INTEGER NOT NULL,
    participants       INTEGER NOT NULL,
    publishers         INTEGER NOT NULL,
    cpu_load           REAL,
    max_rooms          INTEGER NOT NULL,  -- 0 = unlimited
    max_participants   INTEGER NOT NULL,  -- 0 = unlimited
    undelivered_events INTEGER NOT NULL
);

-- LiveKit's room for a session (from room_started).
CREATE TABLE IF NOT EXISTS room_media (
    room_sid    TEXT    PRIMARY KEY,      -- rooms.sid
    livekit_sid TEXT    NOT NULL,
    started_at  INTEGER NOT NULL
);

-- Everyone LiveKit reported in a session.
CREATE TABLE IF NOT EXISTS room_participants (
    room_sid        TEXT    NOT NULL,
    participant_sid TEXT    NOT NULL,
    identity        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    hidden          INTEGER NOT NULL DEFAULT 0,
    joined_at       INTEGER NOT NULL,
    left_at         INTEGER,
    PRIMARY KEY (room_sid, participant_sid)
);
CREATE INDEX IF NOT EXISTS room_participants_present ON room_participants (room_sid, left_at);

-- Webhook event ids already applied, so a re-sent batch changes nothing.
CREATE TABLE IF NOT EXISTS applied_events (
    event_id   TEXT    PRIMARY KEY,
    region_id  TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS applied_events_age ON applied_events (applied_at);

-- room_started: the session is active from LiveKit's start.
CREATE TRIGGER IF NOT EXISTS room_media_started AFTER INSERT ON room_media
BEGIN
    UPDATE rooms SET status = 'active', started_at = COALESCE(started_at, NEW.started_at)
    WHERE sid = NEW.room_sid AND is_running = 1;
END;

-- participant_joined: a visible identity's first entry counts once per session.
CREATE TRIGGER IF NOT EXISTS room_participant_counted AFTER INSERT ON room_participants
WHEN NEW.hidden = 0 AND NOT EXISTS (
    SELECT 1 FROM room_participants
    WHERE room_sid = NEW.room_sid AND identity = NEW.identity
      AND participant_sid != NEW.participant_sid AND hidden = 0)
BEGIN
    UPDATE rooms SET joined_participants = joined_participants + 1 WHERE sid = NEW.room_sid;
END;

-- A session that ends (room_finished, endRoom, a limit) leaves nobody inside.
CREATE TRIGGER IF NOT EXISTS room_ended_participants_left AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0 AND OLD.is_running = 1
BEGIN
    UPDATE room_participants SET left_at = COALESCE(NEW.ended_at, NEW.created_at)
    WHERE room_sid = NEW.sid AND left_at IS NULL;
END;
