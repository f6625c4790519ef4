//! Hearth's background work: automatic backups, restore jobs, and uploads
//! to the S3 target.
//!
//! [`Jobs::start`] spawns one scheduler thread. It owns the folder watcher
//! and runs every backup and prune itself, one at a time, so they never
//! compete for the repository lock or the Pi's two busy cores. Requests
//! from the web panel ("back up now", "the folders changed") reach it over
//! a channel. Restores run on threads of their own: they only read the
//! repository, and a person is waiting for them. The S3 uploader is a
//! thread of its own too: it only reads packs, and a slow or absent target
//! must never hold up a backup.
//!
//! A stop needs no coordination. A backup or prune killed half-way leaves
//! the repository consistent by design (see `hearth-backup`), and the next
//! start simply runs again.

mod restore;
mod scheduler;
mod uploader;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

pub use restore::{RestoreJob, RestoreState};
pub use uploader::{UploadSettings, UploadState};

/// Where Hearth keeps the repository, its key and the database.
#[derive(Clone, Debug)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub repo: PathBuf,
    pub key: PathBuf,
    pub db: PathBuf,
    /// The S3 target's secret key file.
    pub s3_secret: PathBuf,
}

impl Paths {
    /// The standard layout under a data directory.
    pub fn under(data_dir: &Path) -> Paths {
        let layout = hearth_config::DataDir::new(data_dir);
        Paths {
            data_dir: data_dir.to_path_buf(),
            repo: layout.repo(),
            key: layout.backup_key(),
            db: layout.db(),
            s3_secret: layout.s3_secret(),
        }
    }

    /// Opens the repository, if one has been set up.
    pub fn open(&self) -> Result<hearth_backup::Repo, hearth_backup::BackupError> {
        hearth_backup::Repo::open(&self.repo, &self.key, &self.db)
    }
}

/// What the scheduler is doing, for the admin panel.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// What runs now, as a phrase: "Backing up /srv/hearth/files".
    pub running: Option<String>,
    /// The last failure, with the folder it concerned; cleared by success.
    pub last_error: Option<String>,
    /// Warnings of the last run (unreadable files and the like).
    pub warnings: Vec<String>,
    /// Whether the watcher covers every folder; if not, why.
    pub watch_problem: Option<String>,
    /// Runs that changed the repository (backups and prunes) since start,
    /// so the mirror can follow each one.
    pub changes: u64,
}

/// Requests to the scheduler thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Back up one folder, or every added folder.
    BackUp(Option<PathBuf>),
    /// Folders or settings changed: reload them and re-watch.
    Reload,
}

/// A handle on the background work; cheap to clone.
#[derive(Clone, Debug)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    paths: Paths,
    commands: Mutex<mpsc::Sender<Command>>,
    status: Arc<Mutex<Status>>,
    restores: restore::Registry,
    on_change: Listeners,
    uploader: std::sync::OnceLock<uploader::Uploader>,
}

/// Called after each finished backup or prune (the repository changed).
#[derive(Clone, Default)]
pub(crate) struct Listeners(Arc<Mutex<Vec<Listener>>>);

type Listener = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners").finish_non_exhaustive()
    }
}

impl Listeners {
    fn add(&self, f: Listener) {
        if let Ok(mut l) = self.0.lock() {
            l.push(f);
        }
    }

    pub(crate) fn call(&self) {
        if let Ok(l) = self.0.lock() {
            for f in l.iter() {
                f();
            }
        }
    }
}

impl Jobs {
    /// Starts the scheduler. `debounce` is how long a folder must be quiet
    /// after a change before it is backed up.
    pub fn start(paths: Paths, debounce: Duration) -> Jobs {
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(Mutex::new(Status::default()));
        let on_change = Listeners::default();
        let scheduler = scheduler::Scheduler::new(
            paths.clone(),
            tx.clone(),
            (status.clone(), on_change.clone()),
            debounce,
        );
        let spawned = std::thread::Builder::new()
            .name("backup-scheduler".into())
            .spawn(move || scheduler.run(rx));
        if let Err(e) = spawned {
            log::error!("cannot start the backup scheduler: {e}");
        }
        Jobs {
            inner: Arc::new(Inner {
                paths,
                commands: Mutex::new(tx),
                status,
                restores: restore::Registry::default(),
                on_change,
                uploader: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Calls `f` on the scheduler's thread after each finished backup or
    /// prune, e.g. to start a mirror run at once. Keep it quick.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner.on_change.add(Box::new(f));
    }

    /// Starts the S3 target's uploader (once; later calls do nothing). It
    /// runs after every finished backup or prune, on [`Jobs::upload_now`],
    /// and after failures with back-off.
    pub fn start_uploader(&self, settings: UploadSettings) {
        let mut started = false;
        let up = self.inner.uploader.get_or_init(|| {
            started = true;
            uploader::Uploader::start(self.inner.paths.clone(), settings)
        });
        if started {
            let up = up.clone();
            self.on_change(move || up.poke());
        }
    }

    /// "Upload now": an upload to the S3 target at once.
    pub fn upload_now(&self) {
        if let Some(up) = self.inner.uploader.get() {
            up.poke();
        }
    }

    /// What the uploader is doing.
    pub fn upload_state(&self) -> UploadState {
        self.inner
            .uploader
            .get()
            .map(|u| u.state())
            .unwrap_or_default()
    }

    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    fn send(&self, c: Command) {
        if let Ok(tx) = self.inner.commands.lock() {
            let _ = tx.send(c);
        }
    }

    /// Queues a backup of every added folder.
    pub fn back_up_now(&self) {
        self.send(Command::BackUp(None));
    }

    /// Tells the scheduler that folders or settings changed.
    pub fn reload(&self) {
        self.send(Command::Reload);
    }

    /// What the scheduler is doing.
    pub fn status(&self) -> Status {
        self.inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Starts restoring `path` of `snapshot` into `target`, or in place
    /// (into the folder it was backed up from) when `target` is `None`.
    pub fn start_restore(
        &self,
        snapshot: i64,
        path: &str,
        target: Option<PathBuf>,
    ) -> Result<Arc<RestoreJob>, hearth_backup::BackupError> {
        self.inner
            .restores
            .start(&self.inner.paths, snapshot, path, target)
    }

    /// A restore job by id, while it is remembered (the last few are).
    pub fn restore(&self, id: u64) -> Option<Arc<RestoreJob>> {
        self.inner.restores.get(id)
    }
}
