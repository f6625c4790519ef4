//! Hearth's S3 client.
//!
//! rusty-s3 builds and signs each request (SigV4, presigned URLs), so no
//! signing is written here; reqwest, already Hearth's HTTP client, sends
//! them. The client is blocking because its callers are the backup engine's
//! threads, which also read packs from disk with blocking I/O.
//!
//! Everything that can go wrong is one [`S3Error`] whose message says what
//! to fix (a name that does not resolve, a refused connection, a wrong key,
//! a missing bucket, a key that may not write, clocks that differ, an
//! endpoint that is not S3), because "Test connection" shows it as is.

mod error;

use std::io::{Read, Seek, Write};
use std::time::Duration;

use base64::Engine;
use md5::Digest;
use reqwest::blocking::Response;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use rusty_s3::{
    Bucket, Credentials, S3Action, UrlStyle,
    actions::{DeleteObject, GetObject, HeadObject, ListObjectsV2, PutObject},
};

pub use error::S3Error;

/// How long a presigned request stays valid. Requests are sent at once, so
/// this only has to cover a slow upload of one pack.
const VALID_FOR: Duration = Duration::from_secs(15 * 60);

/// The largest object Hearth reads into memory: a pack is at most
/// 24 MiB plus age's overhead, so anything far larger is not Hearth's.
pub const MAX_OBJECT: u64 = 64 << 20;

/// Attempts per request while the service says it cannot serve now, and
/// the wait before the second (doubled before each next): 3.5 s in all,
/// about what a Garage node takes to restart.
const ATTEMPTS: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// What a download hands its destination at a time.
const COPY_BUFFER: usize = 1 << 20;

/// The region a Garage cluster answers to unless its `s3_region` says
/// otherwise; the default in the CLI and on the admin page.
pub const DEFAULT_REGION: &str = "garage";

/// Where backups go: everything but the secret key, which is kept in its
/// own file and handed to [`Client::new`] separately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port` or `https://host`; a LAN Garage is
    /// `http://…:3900`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    /// PEM certificates of a certificate authority trusted for this
    /// target besides the system's (a LAN service with a CA of its own),
    /// or empty. Not a secret: it is a public certificate.
    pub ca: String,
}

/// The largest CA bundle accepted: a few certificates, not a file by
/// mistake.
pub const MAX_CA: usize = 64 << 10;

/// A connection to one bucket.
pub struct Client {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::blocking::Client,
    /// `host:port`, for messages.
    host: String,
}

