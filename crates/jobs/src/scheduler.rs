//! The scheduler thread: watches the added folders, backs them up after a
//! change and on a schedule, and prunes once a day.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use hearth_backup::Settings;
use notify_debouncer_mini::{
    DebounceEventResult, Debouncer, new_debouncer,
    notify::{RecommendedWatcher, RecursiveMode},
};

use crate::{Command, Listeners, Paths, Status};

/// The first scheduled pass waits this long after start, so a booting Pi
/// serves its pages before it starts reading disks.
const FIRST_PASS: Duration = Duration::from_secs(60);
/// Retention and prune run this often.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct Scheduler {
    paths: Paths,
    /// For the watcher's callback, which queues backups like anyone else.
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<Status>>,
    on_change: Listeners,
    debounce: Duration,
    settings: Settings,
    sources: Arc<Mutex<Vec<PathBuf>>>,
    watcher: Option<Debouncer<RecommendedWatcher>>,
}

impl Scheduler {
    pub(crate) fn new(
        paths: Paths,
        commands: mpsc::Sender<Command>,
        (status, on_change): (Arc<Mutex<Status>>, Listeners),
        debounce: Duration,
    ) -> Scheduler {
        Scheduler {
            paths,
            commands,
            status,
            on_change,
            debounce,
            settings: Settings::default(),
            sources: Arc::default(),
            watcher: None,
        }
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Command>) {
        self.reload();
        let mut next_pass = Instant::now() + FIRST_PASS;
        let mut next_prune = Instant::now() + FIRST_PASS * 10;
        loop {
            let now = Instant::now();
            let wake = next_pass.min(next_prune);
            let mut pending = BTreeSet::new();
            let mut all = false;
            let mut reload = false;
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(cmd) => note(cmd, &mut pending, &mut all, &mut reload),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            // Everything queued meanwhile joins this turn.
            while let Ok(cmd) = rx.try_recv() {
                note(cmd, &mut pending, &mut all, &mut reload);
            }
            if reload {
                self.reload();
            }
            let now = Instant::now();
            if now >= next_pass {
                if self.settings.every_minutes > 0 {
                    all = true;
                }
                next_pass = now + self.pass_interval();
            }
            if all {
                pending.extend(self.sources());
            }
            for source in pending {
                self.back_up(&source);
            }
            if Instant::now() >= next_prune {
                if self.settings.auto_prune {
                    self.prune();
                }
                next_prune = Instant::now() + PRUNE_EVERY;
            }
        }
    }

    fn pass_interval(&self) -> Duration {
        match self.settings.every_minutes {
            // Off: still wake hourly to look at the settings again.
            0 => Duration::from_secs(3600),
            m => Duration::from_secs(u64::from(m) * 60),
        }
    }

    fn sources(&self) -> Vec<PathBuf> {
        self.sources.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Updates the status; when `changes` moved, tells the listeners
    /// (outside the status lock).
    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        let changed = match self.status.lock() {
            Ok(mut s) => {
                let before = s.changes;
                f(&mut s);
                s.changes != before
            }
            Err(_) => false,
        };
        if changed {
            self.on_change.call();
        }
    }

    /// Reads the settings and folders again, and re-creates the watcher.
    fn reload(&mut self) {
        let loaded = hearth_store::open_reader(&self.paths.db)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                let settings = Settings::load(&c).map_err(|e| e.to_string())?;
                let sources = hearth_backup::sources(&c).map_err(|e| e.to_string())?;
                Ok((settings, sources))
            });
        let (settings, sources) = match loaded {
            Ok(l) => l,
            Err(e) => {
                log::error!("backup scheduler: cannot read the settings: {e}");
                return;
            }
        };
        self.settings = settings;
        if let Ok(mut s) = self.sources.lock() {
            *s = sources.clone();
        }
        self.watcher = None;
        if !self.settings.watch || sources.is_empty() {
            self.set_status(|s| s.watch_problem = None);
            return;
        }
        let problem = self.watch(&sources).err();
        if let Some(p) = &problem {
            log::warn!("backup watcher: {p}; changes there wait for the schedule");
        }
        self.set_status(|s| s.watch_problem = problem);
    }

    fn watch(&mut self, sources: &[PathBuf]) -> Result<(), String> {
        let tx = self.commands.clone();
        let shared = self.sources.clone();
        let data_dir = std::fs::canonicalize(&self.paths.data_dir).unwrap_or_default();
        let handler = move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let Ok(sources) = shared.lock().map(|s| s.clone()) else {
                return;
            };
            let mut changed = BTreeSet::new();
            for e in events {
                if e.path.starts_with(&data_dir) || is_ours(&e.path) {
                    continue;
                }
                if let Some(s) = sources.iter().find(|s| e.path.starts_with(s)) {
                    changed.insert(s.clone());
                }
            }
            for s in changed {
                let _ = tx.send(Command::BackUp(Some(s)));
            }
        };
        let mut debouncer = new_debouncer(self.debounce, handler).map_err(|e| e.to_string())?;
        let mut failed = vec![];
        for s in sources {
            if let Err(e) = debouncer.watcher().watch(s, RecursiveMode::Recursive) {
                failed.push(format!("{} ({e})", s.display()));
            }
        }
        self.watcher = Some(debouncer);
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("cannot watch {}", failed.join(", ")))
        }
    }

    fn back_up(&self, source: &Path) {
        let repo = match self.paths.open() {
            Ok(r) => r,
            // No repository yet: nothing to do until the admin sets one up.
            Err(hearth_backup::BackupError::NoRepository(_)) => return,
            Err(e) => {
                self.set_status(|s| s.last_error = Some(e.to_string()));
                return;
            }
        };
        self.set_status(|s| s.running = Some(format!("Backing up {}", source.display())));
        let result = repo.backup(source);
        self.set_status(|s| {
            s.running = None;
            match result {
                Ok(report) => {
                    log::info!(
                        "backed up {}: snapshot {}, {} files, {} bytes added",
                        source.display(),
                        report.snapshot.id,
                        report.snapshot.files,
                        report.snapshot.added
                    );
                    s.last_error = None;
                    s.warnings = report.warnings;
                    s.changes += 1;
                }
                Err(e) => {
                    log::error!("backup of {} failed: {e}", source.display());
                    s.last_error = Some(format!("{}: {e}", source.display()));
                }
            }
        });
    }

    fn prune(&self) {
        let Ok(repo) = self.paths.open() else { return };
        self.set_status(|s| s.running = Some("Freeing space (prune)".into()));
        let result = repo
            .forget(&self.settings.retention, false)
            .and_then(|_| repo.prune());
        self.set_status(|s| {
            s.running = None;
            match result {
                Ok(r) => {
                    log::info!(
                        "pruned: {} packs deleted, {} bytes freed",
                        r.packs_deleted,
                        r.bytes_freed
                    );
                    s.changes += 1;
                }
                Err(e) => {
                    log::error!("prune failed: {e}");
                    s.last_error = Some(format!("prune: {e}"));
                }
            }
        });
    }
}

fn note(cmd: Command, pending: &mut BTreeSet<PathBuf>, all: &mut bool, reload: &mut bool) {
    match cmd {
        Command::BackUp(Some(p)) => {
            pending.insert(p);
        }
        Command::BackUp(None) => *all = true,
        Command::Reload => *reload = true,
    }
}

/// Hearth's own temporary files: an upload or restore in progress is not a
/// change worth a backup; its final rename is.
fn is_ours(path: &Path) -> bool {
    path.file_name().is_some_and(hearth_backup::is_temporary)
}
