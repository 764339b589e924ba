-- edgemeet edge-api schema, part 10: an encrypted room's key is forgotten when its session
-- ends. Idempotent, like the others.
--
-- `room/create` keeps an end-to-end encrypted room's key in its metadata, for the sessions
-- that give it to the room's users. Once the session has ended nobody needs it, and a past
-- room is kept (by default for good): the key goes, in the same statement as the end.
CREATE TRIGGER IF NOT EXISTS room_key_forgotten AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0 AND json_valid(NEW.metadata)
    AND json_extract(NEW.metadata, '$.room_features.end_to_end_encryption_features.encryption_key')
        IS NOT NULL
BEGIN
    UPDATE rooms
    SET metadata = json_remove(metadata,
        '$.room_features.end_to_end_encryption_features.encryption_key')
    WHERE id = NEW.id;
END;
