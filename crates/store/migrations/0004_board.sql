-- The hotspot board: boards, guests, posts (threads and replies), bans,
-- the moderation log and the live-update event log.

CREATE TABLE board_boards (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    position   INTEGER NOT NULL DEFAULT 0,
    locked     INTEGER NOT NULL DEFAULT 0,
    slow_secs  INTEGER NOT NULL DEFAULT 0,   -- seconds between posts per client
    created_at INTEGER NOT NULL
) STRICT;

-- A guest is a browser: a random id in a cookie, and the nickname it chose.
CREATE TABLE board_guests (
    id         TEXT    PRIMARY KEY,
    nickname   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE board_posts (
    id            INTEGER PRIMARY KEY,
    board_id      INTEGER NOT NULL REFERENCES board_boards (id),
    parent_id     INTEGER REFERENCES board_posts (id),  -- NULL: a thread
    guest_id      TEXT,                                  -- NULL: the admin
    nickname      TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    photo         TEXT,                                  -- attachment name
    address       TEXT    NOT NULL,                      -- client IP (or /64)
    created_at    INTEGER NOT NULL,
    pinned        INTEGER NOT NULL DEFAULT 0,
    hidden        INTEGER NOT NULL DEFAULT 0,
    last_activity INTEGER NOT NULL                       -- threads: newest reply
) STRICT;

CREATE INDEX board_posts_threads ON board_posts (board_id, parent_id, pinned, last_activity);
CREATE INDEX board_posts_replies ON board_posts (parent_id, id);
CREATE INDEX board_posts_author ON board_posts (guest_id, created_at);

CREATE VIRTUAL TABLE board_posts_fts USING fts5 (
    body, nickname, content = 'board_posts', content_rowid = 'id'
);
CREATE TRIGGER board_posts_ai AFTER INSERT ON board_posts BEGIN
    INSERT INTO board_posts_fts (rowid, body, nickname) VALUES (new.id, new.body, new.nickname);
END;
CREATE TRIGGER board_posts_ad AFTER DELETE ON board_posts BEGIN
    INSERT INTO board_posts_fts (board_posts_fts, rowid, body, nickname)
    VALUES ('delete', old.id, old.body, old.nickname);
END;

CREATE TABLE board_bans (
    id         INTEGER PRIMARY KEY,
    guest_id   TEXT,
    address    TEXT,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE board_modlog (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL
) STRICT;

-- Every change a live page must see, numbered: the SSE event ids. A client
-- reconnecting with Last-Event-ID N is sent every event after N.
CREATE TABLE board_events (
    id       INTEGER PRIMARY KEY,
    board_id INTEGER NOT NULL,
    kind     TEXT    NOT NULL,   -- post, remove, refresh
    post_id  INTEGER NOT NULL,
    at       INTEGER NOT NULL
) STRICT;

INSERT INTO board_boards (name, position, created_at) VALUES
    ('General', 0, strftime('%s', 'now')),
    ('Announcements', 1, strftime('%s', 'now'));
