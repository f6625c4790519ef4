//! The physical-presence reset: a file on the card's boot partition.
//!
//! Whoever can take the SD card out and write to it owns the device anyway,
//! so a file there is proof enough to clear a forgotten admin password
//! without reflashing. Backups, boards and settings are untouched.

use std::path::Path;

use hearth_store::{Store, StoreError};

/// The file name looked for in the boot directory.
pub const RESET_FILE: &str = "hearth-reset";

/// If `boot_dir/hearth-reset` exists, clears the admin account and every
/// session, then removes the file. Returns whether a reset happened.
/// Blocking: call at start, before serving.
pub fn reset_if_requested(store: &Store, boot_dir: &Path) -> Result<bool, StoreError> {
    let flag = boot_dir.join(RESET_FILE);
    if !flag.exists() {
        return Ok(false);
    }
    store.write_now(|c| {
        let tx = c.transaction()?;
        tx.execute("DELETE FROM admin", [])?;
        tx.execute("DELETE FROM sessions", [])?;
        tx.commit()?;
        Ok(())
    })?;
    log::warn!(
        "admin password cleared by {}: the next visitor to the admin page sets a new one",
        flag.display()
    );
    // The reset is committed before the file goes, so a crash in between
    // repeats a harmless reset instead of losing the request.
    match std::fs::remove_file(&flag).and_then(|()| hearth_system::sync_parent(&flag)) {
        Ok(()) => {}
        Err(e) => log::error!(
            "could not remove {} ({e}); remove it by hand, or the admin password is cleared at every start",
            flag.display()
        ),
    }
    Ok(true)
}
