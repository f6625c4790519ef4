//! Restore jobs: started from the admin panel, run on their own thread,
//! watched through live counters.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use hearth_backup::{BackupError, Progress, RestoreReport};

use crate::Paths;

/// How many finished jobs are remembered for their result pages.
const KEEP: usize = 16;

/// Where a restore stands.
#[derive(Clone, Debug)]
pub enum RestoreState {
    Running,
    Done(Arc<RestoreReport>),
    Failed(String),
}

/// One restore: what, where, how far.
#[derive(Debug)]
pub struct RestoreJob {
    pub id: u64,
    pub snapshot: i64,
    pub path: String,
    pub target: PathBuf,
    pub total_files: u64,
    pub total_bytes: u64,
    pub progress: Progress,
    state: Mutex<RestoreState>,
}

impl RestoreJob {
    pub fn state(&self) -> RestoreState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| RestoreState::Failed("the job's state was lost".into()))
    }

    /// Bytes written so far, and the whole, for a progress bar.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.progress.bytes.load(Ordering::Relaxed),
            self.total_bytes,
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    jobs: Mutex<Vec<Arc<RestoreJob>>>,
}

impl Registry {
    pub(crate) fn start(
        &self,
        paths: &Paths,
        snapshot: i64,
        path: &str,
        target: Option<PathBuf>,
    ) -> Result<Arc<RestoreJob>, BackupError> {
        let repo = paths.open()?;
        let snap = repo.snapshot(snapshot)?;
        let path = path.trim_matches('/').to_string();
        let (total_files, total_bytes) = repo.measure(&snap, &path)?;
        // In place: into the folder the entry came from, so it lands where
        // it was.
        let target = match target {
            Some(t) => t,
            None => {
                let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                PathBuf::from(&snap.source).join(parent)
            }
        };
        let job = Arc::new(RestoreJob {
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            snapshot,
            path,
            target,
            total_files,
            total_bytes,
            progress: Progress::default(),
            state: Mutex::new(RestoreState::Running),
        });
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.push(job.clone());
            let excess = jobs.len().saturating_sub(KEEP);
            jobs.drain(..excess);
        }
        let worker = job.clone();
        std::thread::Builder::new()
            .name(format!("restore-{}", job.id))
            .spawn(move || {
                let result =
                    repo.restore_with(&snap, &worker.path, &worker.target, &worker.progress);
                let state = match result {
                    Ok(report) => {
                        log::info!(
                            "restore {} finished: {} files into {} ({} errors)",
                            worker.id,
                            report.files,
                            worker.target.display(),
                            report.errors.len()
                        );
                        RestoreState::Done(Arc::new(report))
                    }
                    Err(e) => {
                        log::error!("restore {} failed: {e}", worker.id);
                        RestoreState::Failed(e.to_string())
                    }
                };
                if let Ok(mut s) = worker.state.lock() {
                    *s = state;
                }
            })
            .map_err(|e| BackupError::Io {
                path: "restore thread".into(),
                source: e,
            })?;
        Ok(job)
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<RestoreJob>> {
        self.jobs.lock().ok()?.iter().find(|j| j.id == id).cloned()
    }
}
