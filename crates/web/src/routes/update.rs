//! Admin → Update: upload a signed update file, watch it being checked,
//! read what it is, then install it (Hearth restarts into it) or cancel.
//!
//! The upload streams into the data folder's `update/` as `.upload-…`,
//! bounded by free space like the Files page's uploads. The response comes
//! as soon as it has arrived; the check (`Updates::stage`: signature,
//! version, space, every byte) runs on a blocking thread and reports through
//! the shared [`crate::update_job::UpdateJob`], which the page polls. The upload is deleted
//! once checked: a staged update lives in its slot.

use std::{
    io::BufReader,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json,
    extract::{Multipart, State, multipart::Field},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_update::{Accept, Progress, UpdateError};
use tokio::io::AsyncWriteExt;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, Empty, forged, issue, verify_token},
    error::render,
    format::when,
    pages::{LastUpdate, StagedUpdate, UpdatePage},
    session::Admin,
    update_job::{Phase, Snapshot, percent},
};

/// Temporary uploads start with this, so a leftover is recognised.
const UPLOAD_PREFIX: &str = ".upload-";

/// Room kept beyond the upload and its unpacked copy.
const MARGIN: u64 = 16 * 1024 * 1024;

/// How long the "Restarting…" page has to reach the browser before the
/// service stops.
const RESTART_DELAY: Duration = Duration::from_millis(300);

const BUSY: &str =
    "An update is being uploaded, checked or installed right now. Wait for it to finish.";

/// The Update page.
pub(crate) async fn page(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    show(&state, jar, StatusCode::OK, None).await
}

async fn show(
    state: &AppState,
    jar: CookieJar,
    code: StatusCode,
    error: Option<String>,
) -> Result<Response, WebError> {
    // Reads the links and hashes the staged slot again: blocking work.
    let updates = state.updates.clone();
    let status = tokio::task::spawn_blocking(move || updates.status())
        .await
        .map_err(|e| WebError::Internal(format!("update status: {e}")))?;
    let job = state.update_job.snapshot();
    let phase = state.update_job.phase();
    let (jar, csrf) = issue(state, jar)?;
    let page = UpdatePage {
        csrf,
        running: status.running,
        error: error.or(match phase {
            Phase::Refused(ref why) => Some(why.clone()),
            _ => None,
        }),
        last: status.last.map(|o| LastUpdate {
            rolled_back: o.rolled_back(),
            text: if o.rolled_back() {
                format!(
                    "Hearth {} was rolled back to {}: {}",
                    o.version, o.from_version, o.reason
                )
            } else {
                format!("Hearth {} was installed over {}", o.version, o.from_version)
            },
            when: when(o.at),
        }),
        staged: status.staged.map(|s| StagedUpdate {
            version: s.manifest.version,
            signer: s.signer.label(),
            notes: s.manifest.notes.trim().to_string(),
        }),
        busy: matches!(
            phase,
            Phase::Uploading | Phase::Checking | Phase::Installing | Phase::Cancelling
        )
        .then_some(job.message),
        percent: percent(job.done, job.total),
        restarting: match phase {
            Phase::Restarting(v) => Some(v),
            _ => None,
        },
        extra_key: state.updates.keys().has_extra(),
    };
    Ok((code, jar, render(&page)?).into_response())
}

/// The job, for the page's script: `{phase, done, total, message, version}`.
pub(crate) async fn status(_admin: Admin, State(state): State<AppState>) -> Json<Snapshot> {
    Json(state.update_job.snapshot())
}

