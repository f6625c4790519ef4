-- The backup index and snapshot catalogue. Everything here can be rebuilt
-- from the packs and the key file (`hearth backup repair-index`); it exists
-- so lookups need no decryption and memory stays bounded.

CREATE TABLE backup_packs (
    name        TEXT    PRIMARY KEY,   -- BLAKE3 of the ciphertext, hex
    size        INTEGER NOT NULL,      -- ciphertext bytes
    created_at  INTEGER NOT NULL,
    verified_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE backup_chunks (
    id          BLOB    PRIMARY KEY,   -- keyed BLAKE3 of the plaintext
    pack        TEXT    NOT NULL REFERENCES backup_packs (name),
    kind        INTEGER NOT NULL,      -- 0 data, 1 tree, 2 snapshot
    zstd        INTEGER NOT NULL,      -- 1 if stored compressed
    offset      INTEGER NOT NULL,      -- in the pack's plaintext
    length      INTEGER NOT NULL,      -- stored bytes
    raw_length  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX backup_chunks_pack ON backup_chunks (pack);

-- Plaintext copies of tree blobs (zstd JSON), so browsing a snapshot needs
-- no pack decryption. The authoritative copy is in the packs.
CREATE TABLE backup_trees (
    id   BLOB PRIMARY KEY,
    data BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE backup_snapshots (
    id          INTEGER PRIMARY KEY,
    blob        BLOB    NOT NULL UNIQUE,  -- the snapshot blob's chunk id
    source      TEXT    NOT NULL,         -- the folder backed up
    time        INTEGER NOT NULL,         -- seconds since the epoch
    root        BLOB    NOT NULL,         -- tree id of the folder
    files       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,         -- size of all files
    added       INTEGER NOT NULL,         -- stored bytes this run added
    duration_ms INTEGER NOT NULL
) STRICT;

-- Folders backed up automatically.
CREATE TABLE backup_sources (
    path     TEXT    PRIMARY KEY,
    added_at INTEGER NOT NULL
) STRICT;
