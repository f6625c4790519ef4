-- Boards shared between paired Hearths (docs/board-replication.md).
--
-- Every post on a shared board is an event: numbered per (board, origin)
-- with no gaps, signed by the origin Hearth's identity key, and kept here
-- byte for byte so it can be forwarded unchanged. `board_posts` rows are
-- what pages show; an event becomes one once its thread is held.

CREATE TABLE board_shared (
    board_id INTEGER PRIMARY KEY REFERENCES board_boards (id)
) STRICT;

-- origin: the device ID (hex) of the Hearth the post was written on;
-- NULL for posts made before this migration.
-- seq: its event's number there; NULL for posts that never travel.
-- hlc: hybrid logical clock, (milliseconds << 16) + counter, set at the
-- origin; the merged order of posts.
-- activity: a thread's newest hlc, its replies included.
-- origin_name: the name of the Hearth a remote post came from.
-- photo_note: a remote post's photo that did not come with it, and why.
ALTER TABLE board_posts ADD COLUMN origin TEXT;
ALTER TABLE board_posts ADD COLUMN seq INTEGER;
ALTER TABLE board_posts ADD COLUMN hlc INTEGER NOT NULL DEFAULT 0;
ALTER TABLE board_posts ADD COLUMN activity INTEGER NOT NULL DEFAULT 0;
ALTER TABLE board_posts ADD COLUMN origin_name TEXT;
ALTER TABLE board_posts ADD COLUMN photo_note TEXT;
UPDATE board_posts SET hlc = created_at * 65536000, activity = last_activity * 65536000;

CREATE UNIQUE INDEX board_posts_event ON board_posts (board_id, origin, seq) WHERE seq IS NOT NULL;
CREATE INDEX board_posts_order ON board_posts (board_id, parent_id, pinned, activity);
CREATE INDEX board_posts_hlc ON board_posts (hlc);

CREATE TABLE board_share_events (
    board   TEXT    NOT NULL,   -- the board's name: how Hearths match boards
    origin  TEXT    NOT NULL,   -- hex device ID of the Hearth that made it
    seq     INTEGER NOT NULL,   -- 1, 2, 3... per (board, origin)
    kind    TEXT    NOT NULL,   -- post, retract
    body    TEXT    NOT NULL,   -- the signed JSON, byte for byte
    sig     BLOB    NOT NULL,   -- Ed25519 over body, by the origin's key
    target  INTEGER,            -- retract: the seq of the origin's post it takes back
    via     TEXT,               -- hex ID of the peer it came from; NULL: made here
    pending INTEGER NOT NULL DEFAULT 0,  -- a reply whose thread is not held yet
    at      INTEGER NOT NULL,   -- when it was stored here
    PRIMARY KEY (board, origin, seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX board_share_pending ON board_share_events (board, pending) WHERE pending = 1;

-- The certificates of origins met through forwarded events: an event is
-- checked against its origin's certificate, whose hash is the origin ID.
CREATE TABLE board_origins (
    origin TEXT PRIMARY KEY,
    cert   BLOB NOT NULL
) STRICT;
