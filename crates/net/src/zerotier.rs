//! ZeroTier: joining and leaving networks through the local `zerotier-one`
//! service, so two Hearths far apart can reach each other at their ZeroTier
//! addresses (docs/remote-access.md).
//!
//! `zerotier-one` runs as root and answers a small JSON API on
//! `127.0.0.1:9993`, guarded by the token in its `authtoken.secret`. Hearth
//! speaks that API with reqwest rather than linking ZeroTier's C++ core
//! (`zerotier-sys`): the service already owns the virtual interface, the
//! keys and the routes, and an HTTP client cannot crash it. The models are
//! small serde structs following the published service API instead of the
//! `zerotier-one-api` crate, which pins reqwest 0.11 with native TLS and
//! generates its code at build time.
//!
//! The token is read from its file on every call, so a reinstalled service
//! (a new token) needs no restart of Hearth, and it is held only for the
//! length of a request. Every failure is a [`ZeroTierError`] whose message
//! is a sentence an admin can act on; nothing here panics on what the
//! service or the admin sends.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use reqwest::{Method, StatusCode, Url, header::HeaderValue};
use serde::Deserialize;

/// Where `docs/remote-access.md` tells the admin how to install the service.
const INSTALL_HINT: &str =
    "see \"Remote access\" in Hearth's documentation (docs/remote-access.md)";

/// The largest answer read from the service: a list of a few networks is a
/// few KiB, so anything near this is not the service we expect.
const MAX_ANSWER: usize = 1024 * 1024;

/// Why a ZeroTier call did not happen or did not work.
#[derive(Debug, thiserror::Error)]
pub enum ZeroTierError {
    /// The admin typed something that is not a network ID; shown as it is.
    #[error(
        "\"{0}\" is not a ZeroTier network ID. A network ID is 16 characters, digits 0-9 and letters a-f, like 8056c2e21c000001."
    )]
    InvalidNetworkId(String),
    /// No token file: the service was never installed (or never started).
    #[error(
        "ZeroTier is not installed on this device (there is no {0}). To reach a paired Hearth over the internet, install zerotier-one: {INSTALL_HINT}."
    )]
    NotInstalled(String),
    /// The token file exists but Hearth may not read it.
    #[error(
        "Hearth cannot read ZeroTier's token file {path} ({reason}). The file must be readable by the hearth user: {INSTALL_HINT}."
    )]
    TokenUnreadable { path: String, reason: String },
    /// Nothing listens at the API address.
    #[error(
        "The ZeroTier service is not running (nothing answers at {0}). Start zerotier-one, or install it: {INSTALL_HINT}."
    )]
    NotRunning(String),
    /// The service refused the token.
    #[error(
        "The ZeroTier service refused Hearth's token from {0}. The file may be stale or belong to another ZeroTier installation: {INSTALL_HINT}."
    )]
    Unauthorized(String),
    /// This device is not a member of that network.
    #[error("This device has not joined network {0}.")]
    NotJoined(NetworkId),
    /// An answer that does not follow the service API.
    #[error("The ZeroTier service gave an unexpected answer ({0}).")]
    Unexpected(String),
    /// The configured API address is unusable; reported at start.
    #[error("zerotier_api {0}")]
    BadConfig(String),
}

impl ZeroTierError {
    /// Whether the service is simply not there (as opposed to there but
    /// misconfigured or misbehaving): the admin page then explains how to
    /// install it instead of offering a join form.
    pub fn is_absent(&self) -> bool {
        matches!(
            self,
            ZeroTierError::NotInstalled(_) | ZeroTierError::NotRunning(_)
        )
    }
}

/// A ZeroTier network ID: 16 lowercase hex digits (the controller's 10-digit
/// address, then a 6-digit network number). Holding one means the text was
/// checked, so nothing unchecked ever reaches a URL path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkId(String);

impl NetworkId {
    /// Checks what an admin typed or pasted: surrounding spaces are
    /// ignored and capitals accepted, since IDs are often copied from
    /// other pages.
    pub fn parse(text: &str) -> Result<NetworkId, ZeroTierError> {
        let t = text.trim();
        if t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(NetworkId(t.to_ascii_lowercase()))
        } else {
            // Echo at most a line's worth: this goes back into the page.
            let shown: String = t.chars().filter(|c| !c.is_control()).take(40).collect();
            Err(ZeroTierError::InvalidNetworkId(shown))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NetworkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// This device's node, from `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The 10-digit node ID a network's admin authorises.
    pub address: String,
    /// Whether at least one ZeroTier root is reachable (the device is on
    /// the internet as far as ZeroTier is concerned).
    #[serde(default)]
    pub online: bool,
    /// The service's version, e.g. `1.14.2`.
    #[serde(default)]
    pub version: String,
    /// Whether the slow TCP relay is in use because UDP is blocked.
    #[serde(default)]
    pub tcp_fallback_active: bool,
}

/// A network's state, as the service spells it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum NetworkStatus {
    /// Joined; waiting for the network's controller to answer.
    RequestingConfiguration,
    /// Configured: the addresses are assigned.
    Ok,
    /// The controller knows the network but has not authorised this node.
    AccessDenied,
    /// No controller has this network.
    NotFound,
    /// The virtual interface could not be created.
    PortError,
    /// The network needs a newer `zerotier-one`.
    ClientTooOld,
    /// A status newer than this code; shown as the service wrote it.
    Other(String),
}

