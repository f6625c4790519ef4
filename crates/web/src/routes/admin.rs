//! The admin panel: the dashboard, the clock, and fetching an update a
//! paired peer offers.

use std::time::Duration;

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_mirror::{DeviceId, MirrorError};
use hearth_system::{ClockError, Health};
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::Empty,
    csrf::{CsrfForm, issue},
    error::render,
    format::{bytes, human_duration},
    pages::DashboardPage,
    session::Admin,
};

/// How far behind the browser the device must be before Hearth offers to
/// set its clock, and before a submitted time is applied. Smaller gaps are
/// page-load latency and ordinary drift, not a Pi that lost its time.
pub const CLOCK_BEHIND_MS: i64 = 2 * 60 * 1000;

#[derive(Deserialize)]
pub(crate) struct Notice {
    clock: Option<String>,
}

pub(crate) async fn dashboard(
    _admin: Admin,
    State(state): State<AppState>,
    Query(notice): Query<Notice>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let dir = state.data_dir.clone();
    let db = state.jobs.paths().db.clone();
    let (health, backups) = tokio::task::spawn_blocking(move || {
        let backups = hearth_backup::summary(&db);
        (Health::read(&dir), backups)
    })
    .await
    .map_err(|e| WebError::Internal(format!("health reading: {e}")))?;
    let status = state.jobs.status();
    let (backup_state, backup_detail) = match backups {
        Ok(s) => {
            let (headline, detail) = backup_card(&s);
            match (status.running, status.last_error) {
                (Some(what), _) => (what, detail),
                (None, Some(e)) => (format!("Failed: {e}"), detail),
                (None, None) => (headline, detail),
            }
        }
        Err(e) => {
            log::error!("reading the backup catalogue: {e}");
            (
                "Unknown".into(),
                "The backup catalogue could not be read; see the log.".into(),
            )
        }
    };
    let (mirror_state, mirror_detail) = mirror_card(&state).await;
    let board_links = board_links(&state).await;
    // What peers offer, as last asked; the next load shows a fresh answer.
    let update_offers = state.mirror.update_offers();
    state.mirror.refresh_update_offers();
    let (jar, csrf) = issue(&state, jar)?;
    let unknown = || "unknown".to_string();
    let page = DashboardPage {
        csrf,
        version: state.version,
        hostname: health.hostname,
        uptime: health.uptime.map(human_duration).unwrap_or_else(unknown),
        hearth_uptime: human_duration(state.started.elapsed()),
        load: health
            .load
            .map(|[a, b, c]| format!("{a:.2} · {b:.2} · {c:.2}"))
            .unwrap_or_else(unknown),
        memory: health
            .memory
            .map(|m| format!("{} used of {}", bytes(m.used()), bytes(m.total)))
            .unwrap_or_else(unknown),
        temperature: health.temperature_c.map(|t| format!("{t:.1} °C")),
        disk: health
            .disk
            .map(|d| {
                format!(
                    "{} used of {}, {} free",
                    bytes(d.used()),
                    bytes(d.total),
                    bytes(d.available)
                )
            })
            .unwrap_or_else(unknown),
        disk_percent: health.disk.map(|d| d.percent()).unwrap_or(0),
        clock: httpdate::fmt_http_date(state.clock.now()),
        now_ms: state.clock.now_ms(),
        backup_state,
        backup_detail,
        backup_target: super::backups::target_line(&state).await,
        mirror_state,
        mirror_detail,
        board_links,
        update_offers,
        notice: match notice.clock.as_deref() {
            Some("set") => Some("The clock was set from your browser.".into()),
            Some("ok") => Some("The clock was already right; nothing changed.".into()),
            _ => None,
        },
    };
    Ok((jar, render(&page)?).into_response())
}

/// Shared boards per confirmed peer, when any board is shared: posts in
/// and out today, the last exchange, and a refusal if there is one.
async fn board_links(state: &AppState) -> Vec<crate::pages::BoardLinkRow> {
    if state
        .board
        .shared_ids()
        .await
        .map(|s| s.is_empty())
        .unwrap_or(true)
    {
        return vec![];
    }
    let peers = state.mirror.peers().await.unwrap_or_default();
    peers
        .iter()
        .filter(|p| p.state == hearth_mirror::PeerState::Confirmed)
        .map(|p| {
            let l = state.mirror.board_link(p.device);
            crate::pages::BoardLinkRow {
                peer: p.device.to_hex(),
                name: p.name.clone(),
                in_today: l.in_today,
                out_today: l.out_today,
                photos_dropped: l.photos_dropped_today,
                last: l
                    .last_exchange
                    .map(crate::format::when)
                    .unwrap_or_else(|| "never".into()),
                refused: l.refused,
            }
        })
        .collect()
}

