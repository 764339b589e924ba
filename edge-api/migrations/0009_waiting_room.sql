-- edgemeet edge-api schema, part 9: the waiting room. Idempotent, like the others.
--
-- In a room with a waiting room, getJoinToken marks users other than moderators
-- `wait_for_approval` in their stored UserMetadata, and the session endpoint gives them no
-- LiveKit token until a moderator lets them in (which clears the flag) or turns them away
-- (which blocks them). A waiting user's page asks again every few seconds; each ask is noted
-- here, so moderators see who is waiting now rather than everyone a token was issued for.
CREATE TABLE IF NOT EXISTS waiting_users (
    room_sid TEXT    NOT NULL,
    user_id  TEXT    NOT NULL,
    since    INTEGER NOT NULL,   -- Unix seconds: when this wait began
    seen_at  INTEGER NOT NULL,   -- Unix seconds: the latest ask
    PRIMARY KEY (room_sid, user_id)
);

-- Nobody waits for a session that ended (a wait is noted only while its session runs), and
-- nothing of a session is kept once it is forgotten.
CREATE TRIGGER IF NOT EXISTS waiting_users_session_ended AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    DELETE FROM waiting_users WHERE room_sid = NEW.sid;
END;

CREATE TRIGGER IF NOT EXISTS waiting_users_session_forgotten AFTER DELETE ON rooms
BEGIN
    DELETE FROM waiting_users WHERE room_sid = OLD.sid;
END;
