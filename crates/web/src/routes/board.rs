//! The guest side of the board: the landing page, boards, threads, names,
//! posting, search, photos and the live event stream.
//!
//! Everything works without JavaScript (forms post, then redirect back);
//! the script adds live updates over server-sent events and posting
//! without a reload.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Multipart, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{
        Html, IntoResponse, Redirect, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use futures_util::Stream;
use hearth_board::{Event, NewPost, photo};
use serde::Deserialize;

use crate::{
    AppState, Peer, WebError,
    csrf::{CsrfForm, issue, verify_token},
    error::render,
    page_cache::Viewer,
    pages::{LandingPage, SearchPage, ThreadPage, render_post},
    session,
};

/// The guest cookie: a random id naming a row in `board_guests`.
pub const GUEST_COOKIE: &str = "hearth_guest";

/// This browser's guest id and nickname, if it chose one.
async fn guest(state: &AppState, jar: &CookieJar) -> Result<Option<hearth_board::Guest>, WebError> {
    match jar.get(GUEST_COOKIE) {
        Some(c) => Ok(state.board.guest(c.value()).await?),
        None => Ok(None),
    }
}

pub(crate) async fn landing(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let landing = state.board.landing().await?;
    let boards = state.board.boards().await?;
    let pinned = state
        .board
        .pinned()
        .await?
        .iter()
        .map(|p| render_post(p, &[], "", false))
        .collect();
    let nickname = guest(&state, &jar).await?.map(|g| g.nickname);
    let (jar, csrf) = issue(&state, jar)?;
    let page = LandingPage {
        hostname: state.hostname.to_string(),
        csrf,
        landing,
        boards,
        pinned,
        nickname,
        back: "/".into(),
    };
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    page: usize,
}

pub(crate) async fn board_page(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let nickname = guest(&state, &jar).await?.map(|g| g.nickname);
    let viewer = if session::is_admin(&state, &jar).await {
        Viewer::Admin
    } else if nickname.is_some() {
        Viewer::Named
    } else {
        Viewer::Anonymous
    };
    let mut escaped = String::new();
    hearth_board::text::escape(nickname.as_deref().unwrap_or(""), &mut escaped);
    let (jar, csrf) = issue(&state, jar)?;
    let page = state
        .pages
        .board_page(
            &state.board,
            id,
            q.page.min(10_000),
            viewer,
            &csrf,
            &escaped,
        )
        .await?;
    Ok((jar, Html(page)).into_response())
}