/// Receives an update file and starts its check. A scripted upload sends
/// the token in a header and gets 204; a plain form sends it as its first
/// field and is sent back to the page.
pub(crate) async fn upload(
    _admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, WebError> {
    let scripted = crate::csrf::header_token(&state, &headers)?;
    let mut checked = scripted;
    let length = crate::csrf::content_length(&headers);
    if let Some(len) = length {
        // The upload, then the program unpacked from it into a slot.
        let need = len.saturating_mul(2).saturating_add(MARGIN);
        let free = hearth_system::files::free_bytes(&state.data_dir);
        if free < need {
            return Err(refusal(&UpdateError::NoSpace {
                need_mb: need.div_ceil(1_000_000),
                free_mb: free / 1_000_000,
            }));
        }
    }
    let mut upload: Option<Upload> = None;
    let mut older = false;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("csrf") if !checked => {
                let token = field.text().await.map_err(malformed)?;
                verify_token(&state, &headers, &token)?;
                checked = true;
            }
            Some("file") if checked => {
                if field.file_name().is_none_or(str::is_empty) {
                    continue; // an empty file input
                }
                if upload.is_some() {
                    return Err(WebError::BadRequest(
                        "Upload one update file at a time.".into(),
                    ));
                }
                let mut started = Upload::begin(&state, length.unwrap_or(0))?;
                started.receive(field).await?;
                upload = Some(started);
            }
            // A file before the token: refuse before storing anything.
            Some("file") => return Err(forged()),
            Some("allow_older") => older = !field.text().await.map_err(malformed)?.is_empty(),
            _ => {}
        }
    }
    let Some(upload) = upload else {
        return Err(WebError::BadRequest(
            "Choose an update file (.update) to upload.".into(),
        ));
    };
    upload.check(Accept { older });
    if scripted {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(Redirect::to("/admin/update").into_response())
    }
}

fn malformed(e: axum::extract::multipart::MultipartError) -> WebError {
    log::warn!("update upload refused: {e}");
    WebError::BadRequest("The upload was malformed or interrupted. Try again.".into())
}

/// An upload in progress. Dropped before [`Upload::check`] (an error, or
/// the browser went away), it deletes its file and ends the job.
struct Upload {
    state: AppState,
    serial: u64,
    progress: Arc<Progress>,
    tmp: PathBuf,
    received: u64,
    armed: bool,
}

impl Upload {
    fn begin(state: &AppState, expected: u64) -> Result<Upload, WebError> {
        let (serial, progress) = state
            .update_job
            .begin(Phase::Uploading)
            .map_err(|_| WebError::Conflict(BUSY.into()))?;
        progress.total.store(expected, Ordering::Relaxed);
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| WebError::Internal(e.to_string()))?;
        let name = format!("{UPLOAD_PREFIX}{}", hex::encode(rnd));
        Ok(Upload {
            state: state.clone(),
            serial,
            progress,
            tmp: update_dir(state).join(name),
            received: 0,
            armed: true,
        })
    }

    /// Streams the file field to disk, counting it for the progress poll.
    async fn receive(&mut self, mut field: Field<'_>) -> Result<(), WebError> {
        tokio::fs::create_dir_all(update_dir(&self.state))
            .await
            .map_err(saving)?;
        let file = tokio::fs::File::create(&self.tmp).await.map_err(saving)?;
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            file.write_all(&chunk).await.map_err(saving)?;
            self.received += chunk.len() as u64;
            self.progress.done.store(self.received, Ordering::Relaxed);
        }
        file.flush().await.map_err(saving)?;
        Ok(())
    }

    /// Hands the file to a blocking check, which stages it or records why
    /// not, then deletes it.
    fn check(mut self, accept: Accept) {
        self.armed = false;
        let (state, serial, tmp) = (self.state.clone(), self.serial, self.tmp.clone());
        let progress = self.progress.clone();
        progress.done.store(0, Ordering::Relaxed);
        progress.total.store(self.received, Ordering::Relaxed);
        state.update_job.set(serial, Phase::Checking);
        let work = {
            let state = state.clone();
            move || {
                let result = std::fs::File::open(&tmp)
                    .map_err(|source| UpdateError::Io {
                        what: "open",
                        path: tmp.clone(),
                        source,
                    })
                    .and_then(|f| {
                        let reader = BufReader::with_capacity(1 << 20, f);
                        state.updates.stage(reader, accept, &progress)
                    });
                remove_uploads(&update_dir(&state));
                match result {
                    Ok(staged) => Phase::Staged(staged.manifest.version),
                    Err(e) => {
                        log_refusal(&e);
                        Phase::Refused(sentence(&e))
                    }
                }
            }
        };
        tokio::spawn(async move {
            let phase = tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
                log::error!("the update check stopped: {e}");
                Phase::Refused(
                    "Something went wrong inside this Hearth while checking the update. \
                     The details are in its log."
                        .into(),
                )
            });
            state.update_job.set(serial, phase);
        });
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.state
            .update_job
            .abandon(self.serial, &Phase::Uploading);
        let tmp = self.tmp.clone();
        let remove = move || {
            let _ = std::fs::remove_file(tmp);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

fn update_dir(state: &AppState) -> PathBuf {
    state.data_dir.join("update")
}

/// Deletes every temporary upload: the one just checked and any a crash
/// left behind (only one job runs at a time).
fn remove_uploads(dir: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in list.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(UPLOAD_PREFIX)
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            log::warn!("cannot remove {}: {e}", entry.path().display());
        }
    }
}

