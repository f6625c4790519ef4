//! Admin → Backups: set up the repository, choose folders, see snapshots,
//! change retention and schedule, and the S3 target's one-line state (also
//! on the dashboard). Browsing and restoring live in `browse`; the target's
//! own page in `target`, which uses this module and never the reverse.

use std::path::PathBuf;

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_backup::{
    BackupError, Repo, Retention, Settings,
    remote::{self, TargetStatus},
};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, Empty, issue},
    error::render,
    format::{bytes, when},
    pages::{BackupsPage, SnapshotRow},
    session::Admin,
};

/// How backup failures read in the panel.
pub(crate) fn backup_error(e: BackupError) -> WebError {
    match e {
        BackupError::NoSnapshot(_) | BackupError::NoSnapshots | BackupError::NoSuchPath(_) => {
            WebError::NotFound
        }
        BackupError::WeakPassphrase
        | BackupError::AlreadyInitialised(_)
        | BackupError::BadSource { .. }
        | BackupError::NoRepository(_) => WebError::BadRequest(e.to_string()),
        BackupError::Locked => WebError::Conflict(e.to_string()),
        other => WebError::Internal(other.to_string()),
    }
}

/// Runs blocking backup work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(format!("backup task: {e}")))?
        .map_err(backup_error)
}

#[derive(Deserialize)]
pub(crate) struct Notice {
    done: Option<String>,
}

/// Everything the page shows, read in one blocking call.
struct Loaded {
    needs_init: bool,
    problem: Option<String>,
    sources: Vec<String>,
    snapshots: Vec<SnapshotRow>,
    repository: String,
    settings: Settings,
}

