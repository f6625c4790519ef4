//! Board benchmark: live delivery to many phones, and page throughput.
//!
//! `just bench-board` (or `cargo bench -p hearth --bench board`) runs the
//! real `hearth` binary on 127.0.0.1:0 and:
//!
//! 1. opens N server-sent-event connections to a board (default 1000);
//! 2. posts at a steady rate (default 20/s for 15 s) and measures, in each
//!    listener, the time from the post being sent to its event arriving;
//! 3. reports p50/p99 delivery latency and the server's RSS per connection;
//!    at the same time a second Hearth, paired and sharing the board, posts
//!    at the same rate: its posts reach the listeners over the peer channel
//!    (poke, pull, signature checks, store), and their p99 is printed next
//!    to the p99 of the first Hearth's own posts in the same run;
//! 4. measures requests/s of the board page next to a bare axum
//!    "hello world" served by a child process of this benchmark, with the
//!    same client settings, in the same run.
//!
//! Environment: `CLIENTS`, `RATE`, `SECONDS`, `LOAD_SECONDS`, `CONCURRENCY`.

#[path = "common.rs"]
mod common;

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{Node, claim, confirm, env_num, pair, rss_kib, spawn_ready, start};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Raises this process's open-file limit: a thousand sockets need it.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

/// The hello-world server, run as a child process so it, like hearth, is a
/// process of its own competing for the same cores as the load generator.
fn hello_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("ready at http://{}/", listener.local_addr().expect("addr"));
        axum::serve(listener, app).await.expect("serve");
    });
}

/// One SSE listener: records the latency of every post event it sees.
async fn listen(
    addr: String,
    base: Instant,
    lat: Arc<Mutex<[Vec<u64>; 2]>>,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let Ok(mut s) = TcpStream::connect(&addr).await else {
        return;
    };
    let req = format!(
        "GET /boards/1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let mut r = tokio::io::BufReader::new(s);
    let mut line = String::new();
    // Headers.
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
    }
    let _ = ready.send(()).await;
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(at) = line.find("bench-t=") {
            let digits: String = line[at + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(sent) = digits.parse::<u64>() {
                let now = base.elapsed().as_micros() as u64;
                // "bench-o=r": posted on the other Hearth.
                let from = usize::from(line.contains("bench-o=r"));
                lat.lock().expect("lock")[from].push(now.saturating_sub(sent));
            }
        }
    }
}

