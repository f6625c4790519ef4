//! The launcher's decision, the candidate's confirmation, and the
//! rollback between them.
//!
//! systemd always starts the OS's `/usr/bin/hearth`, which the unit's
//! `ProtectSystem=strict` keeps read-only, so a damaged slot can never stop
//! the device from starting something. That binary decides, before it
//! opens anything else, whether to run itself or `exec` a slot's binary
//! (same PID, so systemd's notify and watchdog carry over).

use std::path::PathBuf;

use crate::{
    Outcome, PROGRAM, SLOT_VAR, Trial, UpdateError, Updates,
    bundle::verify_slot,
    running_slot,
    slots::{CURRENT, DB_COPY, PREVIOUS, restore_db},
    unix_now,
};

/// What `hearth serve` should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Run this process: no update is installed, or this is a slot already.
    RunHere,
    /// Replace this process with a slot's binary, its folder in
    /// [`SLOT_VAR`].
    Exec {
        program: PathBuf,
        slot_dir: PathBuf,
        version: String,
    },
}

impl Updates {
    /// Decides what runs, rolling back a trial that did not confirm. Never
    /// fails: any problem with a slot falls back to what ran before it, and
    /// in the end to this binary.
    pub fn launch(&self) -> Launch {
        if std::env::var_os(SLOT_VAR).is_some() || !self.layout.dir.exists() {
            return Launch::RunHere;
        }
        if let Some(mut trial) = self.layout.trial() {
            if trial.attempts >= 1 {
                let reason = if trial.failure.is_empty() {
                    "it stopped before it answered /healthz".to_string()
                } else {
                    trial.failure.clone()
                };
                self.roll_back(&trial, &reason);
            } else {
                // Finish the switch (a crash may have come between the
                // marker and the links), then count this start.
                let done = self
                    .layout
                    .set_link(
                        PREVIOUS,
                        (!trial.previous.is_empty()).then_some(trial.previous.as_str()),
                    )
                    .and_then(|()| self.layout.set_link(CURRENT, Some(&trial.candidate)))
                    .and_then(|()| {
                        trial.attempts = 1;
                        self.layout.write_trial(&trial)
                    });
                if let Err(e) = done {
                    self.roll_back(&trial, &format!("the switch could not be completed: {e}"));
                }
            }
        }
        let Some(slot) = self.layout.link(CURRENT) else {
            return Launch::RunHere;
        };
        let dir = self.layout.slot(&slot);
        match verify_slot(&self.keys, &dir) {
            Ok(signed) => Launch::Exec {
                program: dir.join(PROGRAM),
                slot_dir: dir,
                version: signed.manifest.version,
            },
            Err(e) => {
                log::error!("the installed update {slot} fails its check: {e}");
                match self.layout.trial() {
                    Some(trial) if trial.candidate == slot => {
                        self.roll_back(
                            &trial,
                            &format!("it failed its check before starting: {e}"),
                        );
                    }
                    _ => {
                        // A confirmed slot went bad on the card: run the
                        // one before it, else this binary.
                        let previous = self.layout.link(PREVIOUS);
                        let _ = self.layout.set_link(CURRENT, previous.as_deref());
                        let _ = self.layout.set_link(PREVIOUS, None);
                    }
                }
                self.launch()
            }
        }
    }

    /// The `exec` of a slot failed: roll back if it was on trial, then
    /// decide again.
    pub fn exec_failed(&self, launch: &Launch, error: &std::io::Error) -> Launch {
        if let Launch::Exec { slot_dir, .. } = launch {
            let slot = slot_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            log::error!("cannot start the installed update {slot}: {error}");
            match self.layout.trial() {
                Some(trial) if trial.candidate == slot => {
                    self.roll_back(&trial, &format!("it could not be started: {error}"));
                }
                _ => {
                    let _ = self.layout.set_link(CURRENT, None);
                }
            }
        }
        self.launch()
    }

    /// Puts back the database and the links as they were before `trial`.
    /// Each step can be repeated, so a crash part-way is finished by the
    /// next start (the trial marker goes last).
    fn roll_back(&self, trial: &Trial, reason: &str) {
        log::error!(
            "update {} did not become healthy ({reason}); rolling back to {}",
            trial.candidate_version,
            trial.previous_version
        );
        let steps = || -> Result<(), UpdateError> {
            if trial.db_copied {
                restore_db(&self.layout.path(DB_COPY), &self.db)?;
            }
            let previous = (!trial.previous.is_empty()).then_some(trial.previous.as_str());
            self.layout.set_link(CURRENT, previous)?;
            self.layout.set_link(PREVIOUS, None)?;
            self.layout.write_last(&Outcome {
                outcome: "rolled-back".into(),
                version: trial.candidate_version.clone(),
                from_version: trial.previous_version.clone(),
                at: unix_now(),
                reason: reason.to_string(),
            })?;
            self.layout.clear_trial()
        };
        if let Err(e) = steps() {
            // The marker stays, so the next start tries again; meanwhile
            // this start runs the links as they are.
            log::error!("rolling back the update failed: {e}");
        }
    }

    /// Whether this process is the candidate of a switch in progress.
    pub fn on_trial(&self) -> bool {
        match (running_slot(), self.layout.trial()) {
            (Some(slot), Some(trial)) => trial.candidate == slot,
            _ => false,
        }
    }

    /// Called by the candidate once it is healthy: the switch is kept.
    pub fn confirm(&self) -> Result<Option<Outcome>, UpdateError> {
        let Some(trial) = self.layout.trial() else {
            return Ok(None);
        };
        if running_slot().as_deref() != Some(trial.candidate.as_str()) {
            return Ok(None);
        }
        let outcome = Outcome {
            outcome: "installed".into(),
            version: trial.candidate_version.clone(),
            from_version: trial.previous_version.clone(),
            at: unix_now(),
            reason: String::new(),
        };
        self.layout.write_last(&outcome)?;
        self.layout.clear_trial()?;
        log::info!("update {} confirmed healthy", trial.candidate_version);
        Ok(Some(outcome))
    }

    /// The candidate found itself unhealthy: say why, for the rollback the
    /// next start makes.
    pub fn fail_trial(&self, reason: &str) {
        if let Some(mut trial) = self.layout.trial() {
            trial.failure = reason.to_string();
            if let Err(e) = self.layout.write_trial(&trial) {
                log::error!("cannot record why the update failed: {e}");
            }
        }
    }

    /// `ExecStopPost=`: systemd's word on how the service stopped, kept in
    /// the trial when the candidate stopped before confirming.
    pub fn record_exit(&self, service_result: &str, exit_code: &str, exit_status: &str) {
        let Some(trial) = self.layout.trial() else {
            return;
        };
        if trial.attempts == 0 || !trial.failure.is_empty() {
            return;
        }
        let clean = service_result == "success";
        if clean && (exit_status == "0" || exit_status == crate::EXIT_RESTART.to_string()) {
            return;
        }
        let what = match (service_result, exit_code) {
            ("timeout", _) => "it did not report ready within the start deadline".to_string(),
            (_, "exited") => format!("it exited with status {exit_status}"),
            (_, "killed" | "dumped") => format!("it was killed by signal {exit_status}"),
            _ => format!("it stopped ({service_result})"),
        };
        self.fail_trial(&what);
    }
}
