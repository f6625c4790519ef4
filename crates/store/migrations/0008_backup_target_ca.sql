-- The S3 target's own certificate authority (PEM), trusted for it besides
-- the system's: a LAN service whose certificate a CA of its own signed.
-- Empty for none. A public certificate, so kept in the row, unlike the
-- secret key.
ALTER TABLE backup_target ADD COLUMN ca TEXT NOT NULL DEFAULT '';
