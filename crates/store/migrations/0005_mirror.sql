-- Mirroring between paired Hearths. Every device is both an owner (its
-- backup packs go to its peers) and a holder (it keeps its peers' packs).

-- A paired (or proposed) device, named by its certificate hash.
CREATE TABLE mirror_peers (
    device      TEXT    PRIMARY KEY,          -- hex SHA-256 of its certificate
    name        TEXT    NOT NULL,             -- what its admin calls it
    address     TEXT    NOT NULL DEFAULT '',  -- host[:port] we dial ('' = it dials us)
    state       TEXT    NOT NULL CHECK (state IN ('proposed', 'confirmed')),
    quota       INTEGER NOT NULL DEFAULT 0,   -- bytes we hold for it
    replaces    TEXT,                         -- for a replacement: the device it takes over from
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER,                      -- last successful contact, either way
    last_error  TEXT
) STRICT;

-- Packs we hold for an owner. A row is written after the file is durable;
-- delete_after is set when the owner asks for a deletion (the grace period).
CREATE TABLE mirror_held (
    owner        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    delete_after INTEGER,
    PRIMARY KEY (owner, name)
) STRICT;

-- Packs a peer has confirmed it holds for us.
CREATE TABLE mirror_sent (
    peer    TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    size    INTEGER NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (peer, name)
) STRICT;

-- Proof-of-storage checks we ran against a peer.
CREATE TABLE mirror_proofs (
    id      INTEGER PRIMARY KEY,
    peer    TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    checked INTEGER NOT NULL,
    failed  INTEGER NOT NULL,
    detail  TEXT    NOT NULL
) STRICT;
CREATE INDEX mirror_proofs_peer ON mirror_proofs (peer, at);

-- Packs a proof of storage found missing or damaged at a peer: sent again
-- whatever the peer says it holds, then removed from here.
CREATE TABLE mirror_resend (
    peer TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (peer, name)
) STRICT;
