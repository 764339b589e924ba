-- edgemeet edge-api schema, part 20: plugNmeet's analytics files (`/auth/analytics/*`), the
-- attendance of each session. Idempotent, like the others.
--
-- A session whose room has `room_features.enable_analytics` (on unless the room turns it off)
-- gets its file in the statement that ends it: plugNmeet's `AnalyticsResult` as its server
-- writes it (protojson, proto names, int64 as strings): the room (title, times, users, whether
-- it was encrypted) and each visible user who joined, with when they joined and left (the
-- `joined` and `left` events, Unix ms, as both `time` and `value`). The first 2,000 joins are
-- written (a user reconnecting in a loop cannot grow the file past what the end statement can
-- write: D1 refuses values over 2 MB); `room_total_users` counts everyone. A file goes when it
-- is deleted or its session is forgotten (`past_rooms_retention_days`), with the names in it.
CREATE TABLE IF NOT EXISTS session_analytics (
    file_id    TEXT    PRIMARY KEY,
    room_sid   TEXT    NOT NULL UNIQUE,
    room_id    TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    bytes      INTEGER NOT NULL,    -- the body's length, for listings
    created_at INTEGER NOT NULL     -- Unix seconds: the session's end
);
CREATE INDEX IF NOT EXISTS session_analytics_by_room ON session_analytics (room_id, created_at);
CREATE INDEX IF NOT EXISTS session_analytics_by_time ON session_analytics (created_at);

