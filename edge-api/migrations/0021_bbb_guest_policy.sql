-- edgemeet edge-api schema, part 21: the guest policy of sessions created through the
-- BigBlueButton-compatible API (`create`'s `guestPolicy`). Idempotent, like the others.
--
-- As BBB decides (`bbb::meetings::GuestStatus`): moderators, and users who join with
-- `guest=false`, come in; under `ASK_MODERATOR` everyone else waits for a moderator, under
-- `ALWAYS_ACCEPT_AUTH` only guests (`guest=true`) wait, under `ALWAYS_DENY` everyone else is
-- turned away. The `create` that made the session sets it (a repeat changes nothing, as in
-- BBB); until it is stored, the room's waiting room (on under every policy but
-- `ALWAYS_ACCEPT`) holds everyone but moderators. Kept while the session runs.
CREATE TABLE IF NOT EXISTS bbb_guest_policies (
    room_sid TEXT PRIMARY KEY,
    policy   TEXT NOT NULL CHECK (policy IN ('ALWAYS_ACCEPT', 'ASK_MODERATOR', 'ALWAYS_ACCEPT_AUTH',
        'ALWAYS_DENY'))
);

CREATE TRIGGER IF NOT EXISTS bbb_guest_policy_forgotten AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    DELETE FROM bbb_guest_policies WHERE room_sid = NEW.sid;
END;
