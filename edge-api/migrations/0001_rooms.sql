-- edgemeet edge-api schema, SQLite dialect (Spin sqlite, Cloudflare D1, the local host).
-- Idempotent: every statement may run again on an existing database.

-- One row per room session. A room_id has at most one running session at a time; ended
-- sessions stay as past rooms.
CREATE TABLE IF NOT EXISTS rooms (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id             TEXT    NOT NULL,
    sid                 TEXT    NOT NULL UNIQUE,
    room_title          TEXT    NOT NULL,
    webhook_url         TEXT    NOT NULL DEFAULT '',
    metadata            TEXT    NOT NULL,
    max_participants    INTEGER NOT NULL DEFAULT 0,
    empty_timeout       INTEGER NOT NULL DEFAULT 0,
    region_hint         TEXT,
    region              TEXT,
    is_running          INTEGER NOT NULL DEFAULT 1,
    status              TEXT    NOT NULL DEFAULT 'created',
    joined_participants INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    ended_at            INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS rooms_one_running_session ON rooms (room_id) WHERE is_running = 1;
CREATE INDEX IF NOT EXISTS rooms_by_room_id ON rooms (room_id, id);
CREATE INDEX IF NOT EXISTS rooms_ended ON rooms (is_running, id);

-- The users a join token was issued for, with what the token does not carry. joined_at is set
-- the first time the user enters the room (their first session).
CREATE TABLE IF NOT EXISTS room_users (
    room_sid   TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    is_admin   INTEGER NOT NULL DEFAULT 0,
    is_hidden  INTEGER NOT NULL DEFAULT 0,
    metadata   TEXT    NOT NULL DEFAULT '{}',
    is_blocked INTEGER NOT NULL DEFAULT 0,
    joined_at  INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (room_sid, user_id)
);