impl From<String> for NetworkStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "REQUESTING_CONFIGURATION" => NetworkStatus::RequestingConfiguration,
            "OK" => NetworkStatus::Ok,
            "ACCESS_DENIED" => NetworkStatus::AccessDenied,
            "NOT_FOUND" => NetworkStatus::NotFound,
            "PORT_ERROR" => NetworkStatus::PortError,
            "CLIENT_TOO_OLD" => NetworkStatus::ClientTooOld,
            _ => NetworkStatus::Other(s),
        }
    }
}

impl NetworkStatus {
    /// The status in words, for the admin page.
    pub fn describe(&self) -> String {
        use NetworkStatus::*;
        let words = match self {
            RequestingConfiguration => "Waiting for the network's controller to answer…",
            Ok => "Connected",
            AccessDenied => "Not authorised yet: the network's admin must authorise this node ID.",
            NotFound => "No such network: check the network ID, then leave this one.",
            PortError => "ZeroTier could not create the network interface on this device.",
            ClientTooOld => "This network needs a newer zerotier-one than the one installed.",
            Other(s) => return format!("Status {s}"),
        };
        words.to_string()
    }

    /// Whether the network is usable.
    pub fn is_ok(&self) -> bool {
        *self == NetworkStatus::Ok
    }

    /// Whether the status is still settling (worth looking again soon).
    pub fn is_pending(&self) -> bool {
        *self == NetworkStatus::RequestingConfiguration
    }
}

/// A network this device has joined, from `GET /network[/{id}]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// The network ID (as the service wrote it).
    pub id: String,
    /// The name the controller gave it; empty until configured.
    #[serde(default)]
    pub name: String,
    pub status: NetworkStatus,
    /// This device's addresses on the network, with their prefix length
    /// (`10.147.17.23/24`): where peers reach it.
    #[serde(default)]
    pub assigned_addresses: Vec<String>,
    /// `PUBLIC` (anyone may join) or `PRIVATE` (members are authorised).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The virtual interface's name, e.g. `ztabcdef12`.
    #[serde(default)]
    pub port_device_name: String,
    #[serde(default)]
    pub mac: String,
}

impl Network {
    /// Whether strangers can be on this network: then they can reach this
    /// Hearth's pages too.
    pub fn is_public(&self) -> bool {
        self.kind.eq_ignore_ascii_case("PUBLIC")
    }
}

/// The settings sent when joining. ZeroTier's defaults already allow
/// managed addresses only; saying so explicitly keeps a network's
/// controller from taking over this device's default route, DNS or
/// public address ranges even if a local.conf changed the defaults.
const JOIN_SETTINGS: &str =
    r#"{"allowManaged":true,"allowGlobal":false,"allowDefault":false,"allowDNS":false}"#;

/// A client for the local `zerotier-one` service; cheap to clone (the HTTP
/// client and the paths are shared).
#[derive(Clone, Debug)]
pub struct ZeroTier {
    http: reqwest::Client,
    /// The API's base, e.g. `http://127.0.0.1:9993/`.
    base: Arc<Url>,
    /// The service's `authtoken.secret`, read on every call.
    token_file: Arc<PathBuf>,
}

