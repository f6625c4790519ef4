//! The Update page's one job at a time: an upload, the check that stages
//! it, or the switch. It lives in [`crate::Shared`] so the page, its status
//! poll and the blocking check all see the same one; two checks at once
//! would tidy away each other's staging folders, so a second is refused.
//! Nothing here is kept across a restart: a new process starts idle.

use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use hearth_update::Progress;
use serde::Serialize;

/// Where the job is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Phase {
    #[default]
    Idle,
    /// The bundle is arriving.
    Uploading,
    /// The bundle is being checked and written into a slot.
    Checking,
    /// The last check staged this version.
    Staged(String),
    /// The last check refused the bundle: the sentence to show.
    Refused(String),
    /// "Install" is copying the database and moving the links.
    Installing,
    /// Installed; the service is stopping to start this version.
    Restarting(String),
    /// "Cancel" is dropping the staged update.
    Cancelling,
}

impl Phase {
    /// Whether a new upload, install or cancel must wait.
    pub fn busy(&self) -> bool {
        matches!(
            self,
            Phase::Uploading
                | Phase::Checking
                | Phase::Installing
                | Phase::Restarting(_)
                | Phase::Cancelling
        )
    }
}

/// What `GET /admin/update/status` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Snapshot {
    /// `idle`, `uploading`, `checking`, `staged`, `refused` or `restarting`.
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
    /// What the page shows for this phase.
    pub message: String,
    /// The staged or installed version, else empty.
    pub version: String,
}

#[derive(Debug, Default)]
struct Inner {
    phase: Phase,
    /// Bytes received (uploading) or checked (checking) of `total`.
    progress: Arc<Progress>,
    /// Counts jobs, so a guard of a finished one cannot reset a newer one.
    serial: u64,
}

/// The Update page's job; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct UpdateJob {
    inner: Mutex<Inner>,
}

impl UpdateJob {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a plain value, whole after any panic elsewhere.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn phase(&self) -> Phase {
        self.lock().phase.clone()
    }

    /// Starts a job in `phase` with fresh progress, unless one is running:
    /// then `Err` with the running one's phase.
    pub fn begin(&self, phase: Phase) -> Result<(u64, Arc<Progress>), Phase> {
        let mut inner = self.lock();
        if inner.phase.busy() {
            return Err(inner.phase.clone());
        }
        inner.serial += 1;
        inner.phase = phase;
        inner.progress = Arc::new(Progress::default());
        Ok((inner.serial, inner.progress.clone()))
    }

    /// Moves job `serial` on to `phase`; a no-op once another job began.
    pub fn set(&self, serial: u64, phase: Phase) {
        let mut inner = self.lock();
        if inner.serial == serial {
            inner.phase = phase;
        }
    }

    /// Ends job `serial` if it is still in `phase` (an upload whose
    /// connection dropped).
    pub fn abandon(&self, serial: u64, phase: &Phase) {
        let mut inner = self.lock();
        if inner.serial == serial && &inner.phase == phase {
            inner.phase = Phase::Idle;
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (done, total) = (load(&inner.progress.done), load(&inner.progress.total));
        let (phase, message, version) = match &inner.phase {
            Phase::Idle => ("idle", String::new(), String::new()),
            Phase::Uploading => (
                "uploading",
                format!("Uploading… {}%", percent(done, total)),
                String::new(),
            ),
            Phase::Checking => (
                "checking",
                format!("Checking… {}%", percent(done, total)),
                String::new(),
            ),
            Phase::Staged(v) => ("staged", format!("{v} is ready to install."), v.clone()),
            Phase::Refused(why) => ("refused", why.clone(), String::new()),
            Phase::Installing => ("restarting", "Installing…".into(), String::new()),
            Phase::Restarting(v) => ("restarting", format!("Restarting into {v}…"), v.clone()),
            Phase::Cancelling => ("idle", "Cancelling…".into(), String::new()),
        };
        Snapshot {
            phase,
            done,
            total,
            message,
            version,
        }
    }
}

/// `done` of `total` in whole percent, never above 100.
pub(crate) fn percent(done: u64, total: u64) -> u64 {
    done.min(total)
        .saturating_mul(100)
        .checked_div(total)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_and_a_stale_guard_changes_nothing() {
        let job = UpdateJob::default();
        let (first, progress) = job.begin(Phase::Uploading).unwrap();
        progress.total.store(200, Ordering::Relaxed);
        progress.done.store(50, Ordering::Relaxed);
        assert_eq!(job.snapshot().message, "Uploading… 25%");
        assert_eq!(job.begin(Phase::Installing).err(), Some(Phase::Uploading));
        job.set(first, Phase::Refused("No.".into()));
        assert_eq!(job.snapshot().phase, "refused");
        let (second, _) = job.begin(Phase::Checking).unwrap();
        job.abandon(first, &Phase::Checking);
        job.set(first, Phase::Idle);
        assert_eq!(
            job.phase(),
            Phase::Checking,
            "an old job cannot reset a new one"
        );
        job.set(second, Phase::Staged("0.2.0".into()));
        assert_eq!(job.snapshot().version, "0.2.0");
        job.abandon(second, &Phase::Uploading);
        assert_eq!(
            job.snapshot().phase,
            "staged",
            "only an upload is abandoned"
        );
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(500, 100), 100);
    }
}
