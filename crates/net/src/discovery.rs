//! Finding other Hearths on the local network, and being found: DNS-SD
//! over multicast DNS (`_hearth._tcp`), with the `mdns-sd` crate.
//!
//! Why Hearth answers mDNS itself rather than leaving it to avahi: the
//! advert carries this device's ID and name, which exist only once Hearth
//! has started (the identity is made on the device), and the same code then
//! runs wherever Hearth does — under avahi on the image and in the tests'
//! network namespaces, where there is no avahi. Both share UDP port 5353
//! (the sockets are opened with address reuse).
//!
//! What is found is only a suggestion: an advert is unauthenticated, so a
//! listed device is trusted for nothing until pairing with its code (a
//! PAKE bound to both certificates) succeeds. The list lets the admin skip
//! typing an address; it never pairs anything by itself.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

/// The DNS-SD service type of a Hearth's peer port.
pub const SERVICE_TYPE: &str = "_hearth._tcp.local.";

/// Hearths listed at most (a home LAN has a handful).
const MAX_FOUND: usize = 64;

/// What this device announces.
#[derive(Debug, Clone)]
pub struct Advert {
    /// The device name the admin set (or the host name).
    pub name: String,
    /// The full device ID, hex (SHA-256 of the certificate).
    pub id: String,
    /// The short fingerprint shown on the Peers page (in the instance
    /// name, so two devices with one name stay apart).
    pub short: String,
    /// Where the peer port listens.
    pub listen: SocketAddr,
}

/// Another Hearth seen on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    /// Full device ID as it announced it, lowercase hex.
    pub id: String,
    /// `ip:port` of its peer port, ready for the Join form.
    pub address: String,
}

/// The running announcer and browser, or why there is none. Dropping it
/// stops both.
#[derive(Debug)]
pub enum Discovery {
    Running(Running),
    /// Nothing is announced or looked for; the reason is for the Peers page.
    Off(String),
}

