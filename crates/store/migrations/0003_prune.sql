-- Packs that prune has taken out of the index and will delete. Phase one
-- commits these rows together with the index that no longer names the
-- packs; phase two removes each file, fsyncs its folder, then the row. A
-- crash between the phases leaves only deletions to finish next time.
CREATE TABLE backup_condemned (
    name TEXT    PRIMARY KEY,
    at   INTEGER NOT NULL
) STRICT;
