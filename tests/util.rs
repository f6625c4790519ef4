//! Helpers shared by the integration tests.

use std::{
    collections::BTreeMap,
    fmt::Display,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header::HeaderMap};

/// The `hearth` binary cargo built for these tests.
pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// A real `hearth serve` in a temporary directory, on a port the kernel
/// chose. It prints its URL once bound, so no sleeping is needed. Dropping
/// it stops the process and deletes its files.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Base URL without the trailing slash, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    /// The address `serve` binds: the kernel's choice at first, the same
    /// address again after [`TestServer::respawn_after_exit`].
    listen: String,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts with extra `serve` arguments, e.g. the simulated clock.
    pub fn start_with(extra: &[&str]) -> TestServer {
        Self::start_configured(extra, "", &[])
    }

    /// Starts with extra `serve` arguments, extra lines for its config
    /// file, and extra environment variables.
    pub fn start_configured(extra: &[&str], config: &str, env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("boot")).unwrap();
        std::fs::write(
            dir.path().join("hearth.toml"),
            format!(
                "boot_dir = {:?}\nfiles_dir = {:?}\nlog_level = \"debug\"\n{}{config}",
                dir.path().join("boot"),
                dir.path().join("files"),
                // Tests run side by side: never the fixed peer port.
                if config.contains("mirror_listen") {
                    ""
                } else {
                    "mirror_listen = \"127.0.0.1:0\"\n"
                }
            ),
        )
        .unwrap();
        let mut server = TestServer {
            dir,
            child: None,
            url: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            listen: "127.0.0.1:0".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    pub fn boot_dir(&self) -> PathBuf {
        self.dir.path().join("boot")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hearth.toml")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hearth.log"))
            .unwrap();
        let mut child = hearth_command()
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .args(["--listen", &self.listen])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start hearth");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Hearth is ready at ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => self.url = url,
            Err(_) => panic!("hearth did not become ready; log:\n{}", self.log()),
        }
    }

    /// Stops with SIGTERM, as systemd does, and returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        child.wait().unwrap()
    }

    /// Stops cleanly and starts again on the same data.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "clean stop: {status:?}\n{}", self.log());
        self.spawn();
    }

    /// Waits for the server to stop by itself (an installed update stops
    /// it with status 75) and starts it again on the same address and data,
    /// as systemd's `RestartForceExitStatus=` does. Returns how it ended.
    pub fn respawn_after_exit(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = eventually(within, "hearth to stop by itself", || {
            match child.try_wait().unwrap() {
                Some(status) => Ok(status),
                None => Err("still running"),
            }
        });
        self.listen = self.url.trim_start_matches("http://").to_string();
        self.spawn();
        status
    }

    /// Starts again after [`TestServer::stop`], on the same data.
    pub fn restart_after_stop(&mut self) {
        self.spawn();
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hearth.log")).unwrap_or_default()
    }

    /// A fresh browser-like client for this server.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A reqwest client builder. reqwest is built with `rustls-no-provider`
/// for Hearth's S3 client, so a process must install ring first.
pub fn http() -> reqwest::ClientBuilder {
    hearth_s3::use_ring();
    reqwest::Client::builder()
}