/// Shows where it points, never the key.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("bucket", &self.bucket.name())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Checks the settings' shape (no network yet) and prepares a client.
    pub fn new(target: &Target, secret: &str) -> Result<Client, S3Error> {
        let url = url::Url::parse(target.endpoint.trim())
            .map_err(|e| S3Error::Settings(format!("the endpoint is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(S3Error::Settings(
                "the endpoint must start with http:// or https://".into(),
            ));
        }
        let host = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => return Err(S3Error::Settings("the endpoint has no host name".into())),
        };
        check_field("region", &target.region)?;
        check_field("access key ID", &target.access_key)?;
        check_field("secret key", secret)?;
        let b = &target.bucket;
        if b.len() < 3
            || b.len() > 63
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        {
            return Err(S3Error::Settings(format!(
                "\"{b}\" is not a bucket name: 3 to 63 lowercase letters, digits, dots or hyphens"
            )));
        }
        // Path-style URLs work with Garage, MinIO and AWS alike, and need
        // no wildcard DNS on a LAN.
        let bucket = Bucket::new(url, UrlStyle::Path, b.clone(), target.region.clone())
            .map_err(|e| S3Error::Settings(format!("the endpoint cannot be used: {e}")))?;
        use_ring();
        let mut http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300));
        if !target.ca.trim().is_empty() {
            http = http.tls_certs_merge(ca_certificates(&target.ca)?);
        }
        let http = http
            .build()
            .map_err(|e| S3Error::Other(format!("cannot start the HTTP client: {e}")))?;
        Ok(Client {
            bucket,
            credentials: Credentials::new(target.access_key.clone(), secret.to_string()),
            http,
            host,
        })
    }

    /// Stores `body` under `key`. The service checks the body against its
    /// MD5 (`Content-MD5`), so a body damaged on the way is refused, not
    /// stored; a PUT is atomic, so a cut connection stores nothing.
    pub fn put(&self, key: &str, body: Vec<u8>) -> Result<(), S3Error> {
        let md5 = md5::Md5::digest(&body);
        let len = body.len() as u64;
        self.put_body(key, md5.into(), len, || Ok(body.clone().into()))
    }

    /// Stores the file at `path` under `key`, streamed from disk (one
    /// pass for its MD5, one to send it), so memory stays flat however
    /// many uploads run at once.
    pub fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), S3Error> {
        let local = |e: std::io::Error| S3Error::Other(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(local)?;
        let mut md5 = md5::Md5::new();
        let len = std::io::copy(&mut file, &mut md5).map_err(local)?;
        // Each attempt streams the file from its start again.
        let body = || -> Result<reqwest::blocking::Body, S3Error> {
            let mut file = file.try_clone().map_err(local)?;
            file.rewind().map_err(local)?;
            Ok(reqwest::blocking::Body::sized(file.take(len), len))
        };
        self.put_body(key, md5.finalize().into(), len, body)
    }

    fn put_body(
        &self,
        key: &str,
        md5: [u8; 16],
        len: u64,
        body: impl Fn() -> Result<reqwest::blocking::Body, S3Error>,
    ) -> Result<(), S3Error> {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5);
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), key);
        action.headers_mut().insert("content-md5", md5.clone());
        let url = action.sign(VALID_FOR);
        let resp = self.send(key, || {
            Ok(self
                .http
                .put(url.clone())
                .header("content-md5", md5.clone())
                .header("content-length", len)
                .body(body()?))
        })?;
        let resp = self.check(resp, key)?;
        // Every S3 service answers a stored object with its ETag; a web
        // server that says 200 to anything does not.
        if resp.headers().get(reqwest::header::ETAG).is_none() {
            let page = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.contains("html"));
            return Err(S3Error::NotS3Endpoint(
                self.host.clone(),
                if page {
                    format!(
                        "it answered with a web page (status {})",
                        resp.status().as_u16()
                    )
                } else {
                    "it accepted an upload without confirming it (no ETag)".into()
                },
            ));
        }
        Ok(())
    }

    /// Copies the object `key` into `out`; returns its length.
    pub fn get_to(&self, key: &str, out: &mut impl Write) -> Result<u64, S3Error> {
        let url = GetObject::new(&self.bucket, Some(&self.credentials), key).sign(VALID_FOR);
        let resp = self.send(key, || Ok(self.http.get(url.clone())))?;
        let resp = self.check(resp, key)?;
        if resp.content_length().is_some_and(|l| l > MAX_OBJECT) {
            return Err(S3Error::Other(format!(
                "{key} is larger than any object Hearth writes"
            )));
        }
        let mut limited = resp.take(MAX_OBJECT + 1);
        // io::copy reads straight into a BufWriter's buffer, so `out` (a
        // pack file and its hash, mostly) gets 1 MiB at a time instead of
        // io::copy's own 8 KiB: 750 writes per downloaded GiB, not 95,000.
        let mut buffered = std::io::BufWriter::with_capacity(COPY_BUFFER, out);
        let n = std::io::copy(&mut limited, &mut buffered).map_err(|e| {
            S3Error::Unavailable(format!("reading {key} from {} broke off: {e}", self.host))
        })?;
        buffered
            .flush()
            .map_err(|e| S3Error::Other(format!("keeping {key} on this device failed: {e}")))?;
        if n > MAX_OBJECT {
            return Err(S3Error::Other(format!(
                "{key} is larger than any object Hearth writes"
            )));
        }
        Ok(n)
    }

    /// The object `key` in memory.
    pub fn get(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let mut out = vec![];
        self.get_to(key, &mut out)?;
        Ok(out)
    }

    /// `len` bytes of `key` from `start` (an HTTP range request), for a
    /// restore that reads packs where they lie. Fewer bytes than asked for
    /// is an error: the caller asks only within the listed length. A
    /// service that ignores the range and sends the whole object is
    /// refused rather than read through, since that would cost a pack per
    /// read. Read into `out` (emptied first), so a caller that reads many
    /// ranges can reuse its buffers rather than have the kernel hand out
    /// and fault in fresh pages for each.
    pub fn get_range_into(
        &self,
        key: &str,
        start: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), S3Error> {
        out.clear();
        if len == 0 {
            return Ok(());
        }
        let url = GetObject::new(&self.bucket, Some(&self.credentials), key).sign(VALID_FOR);
        let range = format!("bytes={start}-{}", start + len - 1);
        let resp = self.send(key, || {
            Ok(self
                .http
                .get(url.clone())
                .header(reqwest::header::RANGE, range.clone()))
        })?;
        let resp = self.check(resp, key)?;
        if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            return Err(S3Error::Other(format!(
                "{} answered a request for part of {key} with the whole object",
                self.host
            )));
        }
        out.reserve(usize::try_from(len).unwrap_or(0));
        resp.take(len).read_to_end(out).map_err(|e| {
            S3Error::Unavailable(format!("reading {key} from {} broke off: {e}", self.host))
        })?;
        if out.len() as u64 != len {
            return Err(S3Error::Unavailable(format!(
                "{} sent {} of the {len} bytes asked for of {key}",
                self.host,
                out.len()
            )));
        }
        Ok(())
    }

    /// The length of `key`, or `None` when there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let url = HeadObject::new(&self.bucket, Some(&self.credentials), key).sign(VALID_FOR);
        let resp = self.send(key, || Ok(self.http.head(url.clone())))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.check(resp, key)?;
        Ok(resp.content_length())
    }

    /// Every object under `prefix`, with its length, across as many pages
    /// as the service needs.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, S3Error> {
        let mut out = vec![];
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(VALID_FOR);
            let resp = self.send("the bucket listing", || Ok(self.http.get(url.clone())))?;
            let text = self
                .check(resp, "the bucket listing")?
                .text()
                .map_err(|e| self.transport(e))?;
            let page = ListObjectsV2::parse_response(&text).map_err(|_| {
                S3Error::NotS3(format!(
                    "{} answered a bucket listing with something that is not one",
                    self.host
                ))
            })?;
            out.extend(
                page.contents
                    .into_iter()
                    .map(|c| (c.key, c.size.unwrap_or(0))),
            );
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Deletes `key`; deleting what is not there is not an error (S3's
    /// DELETE is idempotent, which is what makes a repeated sweep safe).
    pub fn delete(&self, key: &str) -> Result<(), S3Error> {
        let url = DeleteObject::new(&self.bucket, Some(&self.credentials), key).sign(VALID_FOR);
        let resp = self.send(key, || Ok(self.http.delete(url.clone())))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.check(resp, key).map(drop)
    }

    /// "Test connection": writes a small object, reads it back and deletes
    /// it, so a key that may read but not write is caught too.
    pub fn test(&self) -> Result<(), S3Error> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| S3Error::Other(format!("no random numbers: {e}")))?;
        let key = format!("hearth-test-{}", hex::encode(nonce));
        let body = format!("Hearth connection test {key}\n").into_bytes();
        self.put(&key, body.clone())?;
        let back = self.get(&key)?;
        self.delete(&key)?;
        if back != body {
            return Err(S3Error::Other(
                "the bucket gave back different bytes than were stored".into(),
            ));
        }
        Ok(())
    }

    /// Sends the request `build` makes, again while the service answers
    /// that it cannot serve now (a 5xx: for Garage, too few nodes for a
    /// quorum, as for the moment a node restarts) or the connection breaks
    /// before an answer; at most [`ATTEMPTS`] times, waiting 0.5, 1 and 2 s
    /// between. Every request Hearth makes is idempotent (a PUT of the same
    /// bytes under the same name, GET, HEAD, LIST, DELETE), so sending one
    /// again is safe. The last answer is returned whatever its status; a
    /// longer outage is the uploader's queue's to wait out, and settings
    /// that cannot work (refused, no such name, a wrong key) are not
    /// retried.
    fn send(
        &self,
        what: &str,
        build: impl Fn() -> Result<reqwest::blocking::RequestBuilder, S3Error>,
    ) -> Result<Response, S3Error> {
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            let why = match build()?.send() {
                Ok(resp) if !resp.status().is_server_error() || attempt == ATTEMPTS => {
                    return Ok(resp);
                }
                Ok(resp) => format!("it answered {}", resp.status().as_u16()),
                Err(e) => match self.transport(e) {
                    S3Error::Unavailable(why) if attempt < ATTEMPTS => why,
                    other => return Err(other),
                },
            };
            log::info!(
                "S3 {what} at {}: {why}; trying again in {} ms (attempt {attempt} of {ATTEMPTS})",
                self.host,
                wait.as_millis()
            );
            std::thread::sleep(wait);
            wait *= 2;
            attempt += 1;
        }
    }

    /// A response with a success status, or the error its body names.
    fn check(&self, resp: Response, what: &str) -> Result<Response, S3Error> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let is_xml = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|t| t.contains("xml"));
        let mut body = String::new();
        let _ = resp.take(64 * 1024).read_to_string(&mut body);
        Err(error::from_response(
            status.as_u16(),
            is_xml,
            &body,
            what,
            &self.host,
            self.bucket.name(),
        ))
    }

    fn transport(&self, e: reqwest::Error) -> S3Error {
        error::from_transport(&e, &self.host)
    }
}

