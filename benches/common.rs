//! Pieces the benchmarks share: knobs, process readings, starting the real
//! binary, and claiming it as its admin.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A reqwest client builder, after installing ring as rustls's provider
/// (reqwest is built with `rustls-no-provider` for Hearth's S3 client).
pub fn http() -> reqwest::ClientBuilder {
    hearth_s3::use_ring();
    reqwest::Client::builder()
}

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// User plus system CPU time of a process so far, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Starts a child and reads its "... http://ADDR/" ready line; returns the
/// child, the address, and the rest of its stdout's lines as they come.
pub fn spawn_ready(mut cmd: Command) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start server");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let line = lines.next().and_then(Result::ok).expect("ready line");
    let url = line
        .split("http://")
        .nth(1)
        .expect("an address")
        .trim()
        .trim_end_matches('/')
        .to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (child, url, rx)
}

/// The CSRF token a page's first form carries.
pub fn csrf_token(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token")
        .to_string()
}

/// Claims a fresh Hearth; returns (cookie header value, CSRF token).
pub async fn claim(http: &reqwest::Client, base_url: &str) -> (String, String) {
    let setup = http
        .get(format!("{base_url}/setup"))
        .send()
        .await
        .expect("setup page");
    let csrf_cookie = setup.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let token = csrf_token(&setup.text().await.expect("page"));
    let claimed = http
        .post(format!("{base_url}/setup"))
        .header("cookie", &csrf_cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("password", "benchmark password"),
            ("confirm", "benchmark password"),
        ])
        .send()
        .await
        .expect("claim");
    let session = claimed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hearth_session="))
        .and_then(|v| v.split(';').next())
        .expect("session")
        .to_string();
    (format!("{csrf_cookie}; {session}"), token)
}

/// A real `hearth` serving on 127.0.0.1 with its peer port.
pub struct Node {
    pub child: Child,
    pub url: String,
    /// The peer port's address, for pairing.
    pub peer: String,
    pub data: PathBuf,
}

/// `hearth --config DIR/hearth.toml` for device `name`, with `extra`
/// configuration lines; `HEARTH_BENCH_BIN` runs another build.
pub fn hearth(dir: &Path, name: &str, extra: &str) -> Command {
    let cfg = dir.join("hearth.toml");
    std::fs::write(
        &cfg,
        format!(
            "log_level = \"warn\"\ndevice_name = \"{name}\"\nmirror_listen = \"127.0.0.1:0\"\n{extra}"
        ),
    )
    .expect("config");
    let bin = std::env::var("HEARTH_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hearth").to_string());
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(cfg);
    cmd
}

/// Starts `hearth serve` for `name` and waits for its ready lines.
pub fn start(dir: &Path, name: &str, extra: &str) -> Node {
    let mut cmd = hearth(dir, name, extra);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"));
    let (child, url, lines) = spawn_ready(cmd);
    let peer = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("peer port line")
        .strip_prefix("Peer port at ")
        .expect("peer port")
        .to_string();
    Node {
        child,
        url: format!("http://{url}"),
        peer,
        data: dir.join("data"),
    }
}

pub async fn peers_page(http: &reqwest::Client, node: &Node, cookie: &str) -> String {
    http.get(format!("{}/admin/peers", node.url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("peers page")
        .text()
        .await
        .expect("text")
}

/// Posts a form of the Peers page; returns the page after it.
pub async fn form(
    http: &reqwest::Client,
    node: &Node,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> String {
    let token = csrf_token(&peers_page(http, node, cookie).await);
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(fields);
    let r = http
        .post(format!("{}{path}", node.url))
        .header("cookie", cookie)
        .form(&all)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_redirection(), "{path}: {}", r.status());
    peers_page(http, node, cookie).await
}

pub fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body.find(start).expect(start) + start.len();
    let len = body[from..].find(end).expect(end);
    &body[from..from + len]
}

/// The hex device ID in a page's confirm form.
pub fn peer_id(page: &str) -> String {
    let end = page.find("/confirm\"").expect("a peer to confirm");
    page[end - 64..end].to_string()
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pairs `a` (showing the code) and `b` (joining), without confirming;
/// returns (A's ID, B's ID) as hex.
pub async fn pair(
    http: &reqwest::Client,
    (a, ca): (&Node, &str),
    (b, cb): (&Node, &str),
) -> (String, String) {
    let page = form(http, a, ca, "/admin/peers/code", &[]).await;
    let code = between(&page, "id=\"pairing-code\">", "<").to_string();
    let pb = form(
        http,
        b,
        cb,
        "/admin/peers/join",
        &[("address", &a.peer), ("code", &code)],
    )
    .await;
    let pa = peers_page(http, a, ca).await;
    (peer_id(&pb), peer_id(&pa))
}

/// Confirms `peer` (hex) on `node`, keeping 100 GB for it.
pub async fn confirm(http: &reqwest::Client, node: &Node, cookie: &str, peer: &str) {
    form(
        http,
        node,
        cookie,
        &format!("/admin/peers/{peer}/confirm"),
        &[("quota_gb", "100"), ("replaces", "")],
    )
    .await;
}
