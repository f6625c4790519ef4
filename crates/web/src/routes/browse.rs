//! Browsing a snapshot, downloading from it, and restoring it.
//!
//! Downloads stream: a blocking task reads chunk after chunk and writes
//! into a small bounded channel that the response body drains, so memory
//! stays at a few chunks for a file or folder of any size, and a client
//! that goes away stops the reading.

use std::{io::Write, path::PathBuf};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_backup::{Archive, BackupError, NodeKind};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, issue},
    error::render,
    format::{attachment, bytes, percent, when},
    pages::{BrowsePage, EntryRow, RestorePage},
    routes::backups::blocking,
    session::Admin,
};

#[derive(Deserialize)]
pub(crate) struct PathQuery {
    #[serde(default)]
    path: String,
}

/// Normalises a snapshot-relative path and refuses `..` and the like.
fn clean(path: &str) -> Result<String, WebError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(WebError::BadRequest("That path is not valid.".into()));
    }
    Ok(parts.join("/"))
}

pub(crate) async fn browse(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<PathQuery>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let path = clean(&q.path)?;
    let paths = state.jobs.paths().clone();
    let p = path.clone();
    let (snap, tree) = blocking(move || {
        let repo = paths.open()?;
        let snap = repo.snapshot(id)?;
        let tree = repo.tree_at(&snap, &p)?;
        Ok((snap, tree))
    })
    .await?;
    let base = format!("/admin/backups/{id}");
    let mut crumbs = vec![("snapshot".to_string(), base.clone())];
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        crumbs.push((
            part.to_string(),
            format!("{base}?path={}", percent(&so_far)),
        ));
    }
    let entries = tree
        .entries
        .iter()
        .map(|n| {
            let name = n.display_name();
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let (kind, size, href) = match &n.kind {
                NodeKind::Dir { .. } => (
                    "folder",
                    String::new(),
                    Some(format!("{base}?path={}", percent(&child))),
                ),
                NodeKind::File { size, .. } => (
                    "file",
                    bytes(*size),
                    Some(format!("{base}/file?path={}", percent(&child))),
                ),
                NodeKind::Hardlink { .. } => (
                    "file",
                    String::new(),
                    Some(format!("{base}/file?path={}", percent(&child))),
                ),
                NodeKind::Symlink { .. } => ("link", String::new(), None),
            };
            EntryRow {
                name,
                kind,
                size,
                when: when(n.mtime_ns.div_euclid(1_000_000_000)),
                href,
                path: child,
            }
        })
        .collect();
    let (jar, csrf) = issue(&state, jar)?;
    let page = BrowsePage {
        csrf,
        snapshot: id,
        when: when(snap.time),
        source: snap.source,
        crumbs,
        path_q: percent(&path),
        path,
        entries,
    };
    Ok((jar, render(&page)?).into_response())
}

/// A `Write` that feeds a response body through a bounded channel.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

/// Bytes gathered before each hand-over to the socket.
const SEND_AT: usize = 256 * 1024;

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND_AT {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(SEND_AT),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

/// Starts `produce` on a blocking thread and returns the body it writes.
fn streamed(
    produce: impl FnOnce(&mut BodyWriter) -> Result<(), BackupError> + Send + 'static,
) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut w = BodyWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(SEND_AT),
        };
        let result = produce(&mut w).and_then(|()| {
            w.flush().map_err(|e| BackupError::Io {
                path: "download".into(),
                source: e,
            })
        });
        if let Err(e) = result {
            log::warn!("download stopped: {e}");
            // Abort the body, so the browser reports a failed download
            // instead of saving a truncated file as if whole.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

pub(crate) async fn file(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<PathQuery>,
) -> Result<Response, WebError> {
    let path = clean(&q.path)?;
    let paths = state.jobs.paths().clone();
    let p = path.clone();
    // Look it up first, so a wrong path is a 404 page, not a broken download.
    let size = blocking(move || {
        let repo = paths.open()?;
        let snap = repo.snapshot(id)?;
        match repo.node_at(&snap, &p)?.kind {
            NodeKind::File { size, .. } => Ok(Some(size)),
            NodeKind::Hardlink { .. } => Ok(None),
            _ => Err(BackupError::NoSuchPath(p)),
        }
    })
    .await?;
    let name = path.rsplit('/').next().unwrap_or("file").to_string();
    let paths = state.jobs.paths().clone();
    let body = streamed(move |w| {
        let repo = paths.open()?;
        let snap = repo.snapshot(id)?;
        repo.read_file(&snap, &path, w).map(|_| ())
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, attachment(&name)),
        ],
        body,
    )
        .into_response();
    if let Some(size) = size {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(size));
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct ArchiveQuery {
    #[serde(default)]
    path: String,
    format: String,
}

pub(crate) async fn archive(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, WebError> {
    let path = clean(&q.path)?;
    let (format, ext, mime) = match q.format.as_str() {
        "tar" => (Archive::Tar, "tar", "application/x-tar"),
        "zip" => (Archive::Zip, "zip", "application/zip"),
        _ => return Err(WebError::BadRequest("Choose .tar or .zip.".into())),
    };
    let paths = state.jobs.paths().clone();
    let p = path.clone();
    let source = blocking(move || {
        let repo = paths.open()?;
        let snap = repo.snapshot(id)?;
        match repo.node_at(&snap, &p)?.kind {
            NodeKind::Dir { .. } => Ok(snap.source),
            _ => Err(BackupError::NoSuchPath(p)),
        }
    })
    .await?;
    let paths = state.jobs.paths().clone();
    let stem = match path.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => format!("{}-{id}", source_name(&source)),
    };
    let body = streamed(move |w| {
        let repo = paths.open()?;
        let snap = repo.snapshot(id)?;
        repo.export(&snap, &path, format, w)
    });
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                attachment(&format!("{stem}.{ext}")),
            ),
        ],
        body,
    )
        .into_response())
}