/// Makes ring the process's rustls provider. reqwest is built with
/// `rustls-no-provider` (HTTPS endpoints, without a second crypto library
/// beside ring), and then every reqwest client in the process, not only
/// this one, needs a provider installed before it is built: `hearth` calls
/// this first thing. Repeated calls do nothing.
pub fn use_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a CA bundle in PEM, each checked as X.509; a
/// bundle with none, or with anything else, is refused by name.
fn ca_certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, S3Error> {
    let bad = |why: &str| S3Error::Settings(format!("the CA certificate {why}"));
    if pem.len() > MAX_CA {
        return Err(bad(
            "is larger than any certificate bundle (64 KiB at most)",
        ));
    }
    let ders: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("is not valid PEM"))?;
    if ders.is_empty() {
        return Err(bad(
            "holds no certificate: give the PEM text from -----BEGIN CERTIFICATE-----",
        ));
    }
    ders.iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map_err(|_| bad("is not an X.509 certificate"))?;
            reqwest::Certificate::from_der(der).map_err(|_| bad("cannot be used"))
        })
        .collect()
}

fn check_field(what: &str, value: &str) -> Result<(), S3Error> {
    if value.trim().is_empty() {
        return Err(S3Error::Settings(format!("the {what} is empty")));
    }
    if value.len() > 256 || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(S3Error::Settings(format!(
            "the {what} has spaces or characters it cannot have"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
