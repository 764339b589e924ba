-- edgemeet edge-api schema, part 18: sessions created through the BigBlueButton-compatible API
-- (`/<api key>/bigbluebutton/api/create`). Idempotent, like the others.
--
-- BBB names a meeting by any text up to 256 characters; a session's room id is that text when
-- it is a valid room id and a hash of it otherwise, so the meeting id as the caller wrote it is
-- kept here, with the attendee and moderator passwords older BBB integrations join with and
-- the `meta_*` parameters (a JSON object). None of it goes into the room's metadata, which
-- every participant can read. The passwords are forgotten when the session ends, in the same
-- statement. The meeting id stays while the past room or any recording of the session does:
-- BBB's getRecordings names a recording's meeting by it.
CREATE TABLE IF NOT EXISTS bbb_meetings (
    room_sid     TEXT PRIMARY KEY,
    meeting_id   TEXT NOT NULL,
    attendee_pw  TEXT,
    moderator_pw TEXT,
    meta         TEXT NOT NULL DEFAULT '{}'
);

CREATE TRIGGER IF NOT EXISTS bbb_passwords_forgotten AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    UPDATE bbb_meetings SET attendee_pw = NULL, moderator_pw = NULL WHERE room_sid = NEW.sid;
END;

CREATE INDEX IF NOT EXISTS recordings_by_session ON recordings (room_sid);

CREATE TRIGGER IF NOT EXISTS bbb_meeting_forgotten AFTER DELETE ON rooms
BEGIN
    DELETE FROM bbb_meetings WHERE room_sid = OLD.sid
        AND NOT EXISTS (SELECT 1 FROM recordings WHERE room_sid = OLD.sid);
END;

CREATE TRIGGER IF NOT EXISTS bbb_meeting_recordings_forgotten AFTER DELETE ON recordings
BEGIN
    DELETE FROM bbb_meetings WHERE room_sid = OLD.room_sid
        AND NOT EXISTS (SELECT 1 FROM rooms WHERE sid = OLD.room_sid)
        AND NOT EXISTS (SELECT 1 FROM recordings WHERE room_sid = OLD.room_sid);
END;