/// The last part of a backed-up folder's path, for download names.
fn source_name(source: &str) -> &str {
    source
        .rsplit('/')
        .find(|p| !p.is_empty())
        .unwrap_or("snapshot")
}

#[derive(Deserialize)]
pub(crate) struct RestoreForm {
    #[serde(default)]
    path: String,
    mode: String,
    #[serde(default)]
    target: String,
}

pub(crate) async fn start_restore(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RestoreForm>,
) -> Result<Response, WebError> {
    let path = clean(&form.path)?;
    let target = match form.mode.as_str() {
        "in_place" => None,
        "elsewhere" => {
            let t = PathBuf::from(form.target.trim());
            if !t.is_absolute() {
                return Err(WebError::BadRequest(
                    "Give the folder to restore into as a full path, starting with /.".into(),
                ));
            }
            if t.starts_with(state.data_dir.as_ref()) {
                return Err(WebError::BadRequest(
                    "Restoring into Hearth's own data folder is not allowed.".into(),
                ));
            }
            Some(t)
        }
        _ => return Err(WebError::BadRequest("Choose where to restore to.".into())),
    };
    let jobs = state.jobs.clone();
    let job = blocking(move || jobs.start_restore(id, &path, target)).await?;
    log::info!(
        "restore {} started: snapshot {id} {:?} into {}",
        job.id,
        job.path,
        job.target.display()
    );
    Ok(Redirect::to(&format!("/admin/restores/{}", job.id)).into_response())
}

/// A job's progress as (running, percent, text, errors, failure).
fn progress(job: &hearth_jobs::RestoreJob) -> (bool, u64, String, Vec<String>, Option<String>) {
    let (done, total) = job.bytes();
    let pct = (done * 100).checked_div(total).unwrap_or(100).min(100);
    match job.state() {
        hearth_jobs::RestoreState::Running => (
            true,
            pct,
            format!("{} of {} restored", bytes(done), bytes(total)),
            vec![],
            None,
        ),
        hearth_jobs::RestoreState::Done(r) => (
            false,
            100,
            format!(
                "Done: {} files, {} restored{}",
                r.files,
                bytes(r.bytes),
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(", {} could not be restored", r.errors.len())
                }
            ),
            r.errors.clone(),
            None,
        ),
        hearth_jobs::RestoreState::Failed(e) => {
            (false, pct, "The restore stopped.".into(), vec![], Some(e))
        }
    }
}

pub(crate) async fn restore_page(
    _admin: Admin,
    State(state): State<AppState>,
    Path(job): Path<u64>,
) -> Result<Response, WebError> {
    let job = state.jobs.restore(job).ok_or(WebError::NotFound)?;
    let (running, percent, done_text, errors, failed) = progress(&job);
    let page = RestorePage {
        id: job.id,
        what: if job.path.is_empty() {
            format!("Snapshot {}", job.snapshot)
        } else {
            format!("{} from snapshot {}", job.path, job.snapshot)
        },
        target: job.target.display().to_string(),
        running,
        percent,
        done_text,
        errors,
        failed,
        snapshot: job.snapshot,
    };
    Ok(render(&page)?.into_response())
}

#[derive(serde::Serialize)]
pub(crate) struct RestoreStatus {
    running: bool,
    percent: u64,
    text: String,
    errors: Vec<String>,
    failed: Option<String>,
}

pub(crate) async fn restore_status(
    _admin: Admin,
    State(state): State<AppState>,
    Path(job): Path<u64>,
) -> Result<Json<RestoreStatus>, WebError> {
    let job = state.jobs.restore(job).ok_or(WebError::NotFound)?;
    let (running, percent, text, errors, failed) = progress(&job);
    Ok(Json(RestoreStatus {
        running,
        percent,
        text,
        errors,
        failed,
    }))
}