pub(crate) async fn thread_page(
    State(state): State<AppState>,
    Path((board_id, id)): Path<(i64, i64)>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let board = state.board.board(board_id).await?;
    let last_event = state.board.last_event_id().await?;
    let thread = state.board.thread(id, false).await?;
    if thread.post.board_id != board_id {
        return Err(WebError::NotFound);
    }
    let (jar, csrf) = issue(&state, jar)?;
    let page = ThreadPage {
        thread: render_post(&thread.post, &thread.replies, &csrf, true),
        csrf,
        board,
        last_event,
    };
    Ok((jar, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub(crate) struct NicknameForm {
    nickname: String,
    #[serde(default)]
    back: String,
}

/// Only our own pages are places to go back to.
fn safe_back(back: &str) -> &str {
    if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        back
    } else {
        "/"
    }
}

pub(crate) async fn set_nickname(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<NicknameForm>,
) -> Result<Response, WebError> {
    let current = jar.get(GUEST_COOKIE).map(|c| c.value().to_string());
    let guest = state.board.set_nickname(current, &form.nickname).await?;
    let cookie = Cookie::build((GUEST_COOKIE, guest.id))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .max_age(cookie::time::Duration::days(365))
        .build();
    Ok((jar.add(cookie), Redirect::to(safe_back(&form.back))).into_response())
}

/// Posts a thread or reply. The CSRF token must be the first field, so a
/// forged request is refused before its photo is read.
pub(crate) async fn post(
    State(state): State<AppState>,
    Path(board): Path<i64>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    jar: CookieJar,
    mut multipart: Multipart,
) -> Result<Response, WebError> {
    let scripted = headers.contains_key("x-hearth-fetch");
    let bad = |e: axum::extract::multipart::MultipartError| {
        log::warn!("board post refused: {e}");
        WebError::BadRequest("The post was malformed or cut off. Try again.".into())
    };
    let mut checked = false;
    let mut new = NewPost {
        board,
        address: peer.client_key(),
        ..NewPost::default()
    };
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        if !checked {
            if name != "csrf" {
                return Err(crate::csrf::forged());
            }
            verify_token(&state, &headers, &field.text().await.map_err(bad)?)?;
            checked = true;
            continue;
        }
        match name.as_str() {
            "body" => new.body = field.text().await.map_err(bad)?,
            "parent" => {
                let text = field.text().await.map_err(bad)?;
                new.parent = Some(text.trim().parse().map_err(|_| {
                    WebError::BadRequest("That reply does not belong to a thread.".into())
                })?);
            }
            "photo" => {
                let file_name = field.file_name().unwrap_or("").to_string();
                if file_name.is_empty() {
                    continue; // no photo chosen
                }
                let claimed = file_name
                    .rsplit_once('.')
                    .and_then(|(_, ext)| photo::Kind::from_ext(ext))
                    .or_else(|| field.content_type().and_then(photo::Kind::from_mime));
                let data = read_limited(field, photo::MAX_PHOTO_BYTES).await?;
                new.photo = Some((data, claimed));
            }
            _ => {}
        }
    }
    if !checked {
        return Err(crate::csrf::forged());
    }
    if session::is_admin(&state, &jar).await {
        new.guest = None;
    } else {
        let g = guest(&state, &jar)
            .await?
            .ok_or_else(|| WebError::BadRequest("Choose a name before posting.".into()))?;
        new.nickname = g.nickname;
        new.guest = Some(g.id);
    }
    let thread = new.parent;
    let posted = state.board.post(new).await?;
    if scripted {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let to = match thread {
        Some(t) => format!("/boards/{board}/threads/{t}#post-{}", posted.id),
        None => format!("/boards/{board}#post-{}", posted.id),
    };
    Ok(Redirect::to(&to).into_response())
}

/// Reads a multipart field, refusing it as soon as it passes `limit`.
async fn read_limited(
    mut field: axum::extract::multipart::Field<'_>,
    limit: usize,
) -> Result<Vec<u8>, WebError> {
    let mut data = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|_| WebError::BadRequest("The photo upload was cut off. Try again.".into()))?
    {
        if data.len() + chunk.len() > limit {
            return Err(WebError::BadRequest(format!(
                "Photos can be at most {} MB.",
                limit / 1024 / 1024
            )));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    after: Option<i64>,
}

/// Live updates for one board. A reconnecting browser sends the last id it
/// saw (`Last-Event-ID`) and gets everything after it from the event table
/// first; then live events follow, in id order, without duplicates.
pub(crate) async fn events(
    State(state): State<AppState>,
    Path(board): Path<i64>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, WebError> {
    state.board.board(board).await?;
    let rx = state.board.subscribe();
    let last = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
        .or(q.after)
    {
        Some(l) => l,
        None => state.board.last_event_id().await?,
    };
    let backlog: VecDeque<Arc<Event>> = state.board.events_since(board, last).await?.into();
    struct Live {
        domain: hearth_board::Board,
        board: i64,
        last: i64,
        queue: VecDeque<Arc<Event>>,
        rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    }
    let start = Live {
        domain: state.board.clone(),
        board,
        last,
        queue: backlog,
        rx,
    };
    let stream = futures_util::stream::unfold(start, |mut s| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let next = match s.queue.pop_front() {
                Some(e) => e,
                None => match s.rx.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind the broadcast: catch up from the table.
                        s.queue = s
                            .domain
                            .events_since(s.board, s.last)
                            .await
                            .unwrap_or_default()
                            .into();
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if next.board_id != s.board || next.id <= s.last {
                continue;
            }
            s.last = next.id;
            let event = SseEvent::default()
                .id(next.id.to_string())
                .event(next.kind)
                .data(&*next.data);
            return Some((Ok(event), s));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub(crate) async fn search(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let query: String = q.q.chars().take(200).collect();
    let posts = state.board.search(&query).await?;
    let results = posts
        .iter()
        .map(|p| {
            let thread = p.parent_id.unwrap_or(p.id);
            (
                format!("/boards/{}/threads/{thread}#post-{}", p.board_id, p.id),
                render_post(p, &[], "", false),
            )
        })
        .collect();
    Ok(render(&SearchPage { query, results })?.into_response())
}

/// A stored photo or thumbnail, by its random name only.
pub(crate) async fn photo_file(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let Some((_, kind, thumb)) = photo::valid_name(&name) else {
        return Err(WebError::NotFound);
    };
    let data = tokio::fs::read(state.board.photo_dir().join(&name))
        .await
        .map_err(|_| WebError::NotFound)?;
    let mime = if thumb { "image/jpeg" } else { kind.mime() };
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::CONTENT_DISPOSITION, "inline"),
        ],
        data,
    )
        .into_response())
}
