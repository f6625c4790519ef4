//! Mirror benchmark: two real Hearths, and a plain TLS copy of the same
//! bytes in the same run.
//!
//! `just bench-mirror` (or `cargo bench -p hearth --bench mirror`):
//!
//! 1. makes a backup repository of `MB` MiB (default 1024) of incompressible
//!    data with the real `hearth backup`;
//! 2. starts two release `hearth` processes on 127.0.0.1, pairs them
//!    through their admin pages, and times "Mirror now" until the holder has
//!    every pack (verified against its name and fsynced, as always);
//! 3. copies the same pack files over a plain rustls (TLS 1.3, same
//!    certificates and cipher suites) connection between two tasks of this
//!    process, writing them to files (no fsync, no hashing), once before
//!    the mirror run and once after;
//! 4. prints MB/s of all three, the ratio of the mirror to the *faster*
//!    plain copy (a noisy machine can only flatter the peer), and the CPU
//!    time and peak RSS of each Hearth.

#[path = "common.rs"]
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{claim, confirm, cpu_secs, env_num, hearth, pair, start, status_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run hearth");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

/// Copies `files` over one TLS 1.3 connection between two tasks, writing
/// them under `into`. Returns the seconds taken.
async fn plain_tls_copy(files: &[PathBuf], into: &Path) -> f64 {
    let (a, b) = (
        hearth_mirror::Identity::generate().expect("identity"),
        hearth_mirror::Identity::generate().expect("identity"),
    );
    let server = hearth_mirror::tls::server_config(&a).expect("server config");
    let client = hearth_mirror::tls::client_config(&b, Some(a.id)).expect("client config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).expect("size").len())
        .collect();
    let into = into.to_path_buf();
    let receiver = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .expect("tls accept");
        let mut buf = vec![0u8; 256 * 1024];
        for (i, size) in sizes.iter().enumerate() {
            let mut out = tokio::fs::File::create(into.join(i.to_string()))
                .await
                .expect("create");
            let mut left = *size;
            while left > 0 {
                let want = (left as usize).min(buf.len());
                let n = tls.read(&mut buf[..want]).await.expect("read");
                assert!(n > 0, "early end");
                out.write_all(&buf[..n]).await.expect("write");
                left -= n as u64;
            }
        }
    });
    let start = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("hearth.local").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .expect("tls connect");
    let mut buf = vec![0u8; 128 * 1024];
    for f in files {
        let mut file = tokio::fs::File::open(f).await.expect("open");
        loop {
            let n = file.read(&mut buf).await.expect("read pack");
            if n == 0 {
                break;
            }
            tls.write_all(&buf[..n]).await.expect("send");
        }
    }
    tls.flush().await.expect("flush");
    receiver.await.expect("receiver");
    start.elapsed().as_secs_f64()
}

fn main() {
    let mb = env_num("MB", 1024);
    let work = tempfile::tempdir().expect("tempdir");
    let (da, db) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(da.join("files")).expect("mkdir");
    std::fs::create_dir_all(&db).expect("mkdir");
    // The data: incompressible, 8 MiB files.
    for i in 0..mb.div_ceil(8) {
        let mut data = vec![0u8; 8 << 20];
        blake3::Hasher::new()
            .update(&i.to_le_bytes())
            .finalize_xof()
            .fill(&mut data);
        std::fs::write(da.join("files").join(format!("f{i}")), data).expect("data");
    }
    std::fs::write(da.join("pp"), "benchmark recovery passphrase\n").expect("pp");
    let backup = |args: &[&str]| {
        let mut cmd = hearth(&da, "Alpha", "");
        cmd.arg("backup")
            .arg("--data")
            .arg(da.join("data"))
            .args(args);
        run(&mut cmd);
    };
    let pp = da.join("pp");
    backup(&["init", "--passphrase-file", pp.to_str().expect("utf8")]);
    backup(&["run", da.join("files").to_str().expect("utf8")]);
    let files = packs(&da.join("data/repo/packs"));
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).expect("size").len())
        .sum();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sink = work.path().join("plain");
    let plain_copy = || {
        let _ = std::fs::remove_dir_all(&sink);
        std::fs::create_dir_all(&sink).expect("mkdir");
        rt.block_on(plain_tls_copy(&files, &sink))
    };
    let plain_before = plain_copy();

    let (a, b) = (start(&da, "Alpha", ""), start(&db, "Beta", ""));
    let (secs, cpu_a, cpu_b) = rt.block_on(async {
        let http = common::http()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let (ca, _) = claim(&http, &a.url).await;
        let (cb, _) = claim(&http, &b.url).await;
        let (id_a, id_b) = pair(&http, (&a, &ca), (&b, &cb)).await;
        confirm(&http, &b, &cb, &id_a).await;
        // A's confirmation starts its first run: the timed one.
        let held = b.data.join("mirror").join(&id_a).join("packs");
        let (cpu_a0, cpu_b0) = (cpu_secs(a.child.id()), cpu_secs(b.child.id()));
        let start = Instant::now();
        confirm(&http, &a, &ca, &id_b).await;
        loop {
            if packs(&held).len() == files.len() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "mirror did not finish"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        (
            secs,
            cpu_secs(a.child.id()) - cpu_a0,
            cpu_secs(b.child.id()) - cpu_b0,
        )
    });
    let hwm = (
        status_kib(a.child.id(), "VmHWM"),
        status_kib(b.child.id(), "VmHWM"),
    );
    drop((a, b));

    let plain_after = plain_copy();
    let plain = plain_before.min(plain_after);

    let mbps = |s: f64| bytes as f64 / 1e6 / s;
    println!();
    println!(
        "Mirror benchmark: {} packs, {:.1} MB, one run, 127.0.0.1",
        files.len(),
        bytes as f64 / 1e6
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| hearth mirror A → B | {:.2} s, {:.0} MB/s |",
        secs,
        mbps(secs)
    );
    for (when, t) in [("before", plain_before), ("after", plain_after)] {
        println!(
            "| plain rustls copy of the same files, {when} | {t:.2} s, {:.0} MB/s |",
            mbps(t)
        );
    }
    println!("| mirror / faster plain copy | {:.2} |", plain / secs);
    println!("| CPU during the run, sender A / holder B | {cpu_a:.1} s / {cpu_b:.1} s |");
    println!(
        "| peak RSS, A / B | {:.1} / {:.1} MiB |",
        hwm.0 as f64 / 1024.0,
        hwm.1 as f64 / 1024.0
    );
}