/// Peers at a glance: how many, and whether the last proofs of storage
/// found every copy intact.
async fn mirror_card(state: &AppState) -> (String, String) {
    let peers = match state.mirror.peers().await {
        Ok(p) => p,
        Err(e) => {
            log::error!("reading peers: {e}");
            return (
                "Unknown".into(),
                "The peer list could not be read; see the log.".into(),
            );
        }
    };
    let confirmed: Vec<_> = peers
        .iter()
        .filter(|p| p.state == hearth_mirror::PeerState::Confirmed)
        .collect();
    if confirmed.is_empty() {
        return (
            "No peer".into(),
            "Pair a second Hearth to keep a copy of your backups elsewhere.".into(),
        );
    }
    let damaged: Vec<String> = confirmed
        .iter()
        .filter(|p| {
            p.last_proof
                .as_ref()
                .is_some_and(|(_, _, failed, _)| *failed > 0)
        })
        .map(|p| p.name.clone())
        .collect();
    let headline = format!(
        "{} peer{}",
        confirmed.len(),
        if confirmed.len() == 1 { "" } else { "s" }
    );
    if damaged.is_empty() {
        let sent: u64 = confirmed.iter().map(|p| p.sent_bytes).sum();
        (
            headline,
            format!(
                "{} of our backups kept there; last checks found every copy intact.",
                bytes(sent)
            ),
        )
    } else {
        (
            headline,
            format!(
                "The last check found missing or damaged copies at {}; they are being sent again.",
                damaged.join(", ")
            ),
        )
    }
}

#[derive(Deserialize)]
pub(crate) struct ClockForm {
    /// The browser's time, in milliseconds since the Unix epoch.
    browser_ms: i64,
}

/// Sets the device clock from the admin's browser, but only forward and only
/// when clearly behind: a browser with a wrong clock must not drag a correct
/// device into the past.
pub(crate) async fn set_clock(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<ClockForm>,
) -> Result<Response, WebError> {
    let now = state.clock.now_ms();
    if form.browser_ms - now < CLOCK_BEHIND_MS {
        return Ok(Redirect::to("/admin?clock=ok").into_response());
    }
    match state.clock.set(form.browser_ms) {
        Ok(()) => {
            log::warn!(
                "clock moved forward by {}s from the admin's browser",
                (form.browser_ms - now) / 1000
            );
            Ok(Redirect::to("/admin?clock=set").into_response())
        }
        Err(ClockError::NotPermitted) => Err(WebError::Forbidden(
            "This Hearth is not allowed to set its clock. Check that hearth.service grants CAP_SYS_TIME."
                .into(),
        )),
        Err(ClockError::Invalid) => Err(WebError::BadRequest("That time is not valid.".into())),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}

/// "Install it?" on a peer's offer: fetches the update over the peer
/// channel and stages it (every byte checked with this Hearth's keys), then
/// shows the Update page with its Install button. A refusal is shown as its
/// sentence, and nothing is staged.
pub(crate) async fn update_from_peer(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let peer = DeviceId::from_hex(&id).ok_or(WebError::NotFound)?;
    match state.mirror.fetch_update(peer, &state.updates).await {
        Ok(_) => Ok(Redirect::to("/admin/update").into_response()),
        Err(MirrorError::Internal(cause)) => Err(WebError::Internal(cause)),
        Err(MirrorError::Update(e)) if !e.is_bad_input() => Err(WebError::Internal(e.to_string())),
        Err(e) => Err(WebError::BadRequest(format!(
            "The update was not staged: {e}"
        ))),
    }
}

/// Unknown admin URLs still demand an admin first, so a stranger learns
/// nothing about which admin pages exist.
pub(crate) async fn not_found(_admin: Admin) -> WebError {
    WebError::NotFound
}

/// The dashboard's backup headline and detail line.
fn backup_card(s: &hearth_backup::Summary) -> (String, String) {
    match &s.last {
        None => (
            "No backups yet".into(),
            "Set them up on the Backups page.".into(),
        ),
        Some((time, source, files, added)) => {
            let when = std::time::UNIX_EPOCH + Duration::from_secs((*time).max(0) as u64);
            (
                format!("Last: {}", httpdate::fmt_http_date(when)),
                format!(
                    "{source}: {files} files, {} added · {} snapshots · repository {}",
                    bytes(*added),
                    s.snapshots,
                    bytes(s.repository_bytes)
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::format::{bytes, human_duration};
    use std::time::Duration;

    #[test]
    fn formats_for_people() {
        assert_eq!(human_duration(Duration::from_secs(59)), "0 min");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 3600 + 120)),
            "3 h 2 min"
        );
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 5 * 3600)),
            "2 d 5 h"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
