//! Hearth's integration tests: one binary, many modules, each starting the
//! real `hearth` executable on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Shared helpers: the test server and a cookie-keeping HTTP client.
mod util;

/// The command line: exit codes, `hearth config`, `hearth db backup`, and
/// refusing a too-new database.
mod cli;

/// First-run claim, including two claims racing each other.
mod claim;

/// Login, logout, throttling, CSRF, cookies and sessions across restarts.
mod login;

/// Forms posted from another site (Origin, Referer) are refused.
mod origin;

/// The admin dashboard's readings.
mod dashboard;

/// The physical-presence reset file and the pre-seeded admin password.
mod reset;

/// systemd: the unit's hardening score and the notify protocol.
mod systemd;

/// Throwaway minisign keys and signed update bundles.
mod bundles;

/// Signed updates: checks, refusals, a full disk, kill -9 while switching.
mod update;

/// A data directory with a repository, for the backup modules.
mod lab;

/// Backups: round trips, standard-tool recovery, corruption, bad input.
mod backup;

/// The backup pages: set-up, uploads, watcher, downloads, restores.
mod backup_web;

/// Forgetting, pruning and rebuilding the index from packs.
mod prune;

/// A real three-node Garage cluster on 127.0.0.1 (scripts/garage-cluster).
mod garage;

/// The S3 target against that cluster: round trip, disaster recovery,
/// node failures, kills during uploads, a flipped byte, bad settings.
mod s3;

/// Disaster recovery from the bucket alone: the command line and the admin
/// page, a wrong passphrase included.
mod s3_recovery;

/// Healing packs lost or damaged here from the bucket's copies.
mod s3_heal;

/// Restores straight from the bucket, reading packs where they lie.
mod s3_stream;

/// The S3 target over HTTPS, behind a TLS proxy with a test CA.
mod s3_https;

/// The hotspot's name and password through (a fake) nmcli, with undo.
mod hotspot;

/// Admin → Network: ZeroTier through a fake zerotier-one service API.
mod zerotier;

/// Devices in network namespaces joined by veth pairs.
mod netns;

/// Two real devices: pairing, mirroring, proof of storage, recovery.
mod mirror;

/// Two devices on one LAN: mDNS discovery, mirroring after a backup.
mod mirror_lan;

/// Updates from a paired peer: offered, refused, fetched over the peer channel.
mod update_peer;

/// The hotspot board and the captive portal.
mod board;

/// Boards shared between devices in namespaces: live, partitions, kill -9,
/// hop by hop, retractions.
mod board_share;

/// A hostile paired peer answering with garbage, forgeries and floods.
mod board_hostile;

/// Real headless Chromium driving the pages at phone and desktop widths.
mod browser;

/// Backups in Chromium: upload, snapshot, download, restore.
mod browser_backup;

/// The board in Chromium: live posts between two browsers.
mod browser_board;

/// Admin → Update in Chromium at 360 px: upload, progress, manifest, install, restart.
mod browser_update;

/// Pairing two devices through their admin pages in Chromium.
mod browser_peers;