/// `hearth` with no `HEARTH_*` from the developer's environment leaking in.
pub fn hearth_command() -> Command {
    let mut cmd = Command::new(HEARTH);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HEARTH_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `hearth` to completion: (exit code, stdout, stderr).
pub fn run_hearth(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = hearth_command()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hearth --config CONFIG backup --data DATA ARGS...` to completion.
pub fn run_backup(config: &Path, data: &Path, args: &[&str]) -> (i32, String, String) {
    run_backup_env(config, data, args, &[])
}

/// The same, with extra environment variables.
pub fn run_backup_env(
    config: &Path,
    data: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut all = vec![
        "--config",
        config.to_str().unwrap(),
        "backup",
        "--data",
        data.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run_hearth(&all, env)
}

/// What a response looked like, read in full.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The `Set-Cookie` header for `name`, whole, attributes included.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// The CSRF token embedded in the page's forms.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("page has a CSRF field") + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }
}

/// A cookie-keeping HTTP client that does not follow redirects, so tests
/// can assert on each one.
pub struct Client {
    http: reqwest::Client,
    /// The server base URL; tests repoint it after a restart moves the port.
    pub base: String,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client::from_address(base, [127, 0, 0, 1].into())
    }

    /// A client connecting from another loopback address (127.0.0.0/8 is
    /// all ours), standing in for a second phone on the hotspot.
    pub fn from_address(base: &str, ip: std::net::IpAddr) -> Client {
        Client {
            http: http()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(ip)
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        self.try_send(req).await.unwrap()
    }

    /// Like `send`, but a connection the server cut short is an `Err`.
    async fn try_send(&mut self, req: reqwest::RequestBuilder) -> Result<Page, reqwest::Error> {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") || val.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        let body = resp.text().await?;
        Ok(Page {
            status,
            headers,
            body,
        })
    }

    /// Posts a form the server may refuse before reading it all; a server
    /// that answers and closes can reset the upload, which is `Err`.
    pub async fn try_post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Page, reqwest::Error> {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.try_send(req).await
    }

    /// A GET whose body is kept as bytes (downloads).
    pub async fn get_bytes(&mut self, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }

    /// Posts a multipart form, with extra headers.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        form: reqwest::multipart::Form,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// Posts raw bytes with a content type, for malformed bodies.
    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        self.send(req).await
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[]).await
    }

    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// Loads `page` and submits its form with the page's CSRF token.
    pub async fn submit(&mut self, page: &str, action: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get(page).await.csrf();
        let mut fields = vec![("csrf", token.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }

    pub async fn claim(&mut self, password: &str) -> Page {
        self.submit(
            "/setup",
            "/setup",
            &[("password", password), ("confirm", password)],
        )
        .await
    }

    pub async fn login(&mut self, password: &str) -> Page {
        self.submit("/login", "/login", &[("password", password)])
            .await
    }
}

/// Calls `check` until it returns `Ok`, for at most `within`, and returns
/// what it found. `Err` carries what was seen instead; on timeout the test
/// fails naming `what` it waited for and the last thing seen.
pub fn eventually<T, E: Display>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let mut pace = Pace::new(within);
    loop {
        match check() {
            Ok(found) => return found,
            Err(seen) => match pace.next() {
                Some(pause) => std::thread::sleep(pause),
                None => pace.give_up(what, seen),
            },
        }
    }
}

/// [`eventually`] for checks that await, e.g. loading a page; it sleeps
/// without holding up the runtime.
pub async fn eventually_async<T, E: Display>(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let mut pace = Pace::new(within);
    loop {
        match check().await {
            Ok(found) => return found,
            Err(seen) => match pace.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => pace.give_up(what, seen),
            },
        }
    }
}

/// When to look again: after 10 ms, then twice as long each time up to a
/// fiftieth of the window (so a 1 s window is watched every 20 ms) and at
/// most 250 ms; the last look is at the deadline itself.
struct Pace {
    start: Instant,
    within: Duration,
    pause: Duration,
}

impl Pace {
    fn new(within: Duration) -> Pace {
        Pace {
            start: Instant::now(),
            within,
            pause: Duration::from_millis(10),
        }
    }

    /// The next pause, or `None` once the window has passed.
    fn next(&mut self) -> Option<Duration> {
        let left = self.within.checked_sub(self.start.elapsed())?;
        let pause = self.pause.min(left);
        self.pause = (self.pause * 2)
            .min(self.within / 50)
            .min(Duration::from_millis(250))
            .max(Duration::from_millis(10));
        Some(pause)
    }

    fn give_up(&self, what: &str, seen: impl Display) -> ! {
        panic!(
            "waited {:?} (limit {:?}) for {what}; last seen:\n{seen}",
            self.start.elapsed(),
            self.within
        )
    }
}

/// The directory for screenshots and other artefacts a person may inspect.
pub fn artefact_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small xorshift, seeded from the clock and printed, so a failing
/// random round can be replayed with HEARTH_TEST_SEED.
pub struct Dice(u64);

impl Dice {
    /// Seeds from HEARTH_TEST_SEED or the clock, and prints the seed with
    /// `what`.
    pub fn new(what: &str) -> Dice {
        let seed = std::env::var("HEARTH_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("{what}: HEARTH_TEST_SEED={seed}");
        Dice(seed)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