-- What each visible user published while the session ran, from LiveKit's `track_published` and
-- `track_unpublished` (`db::analytics::note_track_event`), for the file's `mic_status`,
-- `webcam_status` and `screen_share_status` events (plugNmeet's, `ANALYTICS_STATUS_STARTED`
-- or `_ENDED` at each time in ms). Kept only for sessions with analytics, the first 2,000 of
-- a session (some 120 KB of the file, beside the joins' bound), each track's start and end
-- once (a retried event adds nothing), and gone once its file is written (or the session
-- forgotten).
CREATE TABLE IF NOT EXISTS session_track_events (
    room_sid  TEXT    NOT NULL,
    track_sid TEXT    NOT NULL,
    identity  TEXT    NOT NULL,
    name      TEXT    NOT NULL,    -- mic_status, webcam_status or screen_share_status
    status    TEXT    NOT NULL,    -- ANALYTICS_STATUS_STARTED or ANALYTICS_STATUS_ENDED
    at_ms     INTEGER NOT NULL,
    UNIQUE (room_sid, track_sid, status)
);
CREATE INDEX IF NOT EXISTS session_track_events_by_user
    ON session_track_events (room_sid, identity, name, at_ms);

-- Participants still inside are taken as leaving at the end: the trigger that marks them left
-- (0014's `webhook_room_finished`) may fire before or after this one.
CREATE TRIGGER IF NOT EXISTS session_analytics_written AFTER UPDATE OF is_running ON rooms
WHEN OLD.is_running = 1 AND NEW.is_running = 0
    AND COALESCE(json_extract(CASE WHEN json_valid(NEW.metadata) THEN NEW.metadata END,
        '$.room_features.enable_analytics'), 1)
BEGIN
    INSERT OR IGNORE INTO session_analytics (file_id, room_sid, room_id, body, bytes, created_at)
    SELECT NEW.sid || '-analytics', NEW.sid, NEW.room_id, f.body,
        length(CAST(f.body AS BLOB)), f.ended
    FROM (SELECT e.ended, json_object(
        'room', json_object(
            'room_id', NEW.room_id,
            'room_title', NEW.room_title,
            'room_total_users', CAST((SELECT COUNT(DISTINCT identity) FROM room_participants
                WHERE room_sid = NEW.sid AND hidden = 0) AS TEXT),
            'room_creation', CAST(NEW.created_at AS TEXT),
            'room_ended', CAST(e.ended AS TEXT),
            'room_duration', CAST(e.ended - NEW.created_at AS TEXT),
            'enabled_e2ee', json(CASE WHEN json_extract(
                CASE WHEN json_valid(NEW.metadata) THEN NEW.metadata END,
                '$.room_features.end_to_end_encryption_features.is_enabled')
                THEN 'true' ELSE 'false' END),
            'events', json_array()),
        -- Each user's joins and leaves, then what they published (by event name).
        'users', (SELECT json_group_array(json_set(u.entry, '$.events', json((
            SELECT json_group_array(json(x.e) ORDER BY x.k, x.s) FROM (
                SELECT 0 AS k, j.key AS s, j.value AS e FROM json_each(u.entry, '$.events') j
                UNION ALL
                SELECT 1, t.name, json_object('name', t.name, 'total', COUNT(*), 'values',
                    json_group_array(json_object('time', CAST(t.at_ms AS TEXT),
                        'value', t.status) ORDER BY t.at_ms, t.rowid))
                FROM session_track_events t
                WHERE t.room_sid = NEW.sid AND t.identity = u.user_id
                GROUP BY t.name) x)))) FROM (
            SELECT json_patch(json_object(
                'user_id', p.identity,
                'name', COALESCE(ru.name, MAX(p.name)),
                'is_admin', json(CASE WHEN ru.is_admin THEN 'true' ELSE 'false' END),
                'events', json_array(
                    json_object('name', 'joined', 'total', COUNT(*), 'values',
                        json_group_array(json_object(
                            'time', CAST(p.joined_at * 1000 AS TEXT),
                            'value', CAST(p.joined_at * 1000 AS TEXT))
                            ORDER BY p.joined_at, p.participant_sid)),
                    json_object('name', 'left', 'total', COUNT(*), 'values',
                        json_group_array(json_object(
                            'time', CAST(COALESCE(p.left_at, e.ended) * 1000 AS TEXT),
                            'value', CAST(COALESCE(p.left_at, e.ended) * 1000 AS TEXT))
                            ORDER BY p.joined_at, p.participant_sid)))),
                CASE WHEN json_valid(ru.metadata)
                    AND json_extract(ru.metadata, '$.ex_user_id') IS NOT NULL
                    THEN json_object('ex_user_id', json_extract(ru.metadata, '$.ex_user_id'))
                    ELSE '{}' END) AS entry, p.identity AS user_id
            FROM (SELECT * FROM room_participants
                  WHERE room_sid = NEW.sid AND hidden = 0
                  ORDER BY joined_at, participant_sid LIMIT 2000) p
            LEFT JOIN room_users ru ON ru.room_sid = p.room_sid AND ru.user_id = p.identity
            GROUP BY p.identity
            ORDER BY MIN(p.joined_at), p.identity) u)) AS body
        FROM (SELECT COALESCE(NEW.ended_at, NEW.created_at) AS ended) e) f;
    DELETE FROM session_track_events WHERE room_sid = NEW.sid;
END;

-- plugNmeet's `artifact_created` webhook (the file, as its artifact API shows it) and then its
-- `analytics_proceeded`, after the session's `session_ended` on each URL: whichever of the file
-- and that event is written second queues them.
CREATE TRIGGER IF NOT EXISTS analytics_announced_after_file AFTER INSERT ON session_analytics
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT o.room_sid, o.url, k.event,
        json_object('file_id', NEW.file_id, 'file_bytes', NEW.bytes), NEW.created_at,
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = o.room_sid AND w.url = o.url AND w.attempts > 0)
    FROM webhook_outbox o,
        (SELECT 1 AS n, 'artifact_created' AS event UNION ALL
         SELECT 2, 'analytics_proceeded') k
    WHERE o.room_sid = NEW.room_sid AND o.event = 'session_ended'
    ORDER BY o.id, k.n;
END;

CREATE TRIGGER IF NOT EXISTS analytics_announced_after_end AFTER INSERT ON webhook_outbox
WHEN NEW.event = 'session_ended'
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT NEW.room_sid, NEW.url, k.event,
        json_object('file_id', a.file_id, 'file_bytes', a.bytes), a.created_at,
        NEW.next_attempt_at
    FROM session_analytics a,
        (SELECT 1 AS n, 'artifact_created' AS event UNION ALL
         SELECT 2, 'analytics_proceeded') k
    WHERE a.room_sid = NEW.room_sid
    ORDER BY k.n;
END;

CREATE TRIGGER IF NOT EXISTS session_analytics_forgotten AFTER DELETE ON rooms
BEGIN
    DELETE FROM session_analytics WHERE room_sid = OLD.sid;
    DELETE FROM session_track_events WHERE room_sid = OLD.sid;
END;