pub struct Running {
    daemon: ServiceDaemon,
    found: Arc<Mutex<HashMap<String, Found>>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Discovery {
    /// Announces `advert` and starts listening for other Hearths. Never
    /// fails: without mDNS (loopback-only peer port, switched off, or no
    /// multicast) the Peers page just lists nothing and says why.
    pub fn start(advert: Advert, enabled: bool) -> Discovery {
        if !enabled {
            return Discovery::off("Looking for other Hearths is switched off (mirror_discovery).");
        }
        if advert.listen.ip().is_loopback() {
            return Discovery::off(
                "The peer port listens on this device only (mirror_listen), so other Hearths cannot reach it.",
            );
        }
        match Running::start(Some(&advert)) {
            Ok(r) => Discovery::Running(r),
            Err(e) => {
                log::warn!("mDNS discovery is off: {e}");
                Discovery::off("Looking for other Hearths failed to start; see the log.")
            }
        }
    }

    /// Only listens for other Hearths, announcing nothing (`hearth
    /// discover`, run beside the service).
    pub fn listen() -> Result<Discovery, String> {
        Running::start(None)
            .map(Discovery::Running)
            .map_err(|e| e.to_string())
    }

    /// Discovery that does nothing (tests, or a reason given above).
    pub fn off(why: &str) -> Discovery {
        Discovery::Off(why.to_string())
    }

    /// Why nothing is looked for, if so.
    pub fn why_off(&self) -> Option<&str> {
        match self {
            Discovery::Running(_) => None,
            Discovery::Off(why) => Some(why),
        }
    }

    /// The Hearths seen, by name, without `except` (our own ID and those
    /// already paired).
    pub fn found(&self, except: &[String]) -> Vec<Found> {
        let Discovery::Running(r) = self else {
            return Vec::new();
        };
        let map = r.found.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Found> = map
            .values()
            .filter(|f| !except.iter().any(|e| e.eq_ignore_ascii_case(&f.id)))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        // One line per device, even if it was renamed (two adverts).
        let mut seen = std::collections::HashSet::new();
        out.retain(|f| seen.insert(f.id.clone()));
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Says goodbye on the network, so others drop us from their lists.
        let _ = self.daemon.shutdown();
    }
}

impl Running {
    fn start(advert: Option<&Advert>) -> Result<Running, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        // Never over loopback: a Hearth would only find itself.
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        let own = match advert {
            Some(a) => {
                announce(&daemon, a)?;
                a.id.clone()
            }
            None => String::new(),
        };
        let events = daemon.browse(SERVICE_TYPE)?;
        let found: Arc<Mutex<HashMap<String, Found>>> = Arc::default();
        let map = found.clone();
        std::thread::Builder::new()
            .name("mdns-browse".into())
            .spawn(move || {
                while let Ok(event) = events.recv() {
                    log::debug!("mDNS: {event:?}");
                    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                    match event {
                        ServiceEvent::ServiceResolved(s) => {
                            let fullname = s.get_fullname().to_string();
                            let addresses: Vec<IpAddr> =
                                s.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
                            if let Some(f) = found_from(
                                s.get_property_val_str("id"),
                                s.get_property_val_str("name"),
                                &addresses,
                                s.get_port(),
                            ) && !f.id.eq_ignore_ascii_case(&own)
                            {
                                // Anyone on the LAN can announce: a flood of
                                // adverts must not grow memory without end.
                                if map.len() < MAX_FOUND || map.contains_key(&fullname) {
                                    map.insert(fullname, f);
                                }
                            }
                        }
                        ServiceEvent::ServiceRemoved(_, fullname) => {
                            map.remove(&fullname);
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| mdns_sd::Error::Msg(e.to_string()))?;
        Ok(Running { daemon, found })
    }
}

/// Announces this Hearth's peer port.
fn announce(daemon: &ServiceDaemon, advert: &Advert) -> Result<(), mdns_sd::Error> {
    let ip = advert.listen.ip();
    let properties: HashMap<String, String> = [
        ("v", "1"),
        ("id", advert.id.as_str()),
        ("name", advert.name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // The instance name carries the fingerprint, so two devices both
    // called "hearth" do not collide; the host name is ours alone, so it
    // never fights avahi over hearth.local.
    let instance = format!("{} {}", advert.name, advert.short);
    let host = format!(
        "hearth-{}.local.",
        advert.short.replace('-', "").to_ascii_lowercase()
    );
    // Addresses follow the interfaces (the hotspot or a cable may come
    // and go); the advert is re-sent whenever one appears.
    let mut info = ServiceInfo::new(
        SERVICE_TYPE,
        &instance,
        &host,
        (),
        advert.listen.port(),
        properties,
    )?
    .enable_addr_auto();
    if !ip.is_unspecified() {
        // Bound to one address: announce only its interface and family.
        // (A brand-new link's IPv6 address is unusable for a moment,
        // which makes mdns-sd drop the whole interface for a while.)
        info.set_interfaces(vec![IfKind::Addr(ip)]);
        daemon.disable_interface(if ip.is_ipv4() {
            IfKind::IPv6
        } else {
            IfKind::IPv4
        })?;
    }
    daemon.register(info)?;
    log::info!(
        "mDNS: announcing \"{instance}\" on port {}",
        advert.listen.port()
    );
    Ok(())
}

/// A listing from an advert's fields, or `None` when it is not a usable
/// Hearth advert (no ID, or no address we could dial).
fn found_from(
    id: Option<&str>,
    name: Option<&str>,
    addresses: &[IpAddr],
    port: u16,
) -> Option<Found> {
    let id = id.filter(|i| i.len() == 64 && i.bytes().all(|b| b.is_ascii_hexdigit()))?;
    // IPv4 first; IPv6 link-local needs an interface scope a typed address
    // cannot carry, so it is left out.
    let ip = addresses
        .iter()
        .copied()
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
        })
        .min_by_key(|ip| (ip.is_ipv6(), *ip))?;
    let name: String = name
        .unwrap_or("Hearth")
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    Some(Found {
        name,
        id: id.to_ascii_lowercase(),
        address: SocketAddr::new(ip, port).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn adverts_without_an_id_or_address_are_ignored() {
        let v4: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(found_from(None, Some("B"), &[v4], 7443), None);
        assert_eq!(found_from(Some("xyz"), Some("B"), &[v4], 7443), None);
        assert_eq!(found_from(Some(ID), Some("B"), &[], 7443), None);
        let ll: IpAddr = "fe80::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(found_from(Some(ID), Some("B"), &[ll], 7443), None);
    }

    #[test]
    fn ipv4_is_preferred_and_names_are_cleaned() {
        let v6: IpAddr = "fd00::2".parse().unwrap_or(IpAddr::from([0; 4]));
        let v4: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0; 4]));
        let f = found_from(Some(ID), Some("Be\u{7}ta"), &[v6, v4], 7443);
        assert_eq!(
            f.map(|f| (f.name, f.address)),
            Some(("Beta".to_string(), "10.0.0.2:7443".to_string()))
        );
        let f = found_from(Some(ID), None, &[v6], 7443);
        assert_eq!(f.map(|f| f.address), Some("[fd00::2]:7443".to_string()));
    }
}
