//! The client's retries against a scripted HTTP server on 127.0.0.1: each
//! connection gets the next answer of the script and is closed, and the
//! server keeps what each request carried.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::{ATTEMPTS, Client, S3Error, Target};

const QUORUM: &str = "<?xml version=\"1.0\"?><Error><Code>ServiceUnavailable</Code>\
<Message>Could not reach quorum of 2. 1 of 3 request succeeded</Message></Error>";
const BAD_KEY: &str = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code>\
<Message>No such key: GK123</Message></Error>";

/// A request as the server saw it: the request line and the body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Serves `script` (status, XML body), one answer per connection; a 200
/// carries an ETag, as S3's answer to a PUT does. Returns the endpoint.
fn serve(script: Vec<(u16, &'static str)>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in script {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0usize;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                let lower = header.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut got = vec![0; len];
            reader.read_exact(&mut got).unwrap();
            log.lock().unwrap().push((line.trim().to_string(), got));
            let reason = if status == 200 { "OK" } else { "Error" };
            let answer = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n\
                 ETag: \"e\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut stream = reader.into_inner();
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    (endpoint, seen)
}

fn client(endpoint: &str) -> Client {
    let target = Target {
        endpoint: endpoint.to_string(),
        region: "garage".into(),
        bucket: "hearth".into(),
        access_key: "GK123".into(),
        ca: String::new(),
    };
    Client::new(&target, "secret").unwrap()
}

#[test]
fn a_file_is_sent_whole_again_after_the_service_could_not_serve() {
    let (endpoint, seen) = serve(vec![(503, QUORUM), (500, QUORUM), (200, "")]);
    let dir = std::env::temp_dir().join(format!("hearth-s3-retry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pack");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    client(&endpoint).put_file("packs/ab/abc", &file).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "two refusals, then the upload");
    for (line, body) in seen.iter() {
        assert!(line.starts_with("PUT /hearth/packs/ab/abc"), "{line}");
        assert!(*body == bytes, "every attempt carries the whole file");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_outage_longer_than_the_retries_is_named() {
    let (endpoint, seen) = serve(vec![(503, QUORUM); ATTEMPTS as usize]);
    let err = client(&endpoint).get("HEARTH-REPO").unwrap_err();
    assert!(matches!(err, S3Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("Could not reach quorum"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize);
}

#[test]
fn settings_that_cannot_work_are_not_retried() {
    let (endpoint, seen) = serve(vec![(403, BAD_KEY), (200, "")]);
    let err = client(&endpoint)
        .put("key.age", b"sealed".to_vec())
        .unwrap_err();
    assert!(matches!(err, S3Error::BadKey(_)), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "a wrong key is asked once");
}
