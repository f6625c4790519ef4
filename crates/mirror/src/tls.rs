//! Mutual TLS between Hearths, pinned by certificate hash.
//!
//! There is no certificate authority: each device's certificate is
//! self-signed, and a peer is who its certificate hash says it is. The
//! server asks every client for a certificate and accepts any well-formed
//! one whose handshake signature checks; *which* devices may do what is
//! decided per request from the hash (only pairing is open to strangers).
//! The client pins the server's hash when it knows it, and accepts any
//! server only for pairing, where the PAKE transcript binds both hashes
//! (see `pairing`).

use std::sync::Arc;

use rustls::{
    DigitallySignedStruct, DistinguishedName, Error, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

use crate::identity::{DeviceId, Identity};

/// The name clients put in their hello; certificates are pinned, not
/// matched by name.
pub const SERVER_NAME: &str = "hearth.local";

/// ring's suites, with ChaCha20-Poly1305 first on a CPU without AES
/// instructions. Why: the Raspberry Pi 4's Cortex-A72 has none, and there
/// ChaCha20 (NEON) is several times faster than AES-GCM in software, while
/// rustls's default order puts AES first. Every Hearth orders the same way,
/// so two Pis agree on ChaCha20.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(provider_for(aes_in_hardware()))
}

fn provider_for(aes_in_hardware: bool) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !aes_in_hardware {
        p.cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    }
    p
}

fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[derive(Debug)]
struct Signatures(WebPkiSupportedAlgorithms);

impl Signatures {
    fn new() -> Signatures {
        Signatures(provider().signature_verification_algorithms)
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
}

/// Any client with a certificate; who it is gets checked per request.
#[derive(Debug)]
struct AnyClient(Signatures);

impl ClientCertVerifier for AnyClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.0.supported_schemes()
    }
}

/// The server must be `pinned`, or anyone when pairing (`None`).
#[derive(Debug)]
struct Pinned {
    pinned: Option<DeviceId>,
    sigs: Signatures,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.pinned {
            None => Ok(ServerCertVerified::assertion()),
            Some(want) if DeviceId::of_cert(end_entity) == want => {
                Ok(ServerCertVerified::assertion())
            }
            Some(want) => Err(Error::General(format!(
                "this is not the paired device {} (its certificate is {})",
                want.short(),
                DeviceId::of_cert(end_entity).short()
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.sigs.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.sigs.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.sigs.0.supported_schemes()
    }
}

fn key_of(id: &Identity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone()))
}

/// The peer port's server side: TLS 1.3, a client certificate required.
pub fn server_config(id: &Identity) -> Result<Arc<rustls::ServerConfig>, Error> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyClient(Signatures::new())))
        .with_single_cert(vec![CertificateDer::from(id.cert_der.clone())], key_of(id))?;
    Ok(Arc::new(config))
}

/// The client side, presenting our certificate and pinning the server's
/// (`None` only for pairing).
pub fn client_config(
    id: &Identity,
    pinned: Option<DeviceId>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            pinned,
            sigs: Signatures::new(),
        }))
        .with_client_auth_cert(vec![CertificateDer::from(id.cert_der.clone())], key_of(id))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use rustls::CipherSuite::*;

    use super::provider_for;

    #[test]
    fn chacha20_comes_first_only_without_aes_instructions() {
        let first = |aes| provider_for(aes).cipher_suites[0].suite();
        assert_eq!(first(false), TLS13_CHACHA20_POLY1305_SHA256);
        assert_ne!(first(true), TLS13_CHACHA20_POLY1305_SHA256);
        // Nothing is dropped, only reordered.
        assert_eq!(
            provider_for(false).cipher_suites.len(),
            provider_for(true).cipher_suites.len()
        );
    }
}
