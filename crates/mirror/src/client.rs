//! The owner's end of a peer connection: HTTP/1.1 (hyper) over TLS 1.3
//! (rustls), our certificate presented and the peer's pinned.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Method, Request, StatusCode, body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::MirrorError,
    identity::{DeviceId, Identity},
    protocol::{DEFAULT_PORT, Refusal},
    tls,
};

/// A request or response body.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Wraps bytes as a body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// How long to wait for a peer to answer the phone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One open connection to a peer.
pub struct Conn {
    sender: SendRequest<Body>,
    /// The certificate hash the peer presented.
    pub server: DeviceId,
    pub address: String,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("server", &self.server)
            .field("address", &self.address)
            .finish()
    }
}

/// `host`, `host:port`, `[v6]:port` or `v6`: the peer port defaults to 7443.
pub fn with_port(address: &str) -> String {
    let a = address.trim();
    if a.starts_with('[') {
        if a.contains("]:") {
            a.to_string()
        } else {
            format!("{a}:{DEFAULT_PORT}")
        }
    } else if a.matches(':').count() > 1 {
        format!("[{a}]:{DEFAULT_PORT}")
    } else if a.contains(':') {
        a.to_string()
    } else {
        format!("{a}:{DEFAULT_PORT}")
    }
}

/// Connects to `address`, pinning `pinned` (or anyone, when pairing).
pub async fn connect(
    id: &Identity,
    address: &str,
    pinned: Option<DeviceId>,
) -> Result<Conn, MirrorError> {
    let address = with_port(address);
    let unreachable = |message: String| MirrorError::Unreachable {
        address: address.clone(),
        message,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&address))
        .await
        .map_err(|_| unreachable("no answer within 10 seconds".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let config =
        tls::client_config(id, pinned).map_err(|e| MirrorError::Internal(e.to_string()))?;
    let name =
        ServerName::try_from(tls::SERVER_NAME).map_err(|e| MirrorError::Internal(e.to_string()))?;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| unreachable("the secure handshake did not finish".into()))?
    .map_err(|e| unreachable(format!("secure connection refused: {e}")))?;
    let server = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| DeviceId::of_cert(c))
        .ok_or_else(|| unreachable("it presented no certificate".into()))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("mirror: connection closed: {e}");
        }
    });
    Ok(Conn {
        sender,
        server,
        address,
    })
}

impl Conn {
    /// Sends a request and returns the response, refusals turned into
    /// errors carrying the peer's words.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<hyper::Response<Incoming>, MirrorError> {
        self.send_as(method, path, body, "application/octet-stream")
            .await
    }

    /// Sends `len` bytes of raw body with their length declared, so the
    /// body goes out as it is rather than in chunked framing.
    pub async fn send_sized(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        len: u64,
    ) -> Result<hyper::Response<Incoming>, MirrorError> {
        self.send_req(method, path, body, "application/octet-stream", Some(len))
            .await
    }

    /// Sends a JSON body; the answer is the caller's to read (with a limit
    /// of its choosing).
    pub async fn send_json(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<hyper::Response<Incoming>, MirrorError> {
        self.send_as(method, path, body, "application/json").await
    }

    async fn send_as(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
    ) -> Result<hyper::Response<Incoming>, MirrorError> {
        self.send_req(method, path, body, content_type, None).await
    }

    async fn send_req(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
        len: Option<u64>,
    ) -> Result<hyper::Response<Incoming>, MirrorError> {
        let resp = self.send_raw(method, path, body, content_type, len).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(refusal(resp).await)
    }

    /// A GET of something the peer may not have: `None` on 404 (which is
    /// also what a peer answers that predates the route).
    pub async fn get_optional(
        &mut self,
        path: &str,
    ) -> Result<Option<hyper::Response<Incoming>>, MirrorError> {
        let resp = self
            .send_raw(
                Method::GET,
                path,
                full(Bytes::new()),
                "application/octet-stream",
                None,
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            // Read to the end, so the connection can carry the next request.
            let _ = read_limited(resp.into_body(), 64 * 1024).await;
            return Ok(None);
        }
        if resp.status().is_success() {
            return Ok(Some(resp));
        }
        Err(refusal(resp).await)
    }

    /// Sends a request and returns whatever the peer answered.
    async fn send_raw(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        content_type: &str,
        len: Option<u64>,
    ) -> Result<hyper::Response<Incoming>, MirrorError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, tls::SERVER_NAME)
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Some(len) = len {
            req = req.header(hyper::header::CONTENT_LENGTH, len);
        }
        let req = req
            .body(body)
            .map_err(|e| MirrorError::Internal(e.to_string()))?;
        self.sender.ready().await.map_err(|e| self.lost(e))?;
        self.sender
            .send_request(req)
            .await
            .map_err(|e| self.lost(e))
    }

    /// A JSON request with a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MirrorError> {
        let raw = serde_json::to_vec(body).map_err(|e| MirrorError::Internal(e.to_string()))?;
        let resp = self
            .send_as(method, path, full(raw), "application/json")
            .await?;
        let bytes = read_limited(resp.into_body(), 64 * 1024 * 1024).await?;
        serde_json::from_slice(&bytes).map_err(|e| MirrorError::Protocol(e.to_string()))
    }

    fn lost(&self, e: hyper::Error) -> MirrorError {
        MirrorError::Unreachable {
            address: self.address.clone(),
            message: format!("the connection broke: {e}"),
        }
    }
}

/// A refusal's words as an error: the peer's sentence, or its status.
async fn refusal(resp: hyper::Response<Incoming>) -> MirrorError {
    let status = resp.status();
    let body = read_limited(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Refusal>(&body)
        .map(|r| r.error)
        .unwrap_or_else(|_| format!("it answered {status}"));
    if status == StatusCode::INSUFFICIENT_STORAGE {
        MirrorError::Refused(format!("quota full: {message}"))
    } else {
        MirrorError::Refused(message)
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Vec<u8>, MirrorError> {
    let limited = http_body_util::Limited::new(body, limit);
    let collected = limited
        .collect()
        .await
        .map_err(|e| MirrorError::Protocol(format!("reading the answer: {e}")))?;
    Ok(collected.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(with_port("10.0.0.2"), "10.0.0.2:7443");
        assert_eq!(with_port("pi.local:9000"), "pi.local:9000");
        assert_eq!(with_port("fd00::1"), "[fd00::1]:7443");
        assert_eq!(with_port("[fd00::1]"), "[fd00::1]:7443");
        assert_eq!(with_port(" [fd00::1]:8 "), "[fd00::1]:8");
    }
}
