-- edgemeet edge-api schema, part 17: locks a moderator sets during a meeting
-- (`/api/updateLockSettings`). Idempotent, like the others.
--
-- `locks` is a plugNmeet `LockSettings` object holding the fields moderators set for this user
-- in this session, e.g. {"lock_microphone": true}. It is kept apart from the user's metadata,
-- which every join token replaces, so that a later token for the same user keeps a moderator's
-- locks (`db::upsert_user` lays them over the new metadata); each change is also laid over the
-- stored metadata at once, by the triggers below, with a new `metadata_id` (plugNmeet's clients
-- tell a changed metadata by it), so a session minted from it carries it.
CREATE TABLE IF NOT EXISTS user_locks (
    room_sid TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    locks    TEXT NOT NULL,
    PRIMARY KEY (room_sid, user_id)
);

CREATE TRIGGER IF NOT EXISTS user_locks_set AFTER INSERT ON user_locks
BEGIN
    UPDATE room_users
    SET metadata = json_set(
        json_patch(metadata, json_object('lock_settings', json(NEW.locks))),
        '$.metadata_id',
        lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2))
            || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))))
    WHERE room_sid = NEW.room_sid AND user_id = NEW.user_id;
END;

CREATE TRIGGER IF NOT EXISTS user_locks_changed AFTER UPDATE OF locks ON user_locks
BEGIN
    UPDATE room_users
    SET metadata = json_set(
        json_patch(metadata, json_object('lock_settings', json(NEW.locks))),
        '$.metadata_id',
        lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2))
            || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))))
    WHERE room_sid = NEW.room_sid AND user_id = NEW.user_id;
END;

-- Participants whose LiveKit permission must still be brought in line with their locks: a
-- LiveKit call that failed, more participants than one request updates, a join with a LiveKit
-- token minted before a lock. Each sidecar heartbeat (or, in a region without one, each
-- participant event) works through a few of them.
-- `attempts` counts LiveKit calls that failed for it: the least tried go first, so one that keeps
-- failing (a LiveKit node that is gone) cannot hold up the others.
CREATE TABLE IF NOT EXISTS lock_checks (
    room_sid TEXT    NOT NULL,
    user_id  TEXT    NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_sid, user_id)
);

CREATE TRIGGER IF NOT EXISTS lock_checks_session_ended AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    DELETE FROM lock_checks WHERE room_sid = NEW.sid;
END;

-- Forgotten with the user (who is forgotten with their past session).
CREATE TRIGGER IF NOT EXISTS user_locks_forgotten AFTER DELETE ON room_users
BEGIN
    DELETE FROM user_locks WHERE room_sid = OLD.room_sid AND user_id = OLD.user_id;
    DELETE FROM lock_checks WHERE room_sid = OLD.room_sid AND user_id = OLD.user_id;
END;
