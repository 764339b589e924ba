-- edgemeet edge-api schema, part 15: the backend's own words about a recording (plugNmeet's
-- `RecordingMetadata`: title, description, subtitles by language, extra data), set with
-- `/auth/recording/updateMetadata` and shown by `recording/fetch` and `recording/info`.
-- Idempotent, like the others.
--
-- `metadata` is plugNmeet's JSON (snake_case): {"title", "description", "subtitles": {lang:
-- {"label", "url"}}, "extra_data": {key: value}}. An update is one JSON merge patch
-- (`json_patch`), so two backends updating one recording at once lose neither's change.
-- A recording has no row until its first update.
CREATE TABLE IF NOT EXISTS recording_metadata (
    record_id TEXT PRIMARY KEY,
    metadata  TEXT NOT NULL
);

-- The words go with their recording.
CREATE TRIGGER IF NOT EXISTS recording_metadata_deleted AFTER DELETE ON recordings
BEGIN
    DELETE FROM recording_metadata WHERE record_id = OLD.record_id;
END;
