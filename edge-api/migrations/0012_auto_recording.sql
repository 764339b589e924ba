-- edgemeet edge-api schema, part 12: recording a meeting from its start. Idempotent, like the
-- others.
--
-- A room created with `recording_features.enable_auto_cloud_recording` is recorded without a
-- moderator pressing Record: once its session has been joined (placed in a region), a
-- recorder's heartbeat to the edge sends the recording to a node (recording/autostart.rs).
-- plugNmeet leaves this to the first moderator's browser; here it needs no browser at all.
--
-- One row per session that asks for it, made in the same statement as the session. The start
-- is tried once per session: a moderator who stops the recording is not overruled. A try that
-- found no recorder with room is repeated at `next_attempt_ms`; a settled row has it NULL.
CREATE TABLE IF NOT EXISTS auto_recordings (
    room_sid        TEXT    PRIMARY KEY,
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER,             -- Unix ms, the edge's clock; NULL once settled
    outcome         TEXT    NOT NULL     -- what the latest try did, for operators
);
CREATE INDEX IF NOT EXISTS auto_recordings_pending
    ON auto_recordings (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;

CREATE TRIGGER IF NOT EXISTS auto_recording_wanted AFTER INSERT ON rooms
WHEN json_valid(NEW.metadata)
    AND json_extract(NEW.metadata,
        '$.room_features.recording_features.enable_auto_cloud_recording') = 1
BEGIN
    INSERT OR IGNORE INTO auto_recordings (room_sid, attempts, next_attempt_ms, outcome)
    VALUES (NEW.sid, 0, 0, 'waiting for the first join');
END;

-- Only running sessions are started; an ended one's row has nothing left to do.
CREATE TRIGGER IF NOT EXISTS auto_recording_session_ended AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    DELETE FROM auto_recordings WHERE room_sid = NEW.sid;
END;
