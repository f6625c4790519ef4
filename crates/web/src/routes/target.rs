//! Admin → Backups → Where backups go: the S3 target (docs/scale-out.md).
//!
//! "Test connection" tests what is typed without saving it; "Save" tests
//! again and saves only settings that work. The secret key is written to
//! its 0600 file and never put back into a page: a form shown again after
//! a test asks for it anew.

use askama::Template;
use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_backup::remote::{self, Client, Target, TargetStatus};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, Empty, issue},
    error::render,
    format::{bytes, when},
    routes::backups::{blocking, ever},
    session::Admin,
};

#[derive(Template)]
#[template(path = "admin/target.html")]
pub(crate) struct TargetPage {
    pub csrf: String,
    pub notice: Option<String>,
    /// The outcome of "Test connection": (worked, sentence).
    pub test: Option<(bool, String)>,
    /// The saved target and its upload state.
    pub status: Option<StatusView>,
    /// What the form shows: the saved settings, or what was just typed.
    pub form: Target,
}

/// The saved target, worded for the page.
pub(crate) struct StatusView {
    pub s: TargetStatus,
    pub stored: String,
    pub waiting: String,
    pub last_upload: String,
    pub last_check: String,
    /// "Failing since …: reason", if it is.
    pub failing: Option<String>,
    /// Live progress, or the retry countdown.
    pub activity: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Notice {
    done: Option<String>,
}

pub(crate) async fn page(
    _admin: Admin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let notice = q.done.as_deref().and_then(|d| match d {
        "saved" => Some("S3 target saved; the connection was tested. Uploads start now."),
        "cleared" => Some("The S3 target is forgotten here. The bucket was left as it is."),
        "uploading" => Some("Uploading what the target does not have yet."),
        _ => None,
    });
    show(&state, jar, notice.map(str::to_string), None, None).await
}

async fn show(
    state: &AppState,
    jar: CookieJar,
    notice: Option<String>,
    test: Option<(bool, String)>,
    typed: Option<Target>,
) -> Result<Response, WebError> {
    let db = state.jobs.paths().db.clone();
    let status = blocking(move || remote::status(&db)).await?;
    let up = state.jobs.upload_state();
    let saved = status.as_ref().map(|s| Target {
        endpoint: s.endpoint.clone(),
        region: s.region.clone(),
        bucket: s.bucket.clone(),
        access_key: s.access_key.clone(),
        ca: s.ca.clone(),
    });
    let form = typed.or(saved).unwrap_or_else(|| Target {
        endpoint: String::new(),
        region: remote::DEFAULT_REGION.into(),
        bucket: String::new(),
        access_key: String::new(),
        ca: String::new(),
    });
    let status = status.map(|s| StatusView {
        stored: format!("{} packs, {}", s.packs_stored, bytes(s.bytes_stored)),
        waiting: format!("{} packs, {}", s.packs_waiting, bytes(s.bytes_waiting)),
        last_upload: ever(s.last_upload),
        last_check: ever(s.last_check),
        failing: (s.failing_since != 0)
            .then(|| format!("Failing since {}: {}", when(s.failing_since), s.last_error)),
        activity: match (up.running, up.retry_in) {
            (Some(p), _) => Some(format!(
                "Uploading: {} of {} packs, {} of {}",
                p.packs_done,
                p.packs_total,
                bytes(p.bytes_done),
                bytes(p.bytes_total)
            )),
            (None, Some(secs)) => Some(format!("Trying again in {secs} s.")),
            _ => None,
        },
        s,
    });
    let (jar, csrf) = issue(state, jar)?;
    let page = TargetPage {
        csrf,
        notice,
        test,
        status,
        form,
    };
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub(crate) struct TargetForm {
    endpoint: String,
    region: String,
    bucket: String,
    access_key: String,
    secret: String,
    /// Optional: absent from a form that predates it.
    #[serde(default)]
    ca: String,
}

impl TargetForm {
    fn split(self) -> (Target, String) {
        (
            Target {
                endpoint: self.endpoint.trim().to_string(),
                region: self.region.trim().to_string(),
                bucket: self.bucket.trim().to_string(),
                access_key: self.access_key.trim().to_string(),
                ca: self.ca.trim().to_string(),
            },
            self.secret.trim().to_string(),
        )
    }
}

/// "Test connection": tries what was typed, saves nothing.
pub(crate) async fn test(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<TargetForm>,
) -> Result<Response, WebError> {
    let (target, secret) = form.split();
    let t = target.clone();
    let outcome = tokio::task::spawn_blocking(move || Client::new(&t, &secret)?.test())
        .await
        .map_err(|e| WebError::Internal(format!("connection test: {e}")))?;
    let test = match outcome {
        Ok(()) => (
            true,
            format!(
                "Connection works: a test object was written to bucket {}, read back and deleted.",
                target.bucket
            ),
        ),
        Err(e) => (false, format!("Connection failed: {e}.")),
    };
    show(&state, jar, None, Some(test), Some(target)).await
}

/// "Save": tests, then stores the settings (and only if the test passed).
pub(crate) async fn save(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<TargetForm>,
) -> Result<Response, WebError> {
    let (target, secret) = form.split();
    let paths = state.jobs.paths().clone();
    let t = target.clone();
    let saved = tokio::task::spawn_blocking(move || {
        remote::set_target(&paths.db, &paths.s3_secret, &t, &secret)
    })
    .await
    .map_err(|e| WebError::Internal(format!("saving the target: {e}")))?;
    match saved {
        Ok(()) => {
            log::info!(
                "S3 target set: bucket {} at {}",
                target.bucket,
                target.endpoint
            );
            state.jobs.upload_now();
            Ok(Redirect::to("/admin/backups/target?done=saved").into_response())
        }
        Err(e) => {
            let test = (false, format!("Not saved: {e}."));
            show(&state, jar, None, Some(test), Some(target)).await
        }
    }
}

pub(crate) async fn upload_now(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.jobs.upload_now();
    Ok(Redirect::to("/admin/backups/target?done=uploading").into_response())
}

pub(crate) async fn clear(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let paths = state.jobs.paths().clone();
    blocking(move || remote::clear_target(&paths.db, &paths.s3_secret)).await?;
    log::info!("S3 target forgotten");
    Ok(Redirect::to("/admin/backups/target?done=cleared").into_response())
}

#[derive(Deserialize)]
pub(crate) struct RecoverForm {
    passphrase: String,
}

/// Disaster recovery from the admin page, on a Hearth without a working
/// repository: the S3 target's repository is downloaded, its key unsealed
/// with the recovery passphrase, and the index rebuilt from the packs (what
/// `hearth backup repair-index --recover-key --from s3` does). It runs
/// while the browser waits: the command line's same steps take 3-4 s for
/// the 1 GiB benchmark set on the development VM (`benches/s3.sh`). A
/// wrong passphrase stops the download early and leaves what came in place,
/// so trying again fetches nothing twice.
pub(crate) async fn recover(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<RecoverForm>,
) -> Result<Response, WebError> {
    let paths = state.jobs.paths().clone();
    let done = tokio::task::spawn_blocking(move || -> Result<(), String> {
        if paths.open().is_ok() {
            return Err("This Hearth already has a working backup repository.".into());
        }
        let client = remote::connect(&paths.db, &paths.s3_secret)
            .map_err(|e| e.to_string())?
            .ok_or("Set the S3 target first, under Where backups go.")?;
        remote::recover(
            &client,
            &paths.repo,
            &paths.key,
            &paths.db,
            None,
            &form.passphrase,
        )
        .map_err(|e| match e {
            remote::RemoteError::Backup(hearth_backup::BackupError::WrongPassphrase(_)) => {
                "The recovery passphrase is not right.".to_string()
            }
            other => other.to_string(),
        })?;
        Ok(())
    })
    .await
    .map_err(|e| WebError::Internal(format!("recovery: {e}")))?;
    match done {
        Ok(()) => {
            log::info!("backups recovered from the S3 target");
            state.jobs.reload();
            Ok(Redirect::to("/admin/backups?done=recovered").into_response())
        }
        Err(why) => Err(WebError::BadRequest(format!(
            "Nothing was recovered: {why}"
        ))),
    }
}

/// "Fetch what is missing or damaged here": every pack here is checked
/// against its name, and those missing or damaged are fetched from the
/// bucket's copies, then the index is rebuilt (what `hearth backup
/// repair-index --from s3` does, with the device key). It runs while the
/// browser waits: it reads each pack here once, about as long as a
/// `verify --read-data` without the decryption.
pub(crate) async fn heal(
    _admin: Admin,
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let paths = state.jobs.paths().clone();
    let done = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let repo = paths.open().map_err(|e| e.to_string())?;
        let client = remote::connect(&paths.db, &paths.s3_secret)
            .map_err(|e| e.to_string())?
            .ok_or("no S3 target is set")?;
        let (heal, repair) = repo.heal_from(&client).map_err(|e| e.to_string())?;
        Ok(heal_sentence(&heal, &repair))
    })
    .await
    .map_err(|e| WebError::Internal(format!("fetching from the S3 target: {e}")))?;
    let notice = match done {
        Ok(sentence) => {
            log::info!("heal from the S3 target: {sentence}");
            state.jobs.reload();
            sentence
        }
        Err(why) => format!("The fetch from the S3 target stopped: {why}."),
    };
    show(&state, jar, Some(notice), None, None).await
}

/// What a heal did, in one or two sentences for the page.
fn heal_sentence(heal: &remote::HealReport, repair: &hearth_backup::RepairReport) -> String {
    let mut s = if heal.missing.is_empty() && heal.damaged.is_empty() {
        format!(
            "All {} packs here are sound; nothing was fetched.",
            heal.sound
        )
    } else {
        format!(
            "Fetched from the bucket: {} packs missing here and {} damaged here; the index was rebuilt.",
            heal.missing.len(),
            heal.damaged.len()
        )
    };
    let mut unusable: Vec<&str> = repair.damaged.iter().map(|(n, _)| n.as_str()).collect();
    for (name, _) in &heal.lost {
        if !unusable.contains(&name.as_str()) {
            unusable.push(name);
        }
    }
    if !unusable.is_empty() {
        s.push_str(&format!(
            " {} packs are whole neither here nor in the bucket: {}.",
            unusable.len(),
            unusable.join(", ")
        ));
    }
    s
}