pub(crate) async fn page(
    _admin: Admin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let paths = state.jobs.paths().clone();
    let loaded = blocking(move || {
        let c = hearth_store::open_reader(&paths.db).map_err(|e| BackupError::Io {
            path: paths.db.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let settings = Settings::load(&c)?;
        let sources = hearth_backup::sources(&c)?
            .into_iter()
            .map(|p| p.display().to_string())
            .collect();
        let summary = hearth_backup::summary(&paths.db)?;
        let (needs_init, problem, snapshots) = match paths.open() {
            Ok(repo) => (false, None, repo.snapshots()?),
            Err(BackupError::NoRepository(_)) => (true, None, vec![]),
            Err(e) => (
                false,
                Some(format!("The backup repository cannot be opened: {e}")),
                vec![],
            ),
        };
        let snapshots = snapshots
            .into_iter()
            .rev()
            .take(500)
            .map(|s| SnapshotRow {
                id: s.id,
                when: when(s.time),
                source: s.source,
                files: s.files,
                size: bytes(s.bytes),
                added: bytes(s.added),
                duration: format!("{:.1} s", s.duration_ms as f64 / 1000.0),
            })
            .collect();
        Ok(Loaded {
            needs_init,
            problem,
            sources,
            snapshots,
            repository: bytes(summary.repository_bytes),
            settings,
        })
    })
    .await?;
    let status = state.jobs.status();
    // No working repository, but an S3 target: offer recovering from it.
    let recover_from = if loaded.needs_init || loaded.problem.is_some() {
        let db = state.jobs.paths().db.clone();
        blocking(move || remote::target(&db))
            .await?
            .map(|t| format!("bucket {} at {}", t.bucket, t.endpoint))
    } else {
        None
    };
    let (jar, csrf) = issue(&state, jar)?;
    let page = BackupsPage {
        csrf,
        needs_init: loaded.needs_init,
        problem: loaded.problem,
        notice: q
            .done
            .as_deref()
            .and_then(|d| match d {
                "init" => Some(
                    "Backups are set up. The Files folder is backed up already; add more below.",
                ),
                "queued" => Some("A backup of every folder has started."),
                "added" => Some("Folder added. Its first backup starts now."),
                "removed" => Some("Hearth no longer backs up that folder. Its snapshots are kept."),
                "saved" => Some("Settings saved."),
                "recovered" => Some(
                    "Backups recovered from the S3 target: every snapshot below can be browsed and restored.",
                ),
                _ => None,
            })
            .map(str::to_string),
        min_len: hearth_backup::MIN_PASSPHRASE_LEN,
        sources: loaded.sources,
        files_dir: state.files_dir.display().to_string(),
        snapshots: loaded.snapshots,
        repository: loaded.repository,
        running: status.running,
        last_error: status.last_error,
        warnings: status.warnings,
        watch_problem: status.watch_problem,
        settings: loaded.settings,
        recover_from,
        target_line: target_line(&state).await.unwrap_or_else(|| {
            "This device, and the paired Hearths under Peers. No S3 target.".into()
        }),
    };
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub(crate) struct InitForm {
    passphrase: String,
    confirm: String,
}

/// Creates the repository and starts backing up the Files folder.
pub(crate) async fn init(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<InitForm>,
) -> Result<Response, WebError> {
    if form.passphrase != form.confirm {
        return Err(WebError::BadRequest(
            "The two passphrases differ. Go back and type the same one twice.".into(),
        ));
    }
    let paths = state.jobs.paths().clone();
    let files = state.files_dir.as_ref().clone();
    blocking(move || {
        Repo::init(&paths.repo, &paths.key, &paths.db, &form.passphrase)?;
        std::fs::create_dir_all(&files).map_err(|e| BackupError::Io {
            path: files.clone(),
            source: e,
        })?;
        let c = writer(&paths.db)?;
        hearth_backup::add_source(&c, &files, &paths.data_dir)?;
        Ok(())
    })
    .await?;
    log::info!("backup repository set up from the admin panel");
    state.jobs.reload();
    state.jobs.back_up_now();
    Ok(Redirect::to("/admin/backups?done=init").into_response())
}

fn writer(db: &std::path::Path) -> Result<hearth_store::rusqlite::Connection, BackupError> {
    hearth_store::open_writer(db).map_err(|e| BackupError::Io {
        path: db.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[derive(Deserialize)]
pub(crate) struct PathForm {
    path: String,
}

pub(crate) async fn add_source(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<PathForm>,
) -> Result<Response, WebError> {
    let path = PathBuf::from(form.path.trim());
    if !path.is_absolute() {
        return Err(WebError::BadRequest(
            "Give the folder's full path, starting with /.".into(),
        ));
    }
    let paths = state.jobs.paths().clone();
    let added = blocking(move || {
        let c = writer(&paths.db)?;
        hearth_backup::add_source(&c, &path, &paths.data_dir)
    })
    .await?;
    log::info!("backing up {} from now on", added.display());
    state.jobs.reload();
    state.jobs.back_up_now();
    Ok(Redirect::to("/admin/backups?done=added").into_response())
}

pub(crate) async fn remove_source(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<PathForm>,
) -> Result<Response, WebError> {
    let paths = state.jobs.paths().clone();
    let removed = blocking(move || {
        let c = writer(&paths.db)?;
        hearth_backup::remove_source(&c, &form.path)
    })
    .await?;
    if !removed {
        return Err(WebError::BadRequest(
            "That folder was not being backed up.".into(),
        ));
    }
    state.jobs.reload();
    Ok(Redirect::to("/admin/backups?done=removed").into_response())
}

pub(crate) async fn run_now(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.jobs.back_up_now();
    Ok(Redirect::to("/admin/backups?done=queued").into_response())
}

#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    daily: u32,
    weekly: u32,
    monthly: u32,
    every_minutes: u32,
    #[serde(default)]
    watch: Option<String>,
    #[serde(default)]
    auto_prune: Option<String>,
}

pub(crate) async fn save_settings(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Result<Response, WebError> {
    if [form.daily, form.weekly, form.monthly]
        .iter()
        .any(|n| *n > 1000)
    {
        return Err(WebError::BadRequest(
            "Keep at most 1000 snapshots of each kind.".into(),
        ));
    }
    if form.every_minutes > 7 * 24 * 60 {
        return Err(WebError::BadRequest(
            "Back up at least once a week (10080 minutes), or choose 0 for never.".into(),
        ));
    }
    let settings = Settings {
        retention: Retention {
            last: 1,
            daily: form.daily,
            weekly: form.weekly,
            monthly: form.monthly,
        },
        every_minutes: form.every_minutes,
        watch: form.watch.is_some(),
        auto_prune: form.auto_prune.is_some(),
    };
    let db = state.jobs.paths().db.clone();
    blocking(move || settings.save(&writer(&db)?)).await?;
    state.jobs.reload();
    Ok(Redirect::to("/admin/backups?done=saved").into_response())
}

/// One line about the S3 target for the dashboard and the Backups page:
/// its state, bytes stored, last upload and last check; `None` without one.
pub(crate) fn summary_line(s: &TargetStatus, up: &hearth_jobs::UploadState) -> String {
    let state = if let Some(p) = up.running {
        format!("uploading {} of {} packs", p.packs_done, p.packs_total)
    } else if s.failing_since != 0 {
        format!(
            "{} packs waiting, failing since {}: {}",
            s.packs_waiting,
            when(s.failing_since),
            s.last_error
        )
    } else if s.packs_waiting > 0 {
        format!(
            "{} packs ({}) waiting",
            s.packs_waiting,
            bytes(s.bytes_waiting)
        )
    } else {
        "up to date".into()
    };
    format!(
        "S3 target {}: {state} · {} stored · last upload {} · last check {}",
        s.bucket,
        bytes(s.bytes_stored),
        ever(s.last_upload),
        ever(s.last_check)
    )
}

/// The saved target's line, read off the async threads.
pub(crate) async fn target_line(state: &AppState) -> Option<String> {
    let db = state.jobs.paths().db.clone();
    let status = blocking(move || remote::status(&db)).await.ok().flatten()?;
    Some(summary_line(&status, &state.jobs.upload_state()))
}

/// A time, or "never" for 0.
pub(crate) fn ever(t: i64) -> String {
    if t == 0 { "never".into() } else { when(t) }
}
