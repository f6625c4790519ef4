//! The range reader against stand-ins for the bucket: one that refuses
//! connections, and one that serves ranges of one object and logs them.

use super::*;
use crate::{
    Keys,
    pack::{Kind, PackReader, PackWriter, pack_path},
};

/// `blobs` sealed into one real pack (stored uncompressed): its table
/// and its bytes.
fn sealed_pack(keys: &Keys, blobs: &[Vec<u8>]) -> (crate::pack::FinishedPack, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let mut w = PackWriter::create(dir.path(), keys).unwrap();
    for b in blobs {
        w.add(keys.chunk_id(b), Kind::Data, b, false, b.len())
            .unwrap();
    }
    let done = w.finish(dir.path(), keys).unwrap();
    let bytes = std::fs::read(pack_path(dir.path(), &done.name)).unwrap();
    (done, bytes)
}

/// The bucket's view of one pack of `len` bytes, behind `endpoint`.
fn packs_at(endpoint: String, name: &str, len: usize) -> Arc<Packs> {
    let target = hearth_s3::Target {
        endpoint,
        region: "garage".into(),
        bucket: "hearth".into(),
        access_key: "GK31c2f218a2e44f485b94239e".into(),
        ca: String::new(),
    };
    let client = Client::new(&target, "0123456789abcdef0123456789abcdef").unwrap();
    let sizes = HashMap::from([(name.to_string(), len as u64)]);
    Arc::new(Packs::new(client, "hearth/test/".into(), sizes))
}

/// A real pack of one 200 KB blob (four age pieces), and the bucket's
/// view of it: a client whose endpoint refuses connections, with the
/// pack's first `held` bytes already fetched.
fn pack_behind_a_dead_bucket(held: usize) -> (Arc<Packs>, String, Keys, u64, u32) {
    let keys = Keys::generate("test".into()).unwrap();
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let (done, bytes) = sealed_pack(&keys, &[blob]);
    let held = bytes[..held.min(bytes.len())].to_vec();
    let packs = packs_at("http://127.0.0.1:9".into(), &done.name, bytes.len());
    let buf = Arc::new(Buf {
        bytes: held,
        pool: packs.pool.clone(),
    });
    packs
        .warm
        .lock()
        .unwrap()
        .insert(done.name.clone(), vec![Block::whole(0, buf)]);
    let e = &done.entries[0];
    (packs, done.name, keys, e.offset, e.length)
}

/// The ranges asked for, as `start..end`, in order.
type Asked = Arc<Mutex<Vec<(u64, u64)>>>;

/// A stand-in for the bucket that answers range requests for one
/// object, ignoring the signature, and logs each range asked for.
fn serve_ranges(object: Vec<u8>) -> (String, Asked) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(vec![]));
    let (object, asked) = (Arc::new(object), log.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (object, asked) = (object.clone(), asked.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let (mut line, mut range) = (String::new(), None);
                    while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        let l = line.to_ascii_lowercase();
                        if let Some(v) = l.strip_prefix("range: bytes=") {
                            let (a, b) = v.trim().split_once('-').unwrap();
                            range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
                        }
                        line.clear();
                    }
                    let Some((a, b)) = range else { return };
                    asked.lock().unwrap().push((a, b + 1));
                    let body = &object[a as usize..=b as usize];
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                        body.len(),
                        object.len()
                    );
                    if conn
                        .write_all(head.as_bytes())
                        .and_then(|_| conn.write_all(body))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, log)
}

