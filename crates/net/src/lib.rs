//! Networking knowledge that is independent of the web framework: the
//! captive portal, the hotspot (with its revert task), LAN discovery and
//! ZeroTier. See the README for what each module owns.

pub mod captive;
pub mod discovery;
pub mod hotspot;
pub mod zerotier;
