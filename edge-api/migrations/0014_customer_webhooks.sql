-- edgemeet edge-api schema, part 14: plugNmeet's webhooks to the customer's own servers.
-- Idempotent, like the others.
--
-- A session's webhook URLs are captured when it is created (the configured `webhook_url`, and
-- the room's own `metadata.webhook_url` when `webhook_per_meeting` is on), as plugNmeet
-- captures them. A session with none costs nothing below: every trigger inserts one row per
-- URL, so none.
CREATE TABLE IF NOT EXISTS room_webhook_urls (
    room_sid    TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    captured_at INTEGER NOT NULL,        -- Unix seconds: the session's creation
    PRIMARY KEY (room_sid, url)
);

-- Events waiting to be delivered, one row per event and URL, filled by the triggers below in
-- the statement that changed the state (so an event is never lost between the change and its
-- queueing). A new event joins its queue's wait: while a failed event waits for its retry,
-- every event behind it waits with it (`next_attempt_at` copied from it). The event's `id` is made from the session and the row's id, so every attempt
-- carries the same one. Delivered in `id` order per (room_sid, url) by webhooks.rs on heartbeats, and
-- deleted once the URL answered 2xx or the attempts ran out.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    room_sid         TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    event            TEXT    NOT NULL,   -- plugNmeet's event name
    detail           TEXT    NOT NULL DEFAULT '{}', -- JSON: the participant or recording
    num_participants INTEGER NOT NULL DEFAULT 0,    -- visible participants in the room then
    created_at       INTEGER NOT NULL,   -- Unix seconds: when it happened
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0     -- Unix ms, the edge's clock
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_attempt_at, id);
CREATE INDEX IF NOT EXISTS webhook_outbox_queue ON webhook_outbox (room_sid, url, id);

CREATE TRIGGER IF NOT EXISTS webhook_room_created AFTER INSERT ON room_webhook_urls
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, created_at)
    VALUES (NEW.room_sid, NEW.url, 'room_created',
        NEW.captured_at);
END;

CREATE TRIGGER IF NOT EXISTS webhook_room_started AFTER UPDATE OF status ON rooms
WHEN OLD.status = 'created' AND NEW.status = 'active'
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, created_at, next_attempt_at)
    SELECT u.room_sid, u.url, 'room_started', COALESCE(NEW.started_at, NEW.created_at),
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM room_webhook_urls u WHERE u.room_sid = NEW.sid;
END;

-- The end: everyone still inside leaves, then the room finishes and the session ends, in that
-- order. This trigger also marks them left, in place of 0002's `room_ended_participants_left`
-- (dropped here, so the order does not hang on which of two triggers SQLite fires first); the
-- participants' own trigger below stays quiet for an ended session.
DROP TRIGGER IF EXISTS room_ended_participants_left;
CREATE TRIGGER IF NOT EXISTS webhook_room_finished AFTER UPDATE OF is_running ON rooms
WHEN OLD.is_running = 1 AND NEW.is_running = 0
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT u.room_sid, u.url, 'participant_left',
        json_object('sid', p.participant_sid, 'identity', p.identity, 'name', p.name,
            'hidden', p.hidden, 'joined_at', p.joined_at),
        COALESCE(NEW.ended_at, NEW.created_at),
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM room_participants p JOIN room_webhook_urls u ON u.room_sid = p.room_sid
    WHERE p.room_sid = NEW.sid AND p.left_at IS NULL
    ORDER BY p.joined_at, p.participant_sid, u.url;
    INSERT INTO webhook_outbox (room_sid, url, event, created_at, next_attempt_at)
    SELECT u.room_sid, u.url, e.event, COALESCE(NEW.ended_at, NEW.created_at),
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM (SELECT 0 AS n, 'room_finished' AS event UNION ALL SELECT 1, 'session_ended') e
    JOIN room_webhook_urls u ON u.room_sid = NEW.sid
    ORDER BY e.n, u.url;
    UPDATE room_participants SET left_at = COALESCE(NEW.ended_at, NEW.created_at)
    WHERE room_sid = NEW.sid AND left_at IS NULL;
END;

