//! Admin → Board: the landing text, boards, and moderation of posts and
//! people. Each action is one form; each lands in the moderation log.

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use hearth_board::Landing;
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{CsrfForm, Empty, issue},
    error::render,
    format::when,
    pages::{BoardAdminPage, ModPost, render_post},
    session::Admin,
};

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
    let b = &state.board;
    let posts = b
        .recent(50)
        .await?
        .iter()
        .map(|p| ModPost {
            id: p.id,
            pinned: p.pinned,
            hidden: p.hidden,
            by_admin: p.by_admin,
            html_fragment: render_post(p, &[], "", false),
        })
        .collect();
    let log = b
        .modlog(100)
        .await?
        .into_iter()
        .map(|e| (when(e.at), e.action, e.target))
        .collect();
    let (jar, csrf) = issue(&state, jar)?;
    let page = BoardAdminPage {
        csrf,
        notice: q.done.map(|_| "Done.".to_string()),
        landing: b.landing().await?,
        boards: b.boards().await?,
        shared: b.shared_ids().await?,
        offered: state
            .mirror
            .board_offers()
            .into_iter()
            .map(|(name, peers)| (name, peers.join(", ")))
            .collect(),
        photo_budget_mib: match b.photo_budget_mib().await? {
            Some(mib) => mib,
            None => state.mirror.board_photo_budget() >> 20,
        },
        posts,
        bans: b.bans().await?,
        log,
    };
    Ok((jar, render(&page)?).into_response())
}

fn done() -> Response {
    Redirect::to("/admin/board?done=1").into_response()
}

#[derive(Deserialize)]
pub(crate) struct LandingForm {
    title: String,
    #[serde(default)]
    welcome: String,
}

pub(crate) async fn landing(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<LandingForm>,
) -> Result<Response, WebError> {
    state
        .board
        .set_landing(Landing {
            title: f.title,
            welcome: f.welcome,
        })
        .await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct NameForm {
    name: String,
}

pub(crate) async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    state.board.create_board(&f.name).await?;
    Ok(done())
}

pub(crate) async fn rename(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    state.board.rename_board(id, &f.name).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct MoveForm {
    delta: i64,
}

pub(crate) async fn move_board(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<MoveForm>,
) -> Result<Response, WebError> {
    state.board.move_board(id, f.delta.signum()).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct LockForm {
    locked: u8,
}

pub(crate) async fn lock(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<LockForm>,
) -> Result<Response, WebError> {
    state.board.set_locked(id, f.locked == 1).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct SlowForm {
    secs: u32,
}

pub(crate) async fn slow(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<SlowForm>,
) -> Result<Response, WebError> {
    state.board.set_slow(id, f.secs).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct OnForm {
    on: u8,
}

pub(crate) async fn pin(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<OnForm>,
) -> Result<Response, WebError> {
    state.board.pin(id, f.on == 1).await?;
    Ok(done())
}

pub(crate) async fn hide(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<OnForm>,
) -> Result<Response, WebError> {
    state.board.hide(id, f.on == 1).await?;
    Ok(done())
}

/// Shares a board with paired Hearths, or stops.
pub(crate) async fn share(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<OnForm>,
) -> Result<Response, WebError> {
    state.board.set_shared(id, f.on == 1).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct BudgetForm {
    mib: u64,
}

/// Sets how many MiB of shared posts' photos each peer may send a day.
pub(crate) async fn photo_budget(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<BudgetForm>,
) -> Result<Response, WebError> {
    state.board.set_photo_budget_mib(f.mib).await?;
    Ok(done())
}

/// Accepts a board a peer offers: creates it here (if needed), shared.
pub(crate) async fn accept(
    _admin: Admin,
    State(state): State<AppState>,
    CsrfForm(f): CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    state.board.accept_shared(&f.name).await?;
    Ok(done())
}

pub(crate) async fn delete(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.board.delete(id).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub(crate) struct BanForm {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn ban(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<BanForm>,
) -> Result<Response, WebError> {
    state.board.ban_author(id, &f.reason).await?;
    Ok(done())
}

pub(crate) async fn unban(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    state.board.unban(id).await?;
    Ok(done())
}
