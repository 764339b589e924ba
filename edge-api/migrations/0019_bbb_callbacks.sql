-- edgemeet edge-api schema, part 19: BigBlueButton's callbacks, to the URLs a BBB `create` named
-- in its `meta_*` (kept lowercased in `bbb_meetings.meta`). Idempotent, like the others.
--
-- They go through the customer webhooks' outbox (0014), so they are queued in the statement
-- that made them and delivered, retried and ordered as those are; `webhooks.rs` writes them
-- as BBB sends them:
-- - `bbb_meeting_ended`: `meta_endCallbackUrl`, when the session ends, with whether anything
--   of it was recorded (BBB's `recordingmarks`).
-- - `bbb_recording_ready`: `meta_bbb-recording-ready-url` (or the `bn-` and `canvas-` names
--   BBB also reads), when each of its recordings is stored.
-- An empty URL is none.
CREATE TRIGGER IF NOT EXISTS bbb_meeting_ended AFTER UPDATE OF is_running ON rooms
WHEN OLD.is_running = 1 AND NEW.is_running = 0
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT b.room_sid, b.url, 'bbb_meeting_ended',
        json_object('meeting_id', b.meeting_id, 'recording_marks',
            EXISTS (SELECT 1 FROM recording_jobs WHERE room_sid = NEW.sid
                    AND kind = 'recording' AND state IN ('ACTIVE', 'ENDING', 'COMPLETE'))),
        COALESCE(NEW.ended_at, NEW.created_at),
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = b.room_sid AND w.url = b.url AND w.attempts > 0)
    FROM (SELECT room_sid, meeting_id, json_extract(meta, '$.endcallbackurl') AS url
          FROM bbb_meetings WHERE room_sid = NEW.sid) b
    WHERE b.url IS NOT NULL AND b.url != '';
END;

CREATE TRIGGER IF NOT EXISTS bbb_recording_ready AFTER INSERT ON recordings
BEGIN
    INSERT INTO webhook_outbox (room_sid, url, event, detail, created_at, next_attempt_at)
    SELECT b.room_sid, b.url, 'bbb_recording_ready',
        json_object('meeting_id', b.meeting_id, 'record_id', NEW.record_id),
        NEW.created_at,
        (SELECT COALESCE(MAX(w.next_attempt_at), 0) FROM webhook_outbox w
         WHERE w.room_sid = b.room_sid AND w.url = b.url AND w.attempts > 0)
    FROM (SELECT room_sid, meeting_id,
            COALESCE(NULLIF(json_extract(meta, '$."bbb-recording-ready-url"'), ''),
                NULLIF(json_extract(meta, '$."bn-recording-ready-url"'), ''),
                NULLIF(json_extract(meta, '$."canvas-recording-ready-url"'), '')) AS url
          FROM bbb_meetings WHERE room_sid = NEW.room_sid) b
    WHERE b.url IS NOT NULL;
END;
