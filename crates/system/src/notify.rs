//! systemd notification: readiness, watchdog pings and stopping.
//!
//! All of these are no-ops when systemd did not start us (no
//! `NOTIFY_SOCKET`), so a developer's `hearth serve` behaves the same.

use std::time::Duration;

/// Tells systemd the service is ready (`Type=notify`).
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        log::warn!("could not notify systemd of readiness: {e}");
    }
}

/// Tells systemd a clean stop has begun.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// How often to ping the watchdog, if systemd asked for pings: half the
/// configured `WatchdogSec`, the interval systemd documents.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// One watchdog ping.
pub fn watchdog_ping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
}