-- A participant is heard joining (or, heard only leaving, is recorded joined and left at once).
CREATE TRIGGER IF NOT EXISTS webhook_participant_joined AFTER INSERT ON room_participants
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, num_participants,
        created_at, next_attempt_at)
    SELECT u.room_sid, u.url, e.event,
        json_object('sid', NEW.participant_sid, 'identity', NEW.identity, 'name', NEW.name,
            'hidden', NEW.hidden, 'joined_at', NEW.joined_at),
        (SELECT COUNT(*) FROM room_participants
         WHERE room_sid = NEW.room_sid AND left_at IS NULL AND hidden = 0),
        e.at,
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM (SELECT 0 AS n, 'participant_joined' AS event, NEW.joined_at AS at
          UNION ALL
          SELECT 1, 'participant_left', NEW.left_at WHERE NEW.left_at IS NOT NULL) e
    JOIN room_webhook_urls u ON u.room_sid = NEW.room_sid
    ORDER BY e.n, u.url;
END;

CREATE TRIGGER IF NOT EXISTS webhook_participant_left AFTER UPDATE OF left_at ON room_participants
WHEN OLD.left_at IS NULL AND NEW.left_at IS NOT NULL
    AND EXISTS (SELECT 1 FROM rooms WHERE sid = NEW.room_sid AND is_running = 1)
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, num_participants,
        created_at, next_attempt_at)
    SELECT u.room_sid, u.url, 'participant_left',
        json_object('sid', NEW.participant_sid, 'identity', NEW.identity, 'name', NEW.name,
            'hidden', NEW.hidden, 'joined_at', NEW.joined_at),
        (SELECT COUNT(*) FROM room_participants
         WHERE room_sid = NEW.room_sid AND left_at IS NULL AND hidden = 0),
        NEW.left_at,
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM room_webhook_urls u WHERE u.room_sid = NEW.room_sid;
END;

-- A recorder started a job (start_recording, start_rtmp) or it ended (end_recording,
-- end_rtmp, with the reason when it failed). A job that never started (refused, lost before
-- its node said anything) ends without a start, as plugNmeet reports a failed start.
CREATE TRIGGER IF NOT EXISTS webhook_recorder_job AFTER UPDATE OF state ON recording_jobs
WHEN NEW.state != OLD.state AND (
    (OLD.state = 'STARTING' AND NEW.state = 'ACTIVE')
    OR (OLD.state IN ('STARTING', 'ACTIVE', 'ENDING') AND NEW.state IN ('COMPLETE', 'FAILED')))
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT u.room_sid, u.url,
        (CASE WHEN NEW.state = 'ACTIVE' THEN 'start_' ELSE 'end_' END) || NEW.kind,
        json_object('record_id', NEW.job_id, 'recorder_id', NEW.recorder_id,
            'recorder_msg', COALESCE(NEW.reason, ''), 'failed', NEW.state = 'FAILED'),
        (CASE WHEN NEW.updated_ms > 0 THEN NEW.updated_ms / 1000 ELSE NEW.created_ms / 1000 END),
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM room_webhook_urls u WHERE u.room_sid = NEW.room_sid;
END;

-- A recording's file is stored and in the catalog.
CREATE TRIGGER IF NOT EXISTS webhook_recording_proceeded AFTER INSERT ON recordings
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT u.room_sid, u.url, 'recording_proceeded',
        json_object('record_id', NEW.record_id, 'recorder_id', NEW.recorder_id,
            'file_path', NEW.file_path, 'file_bytes', NEW.file_bytes),
        COALESCE((SELECT updated_ms / 1000 FROM recording_jobs
                  WHERE job_id = NEW.record_id AND updated_ms > 0), NEW.created_at),
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = u.room_sid AND w.url = u.url AND w.attempts > 0)
    FROM room_webhook_urls u WHERE u.room_sid = NEW.room_sid;
END;

-- A session forgotten (past_rooms_retention_days) takes its URLs and undelivered events along.
CREATE TRIGGER IF NOT EXISTS webhook_session_forgotten AFTER DELETE ON rooms
BEGIN
    DELETE FROM room_webhook_urls WHERE room_sid = OLD.sid;
    DELETE FROM webhook_outbox WHERE room_sid = OLD.sid;
END;