fn saving(e: std::io::Error) -> WebError {
    if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        refusal(&UpdateError::DiskFull)
    } else {
        WebError::Internal(format!("saving an update upload: {e}"))
    }
}

/// An update error as the page words it: its sentence, capitalised.
fn sentence(e: &UpdateError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn log_refusal(e: &UpdateError) {
    if e.is_bad_input() {
        log::warn!("update refused: {e}");
    } else {
        log::error!("update failed: {e}");
    }
}

fn refusal(e: &UpdateError) -> WebError {
    log_refusal(e);
    if e.is_bad_input() {
        WebError::BadRequest(sentence(e))
    } else {
        WebError::Internal(e.to_string())
    }
}

/// "Install": switches to the staged update and restarts into it.
pub(crate) async fn install(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let Ok((serial, _)) = state.update_job.begin(Phase::Installing) else {
        return show(&state, jar, StatusCode::CONFLICT, Some(BUSY.into())).await;
    };
    let updates = state.updates.clone();
    let switched = tokio::task::spawn_blocking(move || updates.switch()).await;
    match switched {
        Ok(Ok(staged)) => {
            let version = staged.manifest.version;
            log::info!("{version} installed from the Update page; restarting into it");
            state
                .update_job
                .set(serial, Phase::Restarting(version.clone()));
            // After this page has gone out: the stop drains requests, but
            // accepts no new ones.
            let restart = state.restart.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RESTART_DELAY).await;
                restart.notify_one();
            });
            show(&state, jar, StatusCode::OK, None).await
        }
        Ok(Err(e)) => {
            state.update_job.set(serial, Phase::Idle);
            log_refusal(&e);
            let code = if e.is_bad_input() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            show(&state, jar, code, Some(sentence(&e))).await
        }
        Err(e) => {
            state.update_job.set(serial, Phase::Idle);
            Err(WebError::Internal(format!("switching: {e}")))
        }
    }
}

/// "Cancel": forgets the staged update.
pub(crate) async fn cancel(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let Ok((serial, _)) = state.update_job.begin(Phase::Cancelling) else {
        return show(&state, jar, StatusCode::CONFLICT, Some(BUSY.into())).await;
    };
    let updates = state.updates.clone();
    let result = tokio::task::spawn_blocking(move || updates.unstage()).await;
    state.update_job.set(serial, Phase::Idle);
    match result {
        Ok(Ok(())) => Ok(Redirect::to("/admin/update").into_response()),
        Ok(Err(e)) => {
            log_refusal(&e);
            show(
                &state,
                jar,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(sentence(&e)),
            )
            .await
        }
        Err(e) => Err(WebError::Internal(format!("cancelling: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_start_with_a_capital_and_end_with_a_stop() {
        assert_eq!(
            sentence(&UpdateError::NothingStaged),
            "No update is staged; upload one first."
        );
        assert_eq!(
            sentence(&UpdateError::DiskFull),
            "The disk filled up while writing the update; nothing was changed."
        );
    }
}
