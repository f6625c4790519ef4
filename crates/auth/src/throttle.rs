//! Per-client login throttling with exponential back-off.
//!
//! A client gets [`FREE_ATTEMPTS`] wrong passwords for free; each further
//! failure blocks it for twice as long as the last (1 s, 2 s, 4 s ...) up
//! to [`MAX_LOCKOUT`]. A success clears the record. It lives in memory:
//! restarting needs the device, and the table is bounded so a flood of
//! addresses cannot grow it without limit.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Wrong passwords allowed before back-off starts.
pub const FREE_ATTEMPTS: u32 = 3;
/// The longest a client is ever blocked for.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Records kept at most; the stalest is dropped beyond this.
const MAX_CLIENTS: usize = 4096;

#[derive(Debug, Default)]
pub struct Throttle {
    clients: Mutex<HashMap<IpAddr, Record>>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// IPv6 clients choose freely within their /64, so throttle the prefix.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Throttle {
    /// `Err(wait)` while the client is blocked.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let clients = self.lock();
        match clients.get(&key(ip)) {
            Some(r) if r.blocked_until > now => Err(r.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong password; returns how long the client is now blocked.
    pub fn failure(&self, ip: IpAddr) -> Option<Duration> {
        self.failure_at(ip, Instant::now())
    }

    fn failure_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut clients = self.lock();
        // Forget clients idle for longer than the longest lockout.
        clients.retain(|_, r| now.duration_since(r.last_failure) < MAX_LOCKOUT * 2);
        if clients.len() >= MAX_CLIENTS
            && let Some(stalest) = clients
                .iter()
                .min_by_key(|(_, r)| r.last_failure)
                .map(|(k, _)| *k)
        {
            clients.remove(&stalest);
        }
        let r = clients.entry(key(ip)).or_insert(Record {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        r.failures += 1;
        r.last_failure = now;
        let lockout = lockout_after(r.failures);
        r.blocked_until = now + lockout.unwrap_or_default();
        lockout
    }

    /// Clears the client's record after a correct password.
    pub fn success(&self, ip: IpAddr) {
        self.lock().remove(&key(ip));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The block that follows the `failures`-th consecutive wrong password.
fn lockout_after(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_ATTEMPTS).filter(|n| *n > 0)?;
    let secs = 1u64.checked_shl(over - 1).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_LOCKOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(lockout_after(1), None);
        assert_eq!(lockout_after(3), None);
        assert_eq!(lockout_after(4), Some(Duration::from_secs(1)));
        assert_eq!(lockout_after(5), Some(Duration::from_secs(2)));
        assert_eq!(lockout_after(8), Some(Duration::from_secs(16)));
        assert_eq!(lockout_after(40), Some(MAX_LOCKOUT));
        assert_eq!(lockout_after(200), Some(MAX_LOCKOUT));
    }

    #[test]
    fn blocked_client_is_refused_until_time_passes() {
        let t = Throttle::default();
        let ip: IpAddr = "10.42.0.7".parse().unwrap();
        let other: IpAddr = "10.42.0.8".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_ATTEMPTS {
            assert_eq!(t.failure_at(ip, t0), None);
            assert!(t.check_at(ip, t0).is_ok());
        }
        assert_eq!(t.failure_at(ip, t0), Some(Duration::from_secs(1)));
        assert!(t.check_at(ip, t0).is_err());
        assert!(t.check_at(other, t0).is_ok(), "other clients unaffected");
        assert!(t.check_at(ip, t0 + Duration::from_secs(2)).is_ok());
        t.success(ip);
        assert_eq!(t.failure_at(ip, t0), None, "success resets the count");
    }

    #[test]
    fn ipv6_clients_share_their_prefix() {
        let t = Throttle::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..=FREE_ATTEMPTS {
            t.failure(a);
        }
        assert!(t.check(b).is_err());
    }
}
