-- An S3 target (docs/scale-out.md): where backups go besides this device.
-- At most one row. The secret key is not here: it is a 0600 file beside
-- the database (s3-secret), so a copy of the database gives no access.
CREATE TABLE backup_target (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    endpoint      TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    bucket        TEXT    NOT NULL,
    access_key    TEXT    NOT NULL,
    set_at        INTEGER NOT NULL,
    last_upload   INTEGER NOT NULL DEFAULT 0,   -- last pack confirmed stored
    last_check    INTEGER NOT NULL DEFAULT 0,   -- last verify against the bucket
    failing_since INTEGER NOT NULL DEFAULT 0,   -- 0 while uploads work
    last_error    TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Packs the target has confirmed storing (a row only after its 200). The
-- upload queue is "packs without a row". `condemned` is set by prune, in
-- the transaction that drops the pack here: those objects are swept from
-- the bucket once nothing waits. Only prune sets it, so a pack that a
-- repair left out (damaged or lost here) keeps its copy in the bucket.
CREATE TABLE backup_remote (
    name         TEXT    PRIMARY KEY,
    size         INTEGER NOT NULL,
    uploaded_at  INTEGER NOT NULL,
    verified_at  INTEGER NOT NULL DEFAULT 0,
    condemned    INTEGER NOT NULL DEFAULT 0
) STRICT;
