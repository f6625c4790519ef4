//! Pairing two Hearths and mirroring each other's encrypted backups.
//!
//! Every device is an *owner* (its backup packs go to its peers) and a
//! *holder* (it keeps its peers' packs, which it cannot read: they are age
//! files encrypted to the owner's key). Peers talk over mutual TLS on their
//! own port, pinned by certificate hash ([`tls`]), after pairing with a
//! short code and SPAKE2 ([`pairing`]). The wire protocol is HTTP/1.1 on
//! that connection and is written down, versioned, in
//! docs/mirror-protocol.md and [`protocol`]; the holder's side is `server`,
//! the owner's [`sync`].
//!
//! This root only declares the modules, re-exports the public names, and
//! starts the service. No module imports from it: each imports the module
//! that defines what it needs, so the module graph has no cycles (the
//! layers, bottom up, are listed in README.md).

mod blocking;
mod board_link;
pub mod boards;
pub mod client;
mod error;
pub mod identity;
mod offers;
pub mod pairing;
mod peers;
mod pool;
mod proof;
pub mod protocol;
mod recover;
mod server;
mod service;
pub mod sync;
pub mod tls;

pub use error::MirrorError;
pub use identity::{DeviceId, Identity};
pub use peers::{Peer, PeerState};
pub use protocol::{DEFAULT_PORT, PROTOCOL};
pub use service::{Mirror, Progress, Settings, UpdateOffer};

impl Mirror {
    /// Serves the peer port on `listener` and runs the owner's loop, on the
    /// current tokio runtime. It lives here, above both, because it is the
    /// one place that needs the holder's server and the owner's loop.
    pub fn start(&self, listener: tokio::net::TcpListener) -> Result<(), MirrorError> {
        let config =
            tls::server_config(&self.0.id).map_err(|e| MirrorError::Internal(e.to_string()))?;
        tokio::spawn(server::serve(self.clone(), listener, config));
        tokio::spawn(sync::run(self.clone()));
        tokio::spawn(boards::run(self.clone()));
        tokio::spawn(boards::announce(self.clone()));
        Ok(())
    }
}
