-- Without sidecars the session endpoint records each user's first entry into a session
-- (room_users.joined_at); a visible user's first entry counts once, in the same statement.
CREATE TRIGGER IF NOT EXISTS room_user_entry_counted AFTER UPDATE OF joined_at ON room_users
WHEN OLD.joined_at IS NULL AND NEW.joined_at IS NOT NULL AND NEW.is_hidden = 0
BEGIN
    UPDATE rooms SET joined_participants = joined_participants + 1 WHERE sid = NEW.room_sid;
END;
