//! The Wi-Fi hotspot's name and password, changed through NetworkManager.
//!
//! The image creates the access-point connection (open until setup is done);
//! the admin renames it and sets a WPA2 password from the admin panel. A
//! change is made in a way that cannot lock everyone out:
//!
//! 1. the current settings are read and written to `hotspot-pending.json`
//!    in the data directory (fsynced) before anything changes;
//! 2. the new settings are applied and the connection brought up again; if
//!    NetworkManager refuses either step, the old settings are put back at
//!    once;
//! 3. the admin, whose phone lost the old network, rejoins with the new
//!    name and password and presses "Keep" within the confirmation window.
//!    If nobody does (a mistyped password, a phone that cannot join), the
//!    old settings come back by themselves ([`Hotspot::spawn_reverter`]
//!    looks every two seconds). A restart with a change still pending also
//!    puts the old settings back.
//!
//! NetworkManager is driven with `nmcli` (run as the `hearth` user, allowed
//! by the image's polkit rule), found on `PATH` so tests can stand in a
//! fake that keeps its state in a file.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// The pending-change file's name in the data directory.
pub const PENDING_FILE: &str = "hotspot-pending.json";

/// How often the reverter looks for a change whose window has passed.
const REVERT_EVERY: Duration = Duration::from_secs(2);

/// A hotspot's name and, when it is protected, its WPA2 passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub ssid: String,
    pub psk: Option<String>,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum HotspotError {
    /// The admin's input; shown as it is.
    #[error("{0}")]
    Invalid(String),
    /// No NetworkManager here (a laptop, a test without the fake).
    #[error("This machine has no hotspot to manage: {0}")]
    Unavailable(String),
    /// NetworkManager refused; the old settings are back.
    #[error("The hotspot could not be changed ({0}). The previous name and password are back.")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Checks a new name and passphrase as WPA2 requires them.
pub fn validate(ssid: &str, psk: &str) -> Result<Settings, HotspotError> {
    let ssid = ssid.trim();
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(HotspotError::Invalid(
            "A network name is 1 to 32 bytes long.".into(),
        ));
    }
    if ssid.chars().any(char::is_control) {
        return Err(HotspotError::Invalid(
            "A network name cannot contain control characters.".into(),
        ));
    }
    if !(8..=63).contains(&psk.len()) || !psk.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(HotspotError::Invalid(
            "A Wi-Fi password is 8 to 63 characters: letters, digits, spaces and punctuation (no accents or emoji)."
                .into(),
        ));
    }
    Ok(Settings {
        ssid: ssid.to_string(),
        psk: Some(psk.to_string()),
    })
}

/// What the admin panel shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// No hotspot can be managed here; why.
    Unavailable(String),
    /// The hotspot as it is, and whether a change awaits "Keep" (with the
    /// seconds left before it is undone).
    Ready {
        current: Settings,
        pending_secs: Option<u64>,
    },
}

struct Pending {
    old: Settings,
    deadline: Instant,
}

/// The hotspot of this device; cheap to clone.
#[derive(Clone)]
pub struct Hotspot {
    connection: Arc<str>,
    pending_file: Arc<PathBuf>,
    confirm: Duration,
    pending: Arc<Mutex<Option<Pending>>>,
}