/// Requests/s for `path` on `addr` over keep-alive connections.
async fn load(addr: &str, path: &str, cookie: &str, secs: u64, concurrency: u64) -> f64 {
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (addr, path, cookie) = (addr.to_string(), path.to_string(), cookie.to_string());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n");
            let mut done = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            while Instant::now() < stop {
                s.write_all(req.as_bytes()).await.expect("write");
                // Read one response: headers, then Content-Length bytes.
                let mut have = 0;
                let (head_end, len) = loop {
                    let n = s.read(&mut buf[have..]).await.expect("read");
                    assert!(n > 0, "server closed");
                    have += n;
                    if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .expect("content-length");
                        break (end + 4, len);
                    }
                };
                let mut body = have - head_end;
                while body < len {
                    let n = s.read(&mut buf).await.expect("read body");
                    assert!(n > 0, "server closed");
                    body += n;
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("load task");
    }
    total as f64 / secs as f64
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--hello-server") {
        return hello_server();
    }
    raise_nofile();
    let clients = env_num("CLIENTS", 1000);
    let rate = env_num("RATE", 20);
    let seconds = env_num("SECONDS", 15);
    let load_secs = env_num("LOAD_SECONDS", 10);
    let concurrency = env_num("CONCURRENCY", 32);

    // HEARTH_BENCH_BIN runs another build (an unstripped one, for profiling).
    let (dir_b, dir_a) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let b: Node = start(dir_b.path(), "Beta", "");
    let a: Node = start(dir_a.path(), "Alpha", "");
    let addr = b.url.trim_start_matches("http://").to_string();
    let pid = b.child.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = common::http()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let base_url = format!("http://{addr}");
        // Claim, so the admin can post without the guests' flood limits.
        let (admin_cookie, token) = claim(&http, &base_url).await;
        let csrf_cookie = admin_cookie.split("; ").next().expect("csrf cookie").to_string();
        // A: paired with B, both sharing board 1.
        let (a_cookie, a_token) = claim(&http, &a.url).await;
        let (id_a, id_b) = pair(&http, (&a, &a_cookie), (&b, &admin_cookie)).await;
        confirm(&http, &b, &admin_cookie, &id_a).await;
        confirm(&http, &a, &a_cookie, &id_b).await;
        for (url, cookie, token) in [(&a.url, &a_cookie, &a_token), (&b.url, &admin_cookie, &token)] {
            let r = http
                .post(format!("{url}/admin/board/boards/1/share"))
                .header("cookie", cookie.as_str())
                .form(&[("csrf", token.as_str()), ("on", "1")])
                .send()
                .await
                .expect("share");
            assert!(r.status().is_redirection(), "share: {}", r.status());
        }

        let rss_before = rss_kib(pid);
        let base = Instant::now();
        let lat = Arc::new(Mutex::new([Vec::new(), Vec::new()]));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(clients as usize);
        for _ in 0..clients {
            tokio::spawn(listen(addr.clone(), base, lat.clone(), ready_tx.clone()));
        }
        drop(ready_tx);
        let mut connected = 0;
        while connected < clients {
            match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
                Ok(Some(())) => connected += 1,
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_connected = rss_kib(pid);

        // Steady posting.
        let total = rate * seconds;
        let gap = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now();
        // B's own posts and A's, each at `rate`, half a gap apart.
        let mut posted = [0u64; 2];
        for i in 0..total {
            for (from, (url, cookie, token)) in [
                (&base_url, &admin_cookie, &token),
                (&a.url, &a_cookie, &a_token),
            ]
            .into_iter()
            .enumerate()
            {
                let due = start + gap * i as u32 + gap / 2 * from as u32;
                tokio::time::sleep_until(due.into()).await;
                let sent = base.elapsed().as_micros();
                let tag = if from == 0 { "l" } else { "r" };
                let form = reqwest::multipart::Form::new()
                    .text("csrf", token.clone())
                    .text("body", format!("bench-t={sent} bench-o={tag} post {i}"));
                let r = http
                    .post(format!("{url}/boards/1/posts"))
                    .header("cookie", cookie.as_str())
                    .header("x-hearth-fetch", "1")
                    .multipart(form)
                    .send()
                    .await
                    .expect("post");
                if r.status().is_success() {
                    posted[from] += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_peak = rss_kib(pid);
        let [mut samples, mut remote] = lat.lock().expect("lock").clone();
        samples.sort_unstable();
        remote.sort_unstable();
        let expected = posted[0] * connected;
        let expected_remote = posted[1] * connected;

        // Throughput: the board page (20 threads) against hello world.
        // A guest who chose a name, as every reader on the hotspot has.
        let named = http
            .post(format!("{base_url}/nickname"))
            .header("cookie", &csrf_cookie)
            .form(&[("csrf", token.as_str()), ("nickname", "reader"), ("back", "/")])
            .send()
            .await
            .expect("nickname");
        let guest = named
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("hearth_guest="))
            .and_then(|v| v.split(';').next())
            .expect("guest cookie")
            .to_string();
        let guest_cookie = format!("{csrf_cookie}; {guest}");
        let board_rps = load(&addr, "/boards/1", &guest_cookie, load_secs, concurrency).await;
        let (mut hello, hello_addr) = {
            let mut cmd = Command::new(std::env::current_exe().expect("exe"));
            cmd.arg("--hello-server");
            let (child, addr, _) = spawn_ready(cmd);
            (child, addr)
        };
        let hello_rps = load(&hello_addr, "/", "", load_secs, concurrency).await;
        let _ = hello.kill();
        let _ = hello.wait();

        println!();
        println!(
            "Board benchmark: {connected} SSE clients on B; B posts {} and A (paired, shared board) {} at {rate}/s each, one run",
            posted[0], posted[1]
        );
        println!("| measure | value |");
        println!("|---|---|");
        println!("| events delivered | {} of {expected} |", samples.len());
        println!("| delivery latency p50 | {:.1} ms |", pct(&samples, 0.50));
        println!("| delivery latency p99 | {:.1} ms |", pct(&samples, 0.99));
        println!("| delivery latency max | {:.1} ms |", pct(&samples, 1.0));
        println!("| A's posts delivered to B's clients | {} of {expected_remote} |", remote.len());
        println!("| A's posts on B: latency p50 | {:.1} ms |", pct(&remote, 0.50));
        println!("| A's posts on B: latency p99 | {:.1} ms |", pct(&remote, 0.99));
        println!("| p99 of A's posts / p99 of B's own | {:.2} |", pct(&remote, 0.99) / pct(&samples, 0.99));
        println!("| hearth RSS idle / {connected} connected / after posting | {:.1} / {:.1} / {:.1} MiB |",
            rss_before as f64 / 1024.0, rss_connected as f64 / 1024.0, rss_peak as f64 / 1024.0);
        println!("| RSS per connection | {:.1} KiB |", (rss_connected.saturating_sub(rss_before)) as f64 / connected.max(1) as f64);
        println!("| board page requests/s | {board_rps:.0} |");
        println!("| axum hello world requests/s | {hello_rps:.0} |");
        println!("| board page / hello world | {:.2} |", board_rps / hello_rps);
    });
    drop((a, b));
}
