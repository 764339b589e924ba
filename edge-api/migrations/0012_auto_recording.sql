-- edgemeet edge-api schema, part 12: recording a meeting from its start. Idempotent, like the
-- others.
--
-- A room created with `recording_features.enable_auto_cloud_recording` is recorded without a
-- moderator pressing Record: once its session has been joined (placed in a region), a
-- recorder's heartbeat to the edge sends the recording to a node (recording/autostart.rs).
-- plugNmeet leaves this to the first moderator's browser; here it needs no browser at all.
--
-- One row per session that asks for it, made in the same statement as the session, and due
-- (`next_attempt_ms` 0) from the statement that places it in a region, its first join: until
-- then there is nothing to record, and no heartbeat looks at it. The start is tried once per
-- session: a moderator who stops the recording is not overruled. A try that found no recorder
-- with room is repeated at `next_attempt_ms`; a settled row has it NULL and `attempts` > 0.
CREATE TABLE IF NOT EXISTS auto_recordings (
    room_sid        TEXT    PRIMARY KEY,
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER,             -- Unix ms, the edge's clock; NULL while waiting or settled
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
    VALUES (NEW.sid, 0, NULL, 'waiting for the first join');
END;

CREATE TRIGGER IF NOT EXISTS auto_recording_joined AFTER UPDATE OF region ON rooms
WHEN OLD.region IS NULL AND NEW.region IS NOT NULL
BEGIN
    UPDATE auto_recordings SET next_attempt_ms = 0, outcome = 'due'
    WHERE room_sid = NEW.sid AND attempts = 0 AND next_attempt_ms IS NULL;
END;

-- Only running sessions are started; an ended one's row has nothing left to do.
CREATE TRIGGER IF NOT EXISTS auto_recording_session_ended AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    DELETE FROM auto_recordings WHERE room_sid = NEW.sid;
END;