impl std::fmt::Debug for Hotspot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotspot")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Hotspot {
    /// The connection `connection`, with pending changes recorded in
    /// `data_dir`. A change left pending by a previous run is undone here:
    /// nobody confirmed it. Blocking: call at start.
    pub fn open(connection: &str, data_dir: &Path, confirm: Duration) -> Hotspot {
        let h = Hotspot {
            connection: connection.into(),
            pending_file: Arc::new(data_dir.join(PENDING_FILE)),
            confirm,
            pending: Arc::default(),
        };
        match std::fs::read(&*h.pending_file) {
            Ok(raw) => {
                match serde_json::from_slice::<Settings>(&raw) {
                    Ok(old) => match h.set(&old) {
                        Ok(()) => log::warn!(
                            "hotspot: a change was never confirmed; \"{}\" is back",
                            old.ssid
                        ),
                        Err(e) => log::error!("hotspot: could not undo an unconfirmed change: {e}"),
                    },
                    Err(e) => log::error!(
                        "hotspot: {} is unreadable ({e}); left as it is",
                        h.pending_file.display()
                    ),
                }
                h.forget_pending();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!("hotspot: cannot read {}: {e}", h.pending_file.display()),
        }
        h
    }

    /// How long a change waits for "Keep".
    pub fn confirm_window(&self) -> Duration {
        self.confirm
    }

    /// The hotspot as NetworkManager has it now. Blocking.
    pub fn state(&self) -> State {
        match self.current() {
            Err(e) => State::Unavailable(e.to_string()),
            Ok(current) => {
                let left = self.lock().as_ref().map(|p| {
                    p.deadline
                        .saturating_duration_since(Instant::now())
                        .as_secs()
                });
                State::Ready {
                    current,
                    pending_secs: left,
                }
            }
        }
    }

    /// Applies `new`, keeping the old settings to come back to. Blocking.
    /// On success the change still needs [`Hotspot::keep`] within the
    /// confirmation window, or [`Hotspot::expire`] undoes it.
    pub fn change(&self, new: &Settings) -> Result<(), HotspotError> {
        let mut pending = self.lock();
        // A change on top of an unconfirmed one keeps the first old
        // settings: those are the ones known to work.
        let old = match pending.take() {
            Some(p) => p.old,
            None => self.current()?,
        };
        write_atomically(&self.pending_file, &old)?;
        if let Err(e) = self.set(new) {
            log::error!("hotspot: applying \"{}\" failed: {e}", new.ssid);
            let back = self.set(&old);
            if let Err(b) = &back {
                log::error!("hotspot: putting \"{}\" back failed too: {b}", old.ssid);
            }
            self.forget_pending();
            return Err(HotspotError::Refused(e.to_string()));
        }
        log::info!(
            "hotspot: now \"{}\"; waiting {} s for the admin to keep it",
            new.ssid,
            self.confirm.as_secs()
        );
        *pending = Some(Pending {
            old,
            deadline: Instant::now() + self.confirm,
        });
        Ok(())
    }

    /// The admin rejoined and keeps the new settings.
    pub fn keep(&self) -> bool {
        let kept = self.lock().take().is_some();
        if kept {
            self.forget_pending();
            log::info!("hotspot: change kept");
        }
        kept
    }

    /// Undoes an unconfirmed change whose window has passed. Blocking;
    /// [`Hotspot::spawn_reverter`] calls it every few seconds. Returns
    /// whether it undid one.
    pub fn expire(&self) -> bool {
        let mut pending = self.lock();
        let due = pending
            .as_ref()
            .is_some_and(|p| Instant::now() >= p.deadline);
        if !due {
            return false;
        }
        let Some(p) = pending.take() else {
            return false;
        };
        match self.set(&p.old) {
            Ok(()) => log::warn!(
                "hotspot: the change was not kept in time; \"{}\" is back",
                p.old.ssid
            ),
            Err(e) => log::error!("hotspot: could not undo an unkept change: {e}"),
        }
        self.forget_pending();
        true
    }

    /// Starts the task that undoes an unkept change when its window passes:
    /// every two seconds it runs [`Hotspot::expire`] on tokio's blocking
    /// pool (it may run `nmcli`), which logs what it undid. Runs until the
    /// runtime stops; call it once, from inside the runtime.
    pub fn spawn_reverter(&self) -> tokio::task::JoinHandle<()> {
        let hotspot = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REVERT_EVERY);
            loop {
                tick.tick().await;
                let h = hotspot.clone();
                let _ = tokio::task::spawn_blocking(move || h.expire()).await;
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_pending(&self) {
        match std::fs::remove_file(&*self.pending_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!(
                "hotspot: cannot remove {}: {e}",
                self.pending_file.display()
            ),
        }
    }

    /// The connection's name and passphrase, from NetworkManager.
    fn current(&self) -> Result<Settings, HotspotError> {
        let out = nmcli(&[
            "--show-secrets",
            "--get-values",
            "802-11-wireless.ssid,802-11-wireless-security.key-mgmt,802-11-wireless-security.psk",
            "connection",
            "show",
            &self.connection,
        ])
        .map_err(|e| match e {
            Nmcli::Missing(m) => HotspotError::Unavailable(m),
            Nmcli::Failed(m) => HotspotError::Unavailable(m),
        })?;
        let mut lines = out.lines();
        let ssid = lines.next().unwrap_or("").to_string();
        let key_mgmt = lines.next().unwrap_or("");
        let psk = lines.next().unwrap_or("");
        Ok(Settings {
            ssid,
            psk: (key_mgmt == "wpa-psk" && !psk.is_empty()).then(|| psk.to_string()),
        })
    }

    /// Writes `s` to the connection and brings it up again.
    fn set(&self, s: &Settings) -> Result<(), String> {
        let id = &*self.connection;
        let mut args: Vec<&str> = vec!["connection", "modify", id, "802-11-wireless.ssid", &s.ssid];
        match &s.psk {
            Some(psk) => args.extend([
                "802-11-wireless-security.key-mgmt",
                "wpa-psk",
                "802-11-wireless-security.proto",
                "rsn",
                "802-11-wireless-security.pairwise",
                "ccmp",
                "802-11-wireless-security.group",
                "ccmp",
                "802-11-wireless-security.psk",
                psk,
            ]),
            None => args.extend(["remove", "802-11-wireless-security"]),
        }
        nmcli(&args).map_err(Nmcli::message)?;
        nmcli(&["--wait", "30", "connection", "up", id]).map_err(Nmcli::message)?;
        Ok(())
    }
}

enum Nmcli {
    Missing(String),
    Failed(String),
}

impl Nmcli {
    fn message(self) -> String {
        match self {
            Nmcli::Missing(m) | Nmcli::Failed(m) => m,
        }
    }
}

/// Runs nmcli in terse mode and returns its output. The passphrase is on
/// its command line: the unit's `ProtectProc=invisible` hides hearth's
/// processes from other users.
fn nmcli(args: &[&str]) -> Result<String, Nmcli> {
    let out = Command::new("nmcli")
        .arg("--terse")
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| Nmcli::Missing(format!("cannot run nmcli ({e})")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        return Err(Nmcli::Failed(format!(
            "nmcli {}: {}",
            args.iter().find(|a| !a.starts_with('-')).unwrap_or(&""),
            if first.is_empty() { "failed" } else { first }
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The old settings, passphrase included: owner-only, durable before
/// anything changes (`hearth_system::write_durably`).
fn write_atomically(path: &Path, old: &Settings) -> Result<(), HotspotError> {
    let json = serde_json::to_vec(old).map_err(|e| HotspotError::Internal(e.to_string()))?;
    hearth_system::write_durably(path, &json)
        .map_err(|e| HotspotError::Internal(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked_as_wpa2_needs() {
        assert!(validate("Kitchen", "correct horse").is_ok());
        assert_eq!(
            validate("  Hearth-1a2b ", "12345678").unwrap().ssid,
            "Hearth-1a2b"
        );
        for (ssid, psk) in [
            ("", "12345678"),
            (&"x".repeat(33), "12345678"),
            ("a\tb", "12345678"),
            ("ok", "short"),
            ("ok", &"p".repeat(64)),
            ("ok", "pässword123"),
            ("ok", "line\nbreak!"),
        ] {
            assert!(validate(ssid, psk).is_err(), "{ssid:?} {psk:?}");
        }
    }
}
