-- edgemeet edge-api schema, part 16: finding blocked users quickly. Idempotent, like the others.
--
-- A moderator can remove a participant and block them from the session
-- (`/api/removeParticipant`). LiveKit keeps no block list, so each sidecar heartbeat looks for
-- blocked users LiveKit may still have (a removal that failed, a join with a LiveKit token
-- minted before the block) and removes them again. Blocked users are few: this partial index
-- holds only them, so that look costs next to nothing whatever the number of users.
CREATE INDEX IF NOT EXISTS room_users_blocked ON room_users (room_sid) WHERE is_blocked = 1;
