//! Pieces the benchmarks share: knobs, process readings, starting the real
//! binary, and claiming it as its admin.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

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
