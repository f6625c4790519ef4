//! The S3 target over HTTPS: the Garage cluster behind a TLS proxy on
//! 127.0.0.1 whose certificate a test CA signed. A device that does not
//! trust that CA refuses the endpoint with a reason and saves nothing; one
//! that does (`SSL_CERT_FILE`, which the system's certificate store also
//! honours) backs up and verifies through it, and one given the CA with the
//! target (`--ca-file`) recovers through it.

use std::{fs, net::SocketAddr, sync::Arc};

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{
    garage::Garage,
    lab::{Lab, assert_same_tree, awkward_tree},
    s3_recovery::recover_from_bucket,
};

/// A CA of our own, and a certificate for 127.0.0.1 it signed.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn new_pki() -> Pki {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Hearth test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca.der());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    Pki {
        ca_pem: format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// Accepts TLS on 127.0.0.1:0 and pipes each connection to `to` in plain
/// HTTP, as a reverse proxy in front of Garage would. It lives as long as
/// the test process.
fn tls_proxy(pki: &Pki, to: SocketAddr) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
    });
    addr
}

#[test]
fn https_endpoint_is_refused_untrusted_and_works_trusted() {
    let g = Garage::start();
    let pki = new_pki();
    let garage: SocketAddr = g
        .endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = tls_proxy(&pki, garage);
    let lab = Lab::new();
    let mut args = g.set_args();
    let at = args.iter().position(|a| a == "--endpoint").unwrap() + 1;
    args[at] = format!("https://127.0.0.1:{}", proxy.port());
    let set: Vec<&str> = args.iter().map(String::as_str).collect();

    // Trusting only another CA: refused, with the reason, and nothing saved.
    let other = lab.path("other-ca.pem");
    fs::write(&other, new_pki().ca_pem).unwrap();
    let untrusted = [("SSL_CERT_FILE", other.to_str().unwrap())];
    let (code, out, err) = lab.hearth_env(&set, &untrusted);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the S3 target was not saved")
            && err.contains("offered a certificate this device does not trust"),
        "{err}"
    );
    assert!(!lab.data().join("s3-secret").exists());
    let (_, out, err) = lab.hearth(&["target", "show"]);
    assert!(!out.contains("127.0.0.1"), "{out}{err}");

    // Trusting the CA that signed it: saved, and a backup goes up through it.
    let ca = lab.path("ca.pem");
    fs::write(&ca, &pki.ca_pem).unwrap();
    let trusted = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let (code, out, err) = lab.hearth_env(&set, &trusted);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("S3 target saved"), "{out}");
    let src = lab.path("src");
    awkward_tree(&src);
    let (code, out, err) = lab.hearth_env(&["run", src.to_str().unwrap()], &trusted);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("nothing waiting"), "{err}");
    let (code, out, err) = lab.hearth_env(&["verify", "--target", "s3", "--read-data"], &trusted);
    assert_eq!(code, 0, "{out}{err}");

    // A recovery from the bucket alone, through the proxy, on a device
    // whose system store trusts only the other CA: the CA given with the
    // target (--ca-file) is trusted for it. A file that is no certificate
    // is refused by name, and nothing is saved.
    let fresh = Lab::bare();
    let junk = fresh.path("junk.pem");
    fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let with_ca = |file: &std::path::Path| {
        let mut a: Vec<String> = args.clone();
        a.extend(["--ca-file".into(), file.to_str().unwrap().into()]);
        a
    };
    let junk_set = with_ca(&junk);
    let junk_set: Vec<&str> = junk_set.iter().map(String::as_str).collect();
    let (code, out, err) = fresh.hearth_env(&junk_set, &untrusted);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the S3 target was not saved: the CA certificate is not an X.509 certificate"),
        "{err}"
    );
    assert!(!fresh.data().join("s3-secret").exists());
    let ca_set = with_ca(&ca);
    let ca_set: Vec<&str> = ca_set.iter().map(String::as_str).collect();
    let (code, out, err) = fresh.hearth_env(&ca_set, &untrusted);
    assert_eq!(code, 0, "{out}{err}");
    let (_, show, _) = fresh.hearth_env(&["target", "show"], &untrusted);
    assert!(show.contains("the one given with --ca-file"), "{show}");
    recover_from_bucket(&fresh, &untrusted);
    let restored = fresh.path("restored");
    fresh.ok(&["restore", "1", "--target", restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);
}
