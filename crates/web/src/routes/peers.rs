//! Admin → Peers: pairing by code (shown, or typed in, or scanned as a QR
//! code), confirming, quotas, mirroring and proof-of-storage on demand, and
//! restoring every snapshot from a peer after a disaster. The protocol and
//! its guarantees are in `hearth_mirror` and docs/mirror-protocol.md.

use axum::{
    Json,
    extract::{ConnectInfo, Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_mirror::{DeviceId, Peer, PeerState};
use serde::Deserialize;

use crate::{
    AppState, Peer as Client, WebError,
    csrf::{CsrfForm, Empty, issue},
    error::render,
    format::{bytes, percent},
    pages::{PeerRow, PeersPage},
    session::Admin,
};

#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    notice: Option<String>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    code: String,
}

const GB: f64 = 1_000_000_000.0;

fn row(state: &AppState, p: &Peer) -> PeerRow {
    let progress = state.mirror.progress(p.device);
    let status = if progress.running {
        "Mirroring…".to_string()
    } else if let Some(e) = &progress.last_error {
        format!("Problem: {e}")
    } else if let Some(e) = &p.last_error {
        format!("Problem: {e}")
    } else {
        match p.last_seen {
            Some(t) => format!("In touch; last contact {}", crate::format::when(t)),
            None => "Not in touch yet".into(),
        }
    };
    let status = match &progress.restore {
        Some(r) => format!("{status}. Restore: {r}"),
        None => status,
    };
    let total = progress.sent_bytes + progress.pending_bytes;
    PeerRow {
        id: p.device.to_hex(),
        name: p.name.clone(),
        short: p.device.short(),
        proposed: p.state == PeerState::Proposed,
        wants_replace: p.wants_replace,
        status,
        held: bytes(p.held_bytes),
        quota: bytes(p.quota),
        quota_gb: format!("{:.1}", p.quota as f64 / GB),
        sent: bytes(p.sent_bytes),
        pending: if progress.pending_bytes > 0 {
            format!("{} to go", bytes(progress.pending_bytes))
        } else {
            "up to date".into()
        },
        percent: (progress.sent_bytes * 100)
            .checked_div(total)
            .unwrap_or(100),
        proof: match &p.last_proof {
            None => "Not checked yet".into(),
            Some((at, checked, failed, detail)) => format!(
                "{}: {checked} packs checked, {failed} failed ({detail})",
                crate::format::when(*at)
            ),
        },
    }
}

async fn page(
    state: &AppState,
    jar: CookieJar,
    client: &Client,
    q: PageQuery,
    error: Option<String>,
) -> Result<Response, WebError> {
    let (jar, csrf) = issue(state, jar)?;
    let m = &state.mirror;
    let peers = m.peers().await?;
    let code = m.shown_code();
    let address = format!("{}:{}", host_of(client), m.port());
    let qr = match &code {
        Some(c) => qr_svg(&format!(
            "http://hearth.local/admin/peers/join?address={}&code={}",
            percent(&address),
            c.code
        )),
        None => String::new(),
    };
    let page = PeersPage {
        csrf,
        notice: q.notice,
        error,
        name: m.name().to_string(),
        short: m.device().short(),
        long: m.device().long(),
        code,
        address,
        qr,
        join_address: q.address,
        join_code: q.code,
        others: peers
            .iter()
            .filter(|p| p.state == PeerState::Confirmed)
            .map(|p| {
                (
                    p.device.to_hex(),
                    format!("{} ({})", p.name, p.device.short()),
                )
            })
            .collect(),
        nearby: nearby(state, &peers),
        nearby_off: state.discovery.why_off().map(str::to_string),
        peers: peers.iter().map(|p| row(state, p)).collect(),
    };
    let status = if page.error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, jar, render(&page)?).into_response())
}

/// Hearths announced on the LAN, except this one and those already paired.
fn nearby(state: &AppState, peers: &[Peer]) -> Vec<crate::pages::Nearby> {
    let mut known: Vec<String> = peers.iter().map(|p| p.device.to_hex()).collect();
    known.push(state.mirror.device().to_hex());
    state
        .discovery
        .found(&known)
        .into_iter()
        .filter_map(|f| {
            // The fingerprint is computed here, the way this Hearth shows
            // its own, from the ID the advert claims (pairing checks it).
            let short = DeviceId::from_hex(&f.id)?.short();
            Some(crate::pages::Nearby {
                link: format!("/admin/peers/join?address={}#join", percent(&f.address)),
                name: f.name,
                short,
                address: f.address,
            })
        })
        .collect()
}

/// Where this browser reached us: the address a peer on the same network
/// can use too.
fn host_of(client: &Client) -> String {
    match client.local.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    }
}

/// The QR code as inline SVG (allowed by the CSP: no script, no style).
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
        Err(e) => {
            log::error!("cannot make a QR code: {e}");
            String::new()
        }
    }
}

pub(crate) async fn show(
    _admin: Admin,
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<Client>,
    Query(q): Query<PageQuery>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    page(&state, jar, &client, q, None).await
}

pub(crate) async fn new_code(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.mirror.new_code()?;
    Ok(Redirect::to("/admin/peers#pair").into_response())
}

pub(crate) async fn cancel_code(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.mirror.cancel_code();
    Ok(Redirect::to("/admin/peers").into_response())
}

