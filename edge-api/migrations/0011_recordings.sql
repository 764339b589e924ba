-- edgemeet edge-api schema, part 11: recordings and RTMP broadcasts sent to recorder nodes.
-- Idempotent, like the others.
--
-- Each recorder node heartbeats to the edge; its latest heartbeat is kept here. A node whose
-- heartbeat is older than `recorder_timeout_secs` is taken for dead: it gets no new job, and
-- the jobs it held no longer count as running (so a dead recorder cannot leave a room marked
-- as recording for good, as plugNmeet's can).
CREATE TABLE IF NOT EXISTS recorder_status (
    recorder_id  TEXT    PRIMARY KEY,
    heard_ms     INTEGER NOT NULL,   -- Unix ms, the edge's clock: when the edge last heard it
    sent_at_ms   INTEGER NOT NULL,   -- Unix ms, the node's clock: orders its heartbeats
    free_cores   REAL    NOT NULL,   -- cores its admission can still give
    jobs         INTEGER NOT NULL,   -- jobs running
    max_jobs     INTEGER NOT NULL,   -- its hard maximum of jobs
    accepts_files INTEGER NOT NULL   -- 0 while its disk or job store cannot take a new file
);

-- One row per job the edge sent: a recording (`kind` = 'recording', writes a file) or an RTMP
-- broadcast ('rtmp'). `state` follows the node's events: STARTING, ACTIVE, ENDING, COMPLETE,
-- FAILED. At most one job of each kind is live per session (the index below), so two
-- moderators pressing Record at once start one recording.
CREATE TABLE IF NOT EXISTS recording_jobs (
    job_id       TEXT    PRIMARY KEY,   -- also the recording's record_id
    room_sid     TEXT    NOT NULL,
    room_id      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    recorder_id  TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    reason       TEXT,
    created_ms   INTEGER NOT NULL,      -- Unix ms, the edge's clock
    updated_ms   INTEGER NOT NULL       -- Unix ms, the node's clock of its latest event (0: none yet)
);
CREATE UNIQUE INDEX IF NOT EXISTS recording_jobs_one_live
    ON recording_jobs (room_sid, kind) WHERE state IN ('STARTING', 'ACTIVE', 'ENDING');
CREATE INDEX IF NOT EXISTS recording_jobs_by_recorder ON recording_jobs (recorder_id, state);

-- Finished recordings: plugNmeet's recording/fetch and recording/info.
CREATE TABLE IF NOT EXISTS recordings (
    record_id        TEXT    PRIMARY KEY,
    room_id          TEXT    NOT NULL,
    room_sid         TEXT    NOT NULL,
    recorder_id      TEXT    NOT NULL,
    file_path        TEXT    NOT NULL,
    file_bytes       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,   -- Unix seconds: when the recording started
    room_created_at  INTEGER NOT NULL    -- Unix seconds: when its session was created
);
CREATE INDEX IF NOT EXISTS recordings_by_room ON recordings (room_id, created_at);
CREATE INDEX IF NOT EXISTS recordings_by_time ON recordings (created_at);

-- A job outlives nothing of its session but its recording: when a session is forgotten
-- (past_rooms_retention_days), its jobs go with it. Recordings stay until deleted.
CREATE TRIGGER IF NOT EXISTS recording_jobs_session_forgotten AFTER DELETE ON rooms
BEGIN
    DELETE FROM recording_jobs WHERE room_sid = OLD.sid;
END;
