//! The captive portal.
//!
//! On the hotspot, DNS answers every name with the Pi's address, so a
//! phone's connectivity check ("can I reach connectivitycheck.gstatic.com
//! and get a 204?") lands on Hearth. Answering anything but the expected
//! reply makes the phone open its portal window on Hearth's landing page.
//! Once the guest taps "Continue", their address is remembered for a day
//! and the probes get the expected replies, so the phone settles on the
//! network and the guest can use their normal browser.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// What to send for a probe once a client has continued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Success {
    pub status: u16,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// A platform's connectivity check.
#[derive(Debug)]
pub struct Probe {
    pub platform: &'static str,
    /// Host names the platform uses (any host with the path also counts:
    /// DNS sends every name here).
    pub hosts: &'static [&'static str],
    pub path: &'static str,
    pub success: Success,
}

const APPLE_SUCCESS: &str = "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>";

/// Every probe Hearth knows, as listed in docs/captive-portal.md.
pub const PROBES: &[Probe] = &[
    Probe {
        platform: "Android, ChromeOS",
        hosts: &[
            "connectivitycheck.gstatic.com",
            "connectivitycheck.android.com",
            "clients3.google.com",
            "clients1.google.com",
        ],
        path: "/generate_204",
        success: Success {
            status: 204,
            content_type: "text/plain",
            body: "",
        },
    },
    Probe {
        platform: "Android (older)",
        hosts: &["www.google.com", "google.com"],
        path: "/gen_204",
        success: Success {
            status: 204,
            content_type: "text/plain",
            body: "",
        },
    },
    Probe {
        platform: "Apple iOS, macOS",
        hosts: &["captive.apple.com", "www.apple.com"],
        path: "/hotspot-detect.html",
        success: Success {
            status: 200,
            content_type: "text/html",
            body: APPLE_SUCCESS,
        },
    },
    Probe {
        platform: "Apple (older)",
        hosts: &[
            "www.apple.com",
            "www.appleiphonecell.com",
            "www.itools.info",
            "www.ibook.info",
            "www.airport.us",
            "www.thinkdifferent.us",
        ],
        path: "/library/test/success.html",
        success: Success {
            status: 200,
            content_type: "text/html",
            body: APPLE_SUCCESS,
        },
    },
    Probe {
        platform: "Windows 10, 11",
        hosts: &["www.msftconnecttest.com"],
        path: "/connecttest.txt",
        success: Success {
            status: 200,
            content_type: "text/plain",
            body: "Microsoft Connect Test",
        },
    },
    Probe {
        platform: "Windows (older)",
        hosts: &["www.msftncsi.com"],
        path: "/ncsi.txt",
        success: Success {
            status: 200,
            content_type: "text/plain",
            body: "Microsoft NCSI",
        },
    },
    Probe {
        platform: "Firefox",
        hosts: &["detectportal.firefox.com"],
        path: "/success.txt",
        success: Success {
            status: 200,
            content_type: "text/plain",
            body: "success\n",
        },
    },
    Probe {
        platform: "Firefox",
        hosts: &["detectportal.firefox.com"],
        path: "/canonical.html",
        success: Success {
            status: 200,
            content_type: "text/html",
            body: "<meta http-equiv=\"refresh\" content=\"0;url=https://support.mozilla.org/kb/captive-portal\"/>",
        },
    },
];

/// The probe a request is, if any: by path, whatever the host.
pub fn probe(path: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|p| p.path == path)
}

/// Whether `host` (a Host header, port included or not) names Hearth
/// itself: an IP address, `localhost`, `hearth.local`, or this device's
/// host name (bare or `.local`). Any other name reached Hearth only because
/// the hotspot's DNS answers everything, and is redirected to the landing
/// page.
pub fn is_own_host(host: &str, hostname: &str) -> bool {
    let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    let hostname = hostname.to_ascii_lowercase();
    name == "localhost"
        || name == "hearth.local"
        || (!hostname.is_empty() && (name == hostname || name == format!("{hostname}.local")))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Clients that tapped "Continue": their probes now get success answers.
#[derive(Debug, Default)]
pub struct Accepted {
    clients: Mutex<HashMap<IpAddr, Instant>>,
}

/// How long a "Continue" lasts; a guest back tomorrow sees the board again.
pub const ACCEPT_FOR: Duration = Duration::from_secs(24 * 3600);

impl Accepted {
    pub fn accept(&self, client: IpAddr) {
        if let Ok(mut m) = self.clients.lock() {
            let now = Instant::now();
            m.retain(|_, at| now.duration_since(*at) < ACCEPT_FOR);
            m.insert(client, now);
        }
    }

    pub fn is_accepted(&self, client: IpAddr) -> bool {
        self.clients
            .lock()
            .ok()
            .and_then(|m| m.get(&client).copied())
            .is_some_and(|at| at.elapsed() < ACCEPT_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_known_by_path() {
        for path in [
            "/generate_204",
            "/hotspot-detect.html",
            "/connecttest.txt",
            "/ncsi.txt",
            "/success.txt",
            "/canonical.html",
        ] {
            assert!(probe(path).is_some(), "{path}");
        }
        assert!(probe("/").is_none());
    }

    #[test]
    fn own_hosts_are_addresses_and_our_names() {
        for h in [
            "10.42.0.1",
            "10.42.0.1:80",
            "[fe80::1]:8080",
            "127.0.0.1:1234",
            "localhost:8080",
            "hearth.local",
            "Pi-Den.local.",
            "pi-den",
        ] {
            assert!(is_own_host(h, "pi-den"), "{h}");
        }
        for h in [
            "connectivitycheck.gstatic.com",
            "example.org:80",
            "printer.local",
            "",
        ] {
            assert!(!is_own_host(h, "pi-den"), "{h}");
        }
    }

    #[test]
    fn continuing_is_remembered_per_client() {
        let a = Accepted::default();
        let ip: IpAddr = "10.42.0.23".parse().unwrap();
        assert!(!a.is_accepted(ip));
        a.accept(ip);
        assert!(a.is_accepted(ip));
        assert!(!a.is_accepted("10.42.0.24".parse().unwrap()));
    }
}
