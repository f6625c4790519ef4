//! The backup settings the admin panel edits and the CLI and scheduler
//! read: retention and schedule, kept as one JSON row in `settings` so a
//! new field needs no migration.

use hearth_store::rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{BackupError, Retention};

/// How and when backups run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub retention: Retention,
    /// Back up every added folder this often, whatever the watcher saw
    /// (it can miss events); 0 turns the schedule off.
    pub every_minutes: u32,
    /// Back up a folder soon after a change in it.
    pub watch: bool,
    /// Apply the retention policy and prune once a day.
    pub auto_prune: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retention: Retention::default(),
            every_minutes: 60,
            watch: true,
            auto_prune: true,
        }
    }
}

const KEY: &str = "backup";

impl Settings {
    /// The saved settings, or the defaults when none are saved.
    pub fn load(c: &Connection) -> Result<Settings, BackupError> {
        let raw: Option<Vec<u8>> = c
            .query_row("SELECT value FROM settings WHERE key = ?1", [KEY], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(raw
            .and_then(|r| serde_json::from_slice(&r).ok())
            .unwrap_or_default())
    }

    pub fn save(&self, c: &Connection) -> Result<(), BackupError> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        c.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
            hearth_store::rusqlite::params![KEY, json],
        )?;
        Ok(())
    }
}
