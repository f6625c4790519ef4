//! The S3 target's uploader thread: after every backup or prune, on
//! "Upload now", and again after a failure (backing off from
//! `s3_retry_secs` doubling to an hour), it sends what the bucket lacks.
//!
//! The queue is the database's "packs without a `backup_remote` row", so
//! nothing is kept here that a restart would lose: a restart simply tries
//! again at once.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use hearth_backup::remote::{self, UploadProgress};

use crate::Paths;

/// The longest wait between retries.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// How the uploader may use the link.
#[derive(Clone, Copy, Debug)]
pub struct UploadSettings {
    /// Average bytes per second; 0 for no limit.
    pub bytes_per_sec: u64,
    /// The first retry's wait.
    pub retry: Duration,
}

/// What the uploader does now, for the dashboard (the rest of the state
/// is in the database: `remote::status`).
#[derive(Clone, Debug, Default)]
pub struct UploadState {
    /// Progress of the upload under way, if one is.
    pub running: Option<UploadProgress>,
    /// Seconds until the next retry after a failure.
    pub retry_in: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct Uploader {
    poke: Arc<Mutex<mpsc::Sender<()>>>,
    state: Arc<Mutex<UploadState>>,
}

impl Uploader {
    pub(crate) fn start(paths: Paths, settings: UploadSettings) -> Uploader {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(UploadState::default()));
        let shared = state.clone();
        let spawned = std::thread::Builder::new()
            .name("s3-uploader".into())
            .spawn(move || run(&paths, settings, &rx, &shared));
        if let Err(e) = spawned {
            log::error!("cannot start the S3 uploader: {e}");
        }
        // A start tries at once: whatever a stop left waiting goes now.
        let _ = tx.send(());
        Uploader {
            poke: Arc::new(Mutex::new(tx)),
            state,
        }
    }

    /// Asks for an upload now (it runs after the current one, if any).
    pub(crate) fn poke(&self) {
        if let Ok(tx) = self.poke.lock() {
            let _ = tx.send(());
        }
    }

    pub(crate) fn state(&self) -> UploadState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn run(
    paths: &Paths,
    settings: UploadSettings,
    pokes: &mpsc::Receiver<()>,
    state: &Mutex<UploadState>,
) {
    let mut wait: Option<Duration> = None;
    loop {
        let woke = match wait {
            None => pokes.recv().map_err(|_| ()),
            Some(w) => match pokes.recv_timeout(w) {
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                _ => Ok(()),
            },
        };
        if woke.is_err() {
            return;
        }
        // Several pokes while one upload ran need one more upload, not many.
        while pokes.try_recv().is_ok() {}
        set(state, |s| s.retry_in = None);
        let outcome = upload_once(paths, settings, state);
        set(state, |s| s.running = None);
        wait = match outcome {
            Ok(()) => None,
            Err(e) => {
                let next = wait.map_or(settings.retry, |w| (w * 2).min(MAX_RETRY));
                log::warn!(
                    "S3 target: {e}; trying again in {} s (backups here are unaffected)",
                    next.as_secs()
                );
                set(state, |s| s.retry_in = Some(next.as_secs()));
                Some(next)
            }
        };
    }
}

/// One pass; `Ok` when there is no target, no repository or nothing left.
fn upload_once(
    paths: &Paths,
    settings: UploadSettings,
    state: &Mutex<UploadState>,
) -> Result<(), String> {
    let client = match remote::connect(&paths.db, &paths.s3_secret) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let Ok(repo) = paths.open() else {
        return Ok(());
    };
    let report = repo
        .upload(&client, settings.bytes_per_sec, &|p| {
            set(state, |s| s.running = Some(p));
        })
        .map_err(|e| e.to_string())?;
    if report.packs + report.deleted > 0 {
        log::info!(
            "S3 target: {} packs ({} bytes) uploaded, {} deleted",
            report.packs,
            report.bytes,
            report.deleted
        );
    }
    Ok(())
}

fn set(state: &Mutex<UploadState>, f: impl FnOnce(&mut UploadState)) {
    if let Ok(mut s) = state.lock() {
        f(&mut s);
    }
}
