//! Networking knowledge that is independent of the web framework.

pub mod captive;
pub mod discovery;
pub mod hotspot;
pub mod zerotier;