/// Two readers of neighbouring stretches of one pack, as two restore
/// writers with neighbouring runs of files: every Garage block is
/// asked for once, in requests that start and end on block bounds.
#[test]
fn neighbouring_readers_share_the_blocks_between_them() {
    let keys = Keys::generate("test".into()).unwrap();
    let mut seed = 1u64;
    let blobs: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            (0..900_000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect()
        })
        .collect();
    let (done, bytes) = sealed_pack(&keys, &blobs);
    let (endpoint, asked) = serve_ranges(bytes.clone());
    let packs = packs_at(endpoint, &done.name, bytes.len());
    // Writer one takes blobs 0 and 1, writer two blobs 2 and 3.
    for run in done.entries.chunks(2) {
        let r = packs.reader(&done.name).unwrap();
        let ahead = r.ahead();
        let end = run.last().map(|e| e.offset + u64::from(e.length)).unwrap();
        let mut pack = PackReader::from_reader(PackInput::Bucket(r), &done.name, &keys)
            .unwrap()
            .read_through(PIECE - 16);
        for e in run {
            ahead.store(cipher_end(end), Ordering::Relaxed);
            let stored = pack.read_at(e.offset, e.length).unwrap();
            assert_eq!(keys.chunk_id(&stored), e.id);
        }
    }
    let asked = asked.lock().unwrap().clone();
    let planned: Vec<_> = asked.iter().filter(|(a, b)| b - a >= SHARED_FROM).collect();
    let mut blocks: Vec<u64> = vec![];
    for &&(a, b) in &planned {
        assert_eq!(a % BLOCK, 0, "{asked:?}");
        assert!(b % BLOCK == 0 || b == bytes.len() as u64, "{asked:?}");
        blocks.extend(a / BLOCK..b.div_ceil(BLOCK));
    }
    let n = blocks.len();
    blocks.dedup();
    assert_eq!(blocks.len(), n, "a block was asked for twice: {asked:?}");
    assert_eq!(n as u64, (bytes.len() as u64).div_ceil(BLOCK), "{asked:?}");
}

/// Tree blobs close together are fetched in one request while
/// indexing; one far off, or one that would make the request too
/// large, in a request of its own.
#[test]
fn blobs_close_together_share_a_request() {
    let blob = |offset: u64, length: u32| crate::pack::Entry {
        id: [0; 32],
        kind: Kind::Tree,
        zstd: true,
        offset,
        length,
        raw_length: length,
    };
    let far = 3 * BLOCK;
    let big = MAX_REQUEST as u32 - 10;
    let blobs = [
        blob(0, 100),
        blob(200, 100),
        blob(300 + NEAR, 50),
        blob(far, 10),
        blob(far + 20, big),
    ];
    let refs: Vec<_> = blobs.iter().collect();
    let end = |b: &crate::pack::Entry| b.offset + u64::from(b.length);
    assert_eq!(
        reach(&refs),
        vec![
            end(&blobs[2]),
            end(&blobs[2]),
            end(&blobs[2]),
            end(&blobs[3]),
            end(&blobs[4])
        ]
    );
}

#[test]
fn held_pieces_are_read_without_asking_the_bucket() {
    let (packs, name, keys, offset, length) = pack_behind_a_dead_bucket(usize::MAX);
    let r = PackInput::Bucket(packs.reader(&name).unwrap());
    let mut pack = PackReader::from_reader(r, &name, &keys).unwrap();
    assert_eq!(pack.table().unwrap().len(), 1);
    let stored = pack.read_at(offset, length).unwrap();
    assert_eq!(keys.chunk_id(&stored), pack.table().unwrap()[0].id);
    assert_eq!(packs.requests.load(Ordering::Relaxed), 0);
}

/// A read the bucket cannot answer is named as the bucket's failure,
/// not as a damaged pack.
#[test]
fn a_failed_request_is_not_called_damage() {
    let (packs, name, keys, offset, length) = pack_behind_a_dead_bucket(PIECE as usize);
    let r = PackInput::Bucket(packs.reader(&name).unwrap());
    let mut pack = PackReader::from_reader(r, &name, &keys).unwrap();
    let err = pack.read_at(offset, length).unwrap_err();
    assert!(
        matches!(&err, BackupError::Fetch { pack, .. } if *pack == name),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("reading pack {name} from the S3 target failed: ")),
        "{err}"
    );
}
