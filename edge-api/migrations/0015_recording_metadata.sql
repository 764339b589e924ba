-- edgemeet edge-api schema, part 15: the backend's own words about a recording (plugNmeet's
-- `RecordingMetadata`: title, description, subtitles by language, extra data), set with
-- `/auth/recording/updateMetadata` and shown by `recording/fetch` and `recording/info`.
-- Idempotent, like the others.
--
-- `metadata` is plugNmeet's JSON (snake_case): {"title", "description", "subtitles": {lang:
-- {"label", "url"}}, "extra_data": {key: value}}. An update is one JSON merge patch
-- (`json_patch`), so two backends updating one recording at once lose neither's change.
-- As plugNmeet does, a new recording starts with its meeting's title, as `title` and as
-- `extra_data` `meeting-title`, and `meeting-created` (RFC 3339, UTC), plus `meeting-ended`
-- when the session has ended by then (plugNmeet writes a zero time otherwise).
CREATE TABLE IF NOT EXISTS recording_metadata (
    record_id TEXT PRIMARY KEY,
    metadata  TEXT NOT NULL
);

CREATE TRIGGER IF NOT EXISTS recording_metadata_seeded AFTER INSERT ON recordings
BEGIN
    INSERT OR IGNORE INTO recording_metadata (record_id, metadata)
    SELECT NEW.record_id, json_patch(
        json_object('title', r.room_title, 'extra_data', json_object(
            'meeting-title', r.room_title,
            'meeting-created', strftime('%Y-%m-%dT%H:%M:%SZ', r.created_at, 'unixepoch'))),
        -- A merge patch: a null member is left out.
        json_object('extra_data', json_object('meeting-ended',
            CASE WHEN r.ended_at IS NULL THEN NULL
                 ELSE strftime('%Y-%m-%dT%H:%M:%SZ', r.ended_at, 'unixepoch') END)))
    FROM rooms r WHERE r.sid = NEW.room_sid;
END;

-- The words go with their recording.
CREATE TRIGGER IF NOT EXISTS recording_metadata_deleted AFTER DELETE ON recordings
BEGIN
    DELETE FROM recording_metadata WHERE record_id = OLD.record_id;
END;