impl ZeroTier {
    /// A client for the service at `api` (plain HTTP on a loopback address:
    /// the token travels in a header, so it must never leave the device),
    /// authenticating with the token in `token_file`. Nothing is contacted
    /// yet.
    pub fn new(api: &str, token_file: &Path) -> Result<ZeroTier, ZeroTierError> {
        let base = parse_base(api)?;
        // reqwest is built with `rustls-no-provider` (for Hearth's S3
        // client), so a provider must be installed before any client is
        // built; ring is Hearth's. Repeated installs do nothing.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // A proxy from the environment must not see the token.
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ZeroTierError::BadConfig(format!("cannot make an HTTP client: {e}")))?;
        Ok(ZeroTier {
            http,
            base: Arc::new(base),
            token_file: Arc::new(token_file.to_path_buf()),
        })
    }

    /// This device's node ID and whether it is online.
    pub async fn node_status(&self) -> Result<NodeStatus, ZeroTierError> {
        self.call(Method::GET, "status", None, None).await
    }

    /// Every network this device has joined.
    pub async fn networks(&self) -> Result<Vec<Network>, ZeroTierError> {
        let mut list: Vec<Network> = self.call(Method::GET, "network", None, None).await?;
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    /// One joined network's state.
    pub async fn network(&self, id: &NetworkId) -> Result<Network, ZeroTierError> {
        self.call(Method::GET, &format!("network/{id}"), None, Some(id))
            .await
    }

    /// Joins `id` (or re-sends the settings if already joined). The answer
    /// is usually still "requesting configuration": the controller answers
    /// within seconds.
    pub async fn join(&self, id: &NetworkId) -> Result<Network, ZeroTierError> {
        log::info!("zerotier: joining network {id}");
        self.call(
            Method::POST,
            &format!("network/{id}"),
            Some(JOIN_SETTINGS),
            None,
        )
        .await
    }

    /// Leaves `id`; its interface and addresses go away. The answer's body
    /// says nothing more than its status, so it is not parsed.
    pub async fn leave(&self, id: &NetworkId) -> Result<(), ZeroTierError> {
        log::info!("zerotier: leaving network {id}");
        self.call_raw(Method::DELETE, &format!("network/{id}"), None, Some(id))
            .await?;
        Ok(())
    }

    /// [`ZeroTier::call_raw`], then the answer parsed as `T`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&'static str>,
        about: Option<&NetworkId>,
    ) -> Result<T, ZeroTierError> {
        let raw = self.call_raw(method.clone(), path, body, about).await?;
        parse(&raw).map_err(|e| ZeroTierError::Unexpected(format!("{method} /{path}: {e}")))
    }

    /// One request: read the token, send, read a bounded answer, check the
    /// status. A 404 about network `about` means it is not joined.
    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&'static str>,
        about: Option<&NetworkId>,
    ) -> Result<Vec<u8>, ZeroTierError> {
        let token = self.token().await?;
        let url = self
            .base
            .join(path)
            .map_err(|e| ZeroTierError::BadConfig(format!("{}{path}: {e}", self.base)))?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("X-ZT1-Auth", token);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let mut resp = req.send().await.map_err(|e| self.send_error(&e))?;
        let status = resp.status();
        let mut raw = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.send_error(&e))? {
            if raw.len() + chunk.len() > MAX_ANSWER {
                return Err(ZeroTierError::Unexpected(format!(
                    "{method} /{path}: answer larger than {MAX_ANSWER} bytes"
                )));
            }
            raw.extend_from_slice(&chunk);
        }
        match (status, about) {
            (s, _) if s.is_success() => Ok(raw),
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => Err(
                ZeroTierError::Unauthorized(self.token_file.display().to_string()),
            ),
            (StatusCode::NOT_FOUND, Some(id)) => Err(ZeroTierError::NotJoined(id.clone())),
            (s, _) => Err(ZeroTierError::Unexpected(format!(
                "{method} /{path}: HTTP {}",
                s.as_u16()
            ))),
        }
    }

    /// The token, trimmed as the service itself trims it.
    async fn token(&self) -> Result<HeaderValue, ZeroTierError> {
        let path = &*self.token_file;
        let shown = path.display().to_string();
        let raw = match tokio::fs::read(path).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ZeroTierError::NotInstalled(shown));
            }
            Err(e) => {
                return Err(ZeroTierError::TokenUnreadable {
                    path: shown,
                    reason: e.to_string(),
                });
            }
        };
        token_header(&raw).ok_or(ZeroTierError::TokenUnreadable {
            path: shown,
            reason: "it is empty or not a token".into(),
        })
    }

    fn send_error(&self, e: &reqwest::Error) -> ZeroTierError {
        let at = self.base.as_str().trim_end_matches('/').to_string();
        if e.is_connect() || e.is_timeout() {
            log::debug!("zerotier: {at}: {e}");
            ZeroTierError::NotRunning(at)
        } else {
            ZeroTierError::Unexpected(format!("{at}: {e}"))
        }
    }
}

/// Checks and normalises the configured API address.
fn parse_base(api: &str) -> Result<Url, ZeroTierError> {
    let bad = |why: &str| ZeroTierError::BadConfig(format!("{api:?}: {why}"));
    let mut url = Url::parse(api.trim()).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad(
            "must start with http:// (the service speaks plain HTTP)",
        ));
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(bad(
            "must be a loopback address such as http://127.0.0.1:9993 (the token must not leave the device)",
        ));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must be a plain address, without a query or a user"));
    }
    // `join` replaces the last path segment unless the path ends in '/'.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The token as a header value, marked sensitive so it is never printed;
/// `None` if the file holds nothing usable.
fn token_header(raw: &[u8]) -> Option<HeaderValue> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn parse<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, String> {
    serde_json::from_slice(raw).map_err(|e| {
        if raw.is_empty() {
            "empty answer".to_string()
        } else {
            format!("not the JSON expected: {e}")
        }
    })
}

#[cfg(test)]
#[path = "zerotier_tests.rs"]
mod tests;
