//! Devices in network namespaces: two (or more) real `hearth` processes,
//! each in a namespace this test creates, joined by a veth pair. Nothing
//! touches any other interface or address: the admin pages are reached
//! through a forwarder that listens on the root namespace's loopback and
//! connects from inside the device's namespace.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsFd,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::util::{Client, HEARTH};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip(8)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth pair between two namespaces, on a /24 of 10.77.0.0/16 that is
/// unique to this test process and call.
pub struct Link {
    pub a_if: String,
    pub b_if: String,
    pub a_ip: String,
    pub b_ip: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A short tag, unique across tests running at once: interface names are
/// at most 15 bytes.
pub fn tag() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{n}", std::process::id() % 0xfff)
}

impl Link {
    pub fn new(a: &Netns, b: &Netns) -> Link {
        let t = tag();
        let subnet = (std::process::id() + NEXT.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let l = Link {
            a_if: format!("hv{t}a"),
            b_if: format!("hv{t}b"),
            a_ip: format!("10.77.{subnet}.1"),
            b_ip: format!("10.77.{subnet}.2"),
        };
        ip(&[
            "link", "add", &l.a_if, "netns", &a.name, "type", "veth", "peer", "name", &l.b_if,
            "netns", &b.name,
        ]);
        ip(&[
            "-n",
            &a.name,
            "addr",
            "add",
            &format!("{}/24", l.a_ip),
            "dev",
            &l.a_if,
        ]);
        ip(&[
            "-n",
            &b.name,
            "addr",
            "add",
            &format!("{}/24", l.b_ip),
            "dev",
            &l.b_if,
        ]);
        ip(&["-n", &a.name, "link", "set", &l.a_if, "up"]);
        ip(&["-n", &b.name, "link", "set", &l.b_if, "up"]);
        l
    }

    /// Takes the link down (or up) from `a`'s side.
    pub fn set_up(&self, a: &Netns, up: bool) {
        ip(&[
            "-n",
            &a.name,
            "link",
            "set",
            &self.a_if,
            if up { "up" } else { "down" },
        ]);
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets it makes
/// stay in that namespace wherever they are used afterwards.
pub(crate) fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// Listens on 127.0.0.1:0 in the root namespace and forwards each
/// connection to `target` inside `ns`.
pub fn forward(ns: &str, target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ns = ns.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(outer) = conn else { break };
            let ns = ns.clone();
            std::thread::spawn(move || {
                let Ok(inner) = in_netns(&ns, move || TcpStream::connect(target)) else {
                    return;
                };
                let (mut r1, mut w1) = (outer.try_clone().unwrap(), inner.try_clone().unwrap());
                let (mut r2, mut w2) = (inner, outer);
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut r1, &mut w1);
                    let _ = w1.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut r2, &mut w2);
                let _ = w2.shutdown(std::net::Shutdown::Write);
                let _ = t.join();
            });
        }
    });
    addr
}

/// A Hearth in its own namespace.
pub struct Device {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// The admin pages, forwarded to the root namespace's loopback.
    pub url: String,
    /// Where peers reach it: `ip:7443` on the link.
    pub peer_addr: String,
    config: String,
}

impl Device {
    /// A namespace and a config; start it with [`Device::start`] once the
    /// link is up.
    pub fn new(name: &str, extra_config: &str) -> Device {
        let ns = Netns::new(format!("hearth-{}-{name}", tag()));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("boot")).unwrap();
        let config = format!(
            "boot_dir = {:?}\nfiles_dir = {:?}\nlog_level = \"debug\"\ndevice_name = {name:?}\n{extra_config}",
            dir.path().join("boot"),
            dir.path().join("files"),
        );
        // Until it starts: for the CLI, which needs no peer port.
        std::fs::write(
            dir.path().join("hearth.toml"),
            format!("{config}mirror_listen = \"127.0.0.1:0\"\n"),
        )
        .unwrap();
        Device {
            ns,
            dir,
            child: None,
            url: String::new(),
            peer_addr: String::new(),
            config,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hearth.toml")
    }

    /// Starts (or restarts) hearth listening on `ip` for peers.
    pub fn start(&mut self, ip: &str) {
        std::fs::write(
            self.config_path(),
            format!("{}mirror_listen = \"{ip}:7443\"\n", self.config),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hearth.log"))
            .unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, HEARTH])
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .args(["--listen", "127.0.0.1:8080"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start hearth in its namespace");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Hearth is ready") {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("hearth did not start; log:\n{}", self.log());
        }
        if self.url.is_empty() {
            let addr = forward(&self.ns.name, "127.0.0.1:8080".parse().unwrap());
            self.url = format!("http://{addr}");
        }
        self.peer_addr = format!("{ip}:7443");
    }

    /// SIGKILL, as a power cut would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hearth.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.kill();
    }
}
