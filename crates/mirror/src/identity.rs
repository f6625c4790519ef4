//! This device's long-term identity: an Ed25519 key and a self-signed
//! certificate, made on the device at first start and never baked into an
//! image.
//!
//! Peers pin each other by the SHA-256 of the certificate (the device ID);
//! no certificate authority is involved, so the names and dates inside the
//! certificate carry no meaning and are fixed.

use std::path::{Path, PathBuf};

use data_encoding::BASE32_NOPAD;

/// The folder under the data directory.
pub const IDENTITY_DIR: &str = "identity";
/// The device ID as text, for scripts and the image's first-boot checks.
pub const DEVICE_ID_FILE: &str = "device-id";

/// A device ID: the SHA-256 of the device's certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 32]);

impl DeviceId {
    /// The ID of the device holding `cert_der`.
    pub fn of_cert(cert_der: &[u8]) -> DeviceId {
        DeviceId(ring_sha256(cert_der))
    }

    /// Full form, base32 in groups of four: what the admin pages print in
    /// small type and what the database stores (as hex).
    pub fn long(&self) -> String {
        let b32 = BASE32_NOPAD.encode(&self.0);
        b32.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The short fingerprint people compare by eye when pairing: the first
    /// 40 bits in two groups of four base32 characters.
    pub fn short(&self) -> String {
        let b32 = BASE32_NOPAD.encode(&self.0);
        format!("{}-{}", &b32[..4], &b32[4..8])
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<DeviceId> {
        let raw = hex::decode(s).ok()?;
        Some(DeviceId(raw.try_into().ok()?))
    }
}

impl std::fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceId({})", self.short())
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short())
    }
}

fn ring_sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut id = [0u8; 32];
    id.copy_from_slice(d.as_ref());
    id
}

/// Why the identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a device certificate: {0}")]
    Generate(String),
}

/// The key and certificate, and the ID derived from them.
#[derive(Clone)]
pub struct Identity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub id: DeviceId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

impl Identity {
    /// Loads `data_dir/identity`, making it first if it does not exist.
    /// Blocking: call at start.
    pub fn load_or_create(data_dir: &Path) -> Result<Identity, IdentityError> {
        let dir = data_dir.join(IDENTITY_DIR);
        let (key_path, cert_path) = (dir.join("key.der"), dir.join("cert.der"));
        let id = match (std::fs::read(&key_path), std::fs::read(&cert_path)) {
            (Ok(key_der), Ok(cert_der)) => {
                let id = DeviceId::of_cert(&cert_der);
                Identity {
                    cert_der,
                    key_der,
                    id,
                }
            }
            _ => {
                let made = Identity::generate()?;
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                // The certificate's presence marks a complete identity, so
                // it is written last: a crash in between makes a new pair.
                write_durably(&key_path, &made.key_der)?;
                write_durably(&cert_path, &made.cert_der)?;
                log::info!("made this device's identity {}", made.id.long());
                made
            }
        };
        let id_file = data_dir.join(DEVICE_ID_FILE);
        let text = format!("{}\n", id.id.long());
        if std::fs::read_to_string(&id_file).ok().as_deref() != Some(text.as_str()) {
            write_durably(&id_file, text.as_bytes())?;
        }
        Ok(id)
    }

    /// A fresh key and certificate.
    pub fn generate() -> Result<Identity, IdentityError> {
        let gen_err = |e: rcgen::Error| IdentityError::Generate(e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(gen_err)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["hearth.local".to_string()]).map_err(gen_err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Hearth device");
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(4000, 1, 1);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        let cert_der = cert.der().to_vec();
        Ok(Identity {
            id: DeviceId::of_cert(&cert_der),
            cert_der,
            key_der: key.serialize_der(),
        })
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
    let path = path.to_path_buf();
    move |source| IdentityError::Io {
        action,
        path,
        source,
    }
}

/// `hearth_system::write_durably`, with the path in the error.
pub(crate) fn write_durably(path: &Path, data: &[u8]) -> Result<(), IdentityError> {
    hearth_system::write_durably(path, data).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id, again.id);
        assert_eq!(a.cert_der, again.cert_der);
        let text = std::fs::read_to_string(dir.path().join(DEVICE_ID_FILE)).unwrap();
        assert_eq!(text.trim(), a.id.long());
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Identity::load_or_create(other.path()).unwrap().id, a.id);
        assert_eq!(a.id.short().len(), 9);
        assert_eq!(DeviceId::from_hex(&a.id.to_hex()), Some(a.id));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("identity/key.der"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
