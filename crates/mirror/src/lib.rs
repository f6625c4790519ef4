//! Pairing two Hearths and mirroring each other's encrypted backups.
//!
//! See docs/mirror-protocol.md for the wire protocol and its versions.

pub mod identity;
