//! Who is on the other end of a connection, and which of our addresses it
//! reached: the captive portal redirects to the address the phone already
//! uses, whatever interface that is.

use std::net::{IpAddr, SocketAddr};

use axum::serve::IncomingStream;

/// Both ends of a TCP connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        let remote = *stream.remote_addr();
        let local = stream.io().local_addr().unwrap_or(remote);
        Peer { remote, local }
    }
}

impl Peer {
    /// The client's address as bans and rate limits see it: the IPv4
    /// address, or the /64 of an IPv6 one (a phone rotates the rest).
    pub fn client_key(&self) -> String {
        match self.remote.ip() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }

    /// `http://ADDR[:PORT]/`: where this client reaches us.
    pub fn home_url(&self) -> String {
        let host = match self.local.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        match self.local.port() {
            80 => format!("http://{host}/"),
            port => format!("http://{host}:{port}/"),
        }
    }
}