#[derive(Deserialize)]
pub(crate) struct JoinForm {
    address: String,
    code: String,
    #[serde(default)]
    replaces: Option<String>,
}

pub(crate) async fn join(
    _admin: Admin,
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<Client>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<JoinForm>,
) -> Result<Response, WebError> {
    let replaces = form.replaces.is_some();
    match state.mirror.join(&form.address, &form.code, replaces).await {
        Ok((name, id)) => Ok(Redirect::to(&format!(
            "/admin/peers?notice={}",
            percent(&format!(
                "Paired with {name} ({}). Confirm below once its admin sees {} for this Hearth.",
                id.short(),
                state.mirror.device().short()
            ))
        ))
        .into_response()),
        Err(hearth_mirror::MirrorError::Internal(m)) => Err(WebError::Internal(m)),
        Err(e) => {
            let q = PageQuery {
                notice: None,
                address: form.address,
                code: String::new(),
            };
            page(&state, jar, &client, q, Some(e.to_string())).await
        }
    }
}

fn device(hex: &str) -> Result<DeviceId, WebError> {
    DeviceId::from_hex(hex).ok_or(WebError::NotFound)
}

fn quota(gb: &str) -> Result<u64, WebError> {
    match gb.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1_000_000.0).contains(&v) => Ok((v * GB) as u64),
        _ => Err(WebError::BadRequest(
            "Give the space in gigabytes, e.g. 50 or 0.5.".into(),
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    quota_gb: String,
    #[serde(default)]
    replaces: String,
}

pub(crate) async fn confirm(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> Result<Response, WebError> {
    let replaces = match form.replaces.as_str() {
        "" => None,
        hex => Some(device(hex)?),
    };
    state
        .mirror
        .confirm(device(&id)?, quota(&form.quota_gb)?, replaces)
        .await?;
    Ok(Redirect::to("/admin/peers").into_response())
}

#[derive(Deserialize)]
pub(crate) struct QuotaForm {
    quota_gb: String,
}

pub(crate) async fn set_quota(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<QuotaForm>,
) -> Result<Response, WebError> {
    state
        .mirror
        .set_quota(device(&id)?, quota(&form.quota_gb)?)
        .await?;
    Ok(Redirect::to("/admin/peers").into_response())
}

pub(crate) async fn remove(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.mirror.remove(device(&id)?).await?;
    Ok(Redirect::to("/admin/peers").into_response())
}

pub(crate) async fn sync(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    device(&id)?;
    state.mirror.sync_now();
    Ok(Redirect::to("/admin/peers?notice=Mirroring%20started.").into_response())
}

/// Accepts a refused peer's board posts again (after its admin fixed it).
pub(crate) async fn board_retry(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.mirror.board_retry(device(&id)?);
    Ok(Redirect::to("/admin").into_response())
}

pub(crate) async fn check(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let notice = match state.mirror.prove(device(&id)?).await {
        Ok((checked, 0)) => format!("Checked {checked} packs: every copy is intact."),
        Ok((checked, failed)) => format!(
            "Checked {checked} packs: {failed} missing or damaged there; sending them again."
        ),
        Err(e) => format!("The check could not run: {e}"),
    };
    Ok(Redirect::to(&format!("/admin/peers?notice={}", percent(&notice))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct RestoreForm {
    passphrase: String,
}

/// Fetches every pack the peer keeps for us, unseals the key with the
/// passphrase and rebuilds the snapshot list, in the background.
pub(crate) async fn restore(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<RestoreForm>,
) -> Result<Response, WebError> {
    let peer = device(&id)?;
    let (mirror, paths) = (state.mirror.clone(), state.jobs.paths().clone());
    let jobs = state.jobs.clone();
    mirror.set_restore_note(peer, "fetching packs");
    tokio::spawn(async move {
        let note = match mirror.restore_from(peer).await {
            Err(e) => format!("failed: {e}"),
            Ok((packs, got)) => {
                let pass = form.passphrase;
                let rebuilt = tokio::task::spawn_blocking(move || {
                    let repo = hearth_backup::Repo::recover_key(
                        &paths.repo,
                        &paths.key,
                        &paths.db,
                        &pass,
                    )?;
                    repo.repair_index()
                })
                .await;
                match rebuilt {
                    Ok(Ok(r)) => {
                        jobs.reload();
                        format!(
                            "done: {packs} packs ({}) fetched, {} snapshots back",
                            bytes(got),
                            r.snapshots
                        )
                    }
                    Ok(Err(e)) => format!("packs fetched, but: {e}"),
                    Err(e) => format!("failed: {e}"),
                }
            }
        };
        log::info!("mirror: restore from {}: {note}", peer.short());
        mirror.set_restore_note(peer, &note);
    });
    Ok(Redirect::to("/admin/peers?notice=Restore%20started.").into_response())
}

/// Live figures for the page's progress bars.
pub(crate) async fn progress(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Response, WebError> {
    let peers = state.mirror.peers().await?;
    let out: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            let r = row(&state, p);
            serde_json::json!({
                "id": r.id, "status": r.status, "percent": r.percent,
                "pending": r.pending, "sent": r.sent, "proof": r.proof,
                "restore": state.mirror.progress(p.device).restore,
            })
        })
        .collect();
    Ok(Json(out).into_response())
}
