-- Past rooms are kept for `past_rooms_retention_days` (0, the default: for good). Ended
-- sessions older than that are deleted a few at a time when rooms are created
-- (`db::forget_past_rooms`), and with them everything kept about them: the users a join token
-- was issued for, the participants LiveKit reported, the LiveKit room and the region moves.
-- Idempotent: every statement may run again on an existing database.

CREATE INDEX IF NOT EXISTS rooms_ended_at ON rooms (ended_at) WHERE is_running = 0;

CREATE TRIGGER IF NOT EXISTS room_forgotten AFTER DELETE ON rooms
BEGIN
    DELETE FROM room_users WHERE room_sid = OLD.sid;
    DELETE FROM room_participants WHERE room_sid = OLD.sid;
    DELETE FROM room_media WHERE room_sid = OLD.sid;
    DELETE FROM region_moves WHERE room_sid = OLD.sid;
END;
