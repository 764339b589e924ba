-- edgemeet edge-api schema, part 21: the guest policy of sessions created through the
-- BigBlueButton-compatible API (`create`'s `guestPolicy`). Idempotent, like the others.
--
-- BBB applies the policy to users who join with `guest=true`, moderators excepted:
-- `ALWAYS_ACCEPT` lets them in, `ASK_MODERATOR` (and `ALWAYS_ACCEPT_AUTH`, which BBB now takes
-- as it) makes them wait for a moderator, `ALWAYS_DENY` turns them away. The first `create` of
-- a session sets it (a repeat changes nothing, as in BBB). Kept while the session runs.
CREATE TABLE IF NOT EXISTS bbb_guest_policies (
    room_sid TEXT PRIMARY KEY,
    policy   TEXT NOT NULL CHECK (policy IN ('ALWAYS_ACCEPT', 'ASK_MODERATOR', 'ALWAYS_DENY'))
);

CREATE TRIGGER IF NOT EXISTS bbb_guest_policy_forgotten AFTER UPDATE OF is_running ON rooms
WHEN NEW.is_running = 0
BEGIN
    DELETE FROM bbb_guest_policies WHERE room_sid = NEW.sid;
END;
