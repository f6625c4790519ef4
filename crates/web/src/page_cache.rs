//! Rendered board pages, kept until the board changes.
//!
//! A board page is what every guest on the hotspot loads, again and again,
//! and it changes only when someone posts or the admin moderates. Building
//! it from SQLite and the templates costs far more than sending it, so each
//! page is rendered once per change (per board, page and kind of viewer)
//! and kept as text with two kinds of hole: the CSRF token of every form
//! and the viewer's nickname. A request only copies the text and fills the
//! holes. The holes are rendered as random per-process markers; a guest
//! cannot know them, so no post can place a hole in someone else's page.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use hearth_board::Board;

use crate::{
    WebError,
    error::render,
    pages::{BoardPage, render_post},
};

/// Pages kept before the cache starts over; each is a few tens of KiB.
const CAPACITY: usize = 256;

/// Who is looking: the page differs only in its posting form.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Viewer {
    Admin,
    Named,
    Anonymous,
}

#[derive(Clone, Copy)]
enum Hole {
    Csrf,
    Nickname,
}

/// One rendered page: `text` with holes at byte offsets.
struct Cached {
    version: u64,
    text: String,
    holes: Vec<(usize, Hole)>,
}

/// The cache; one per app.
pub struct PageCache {
    csrf_marker: String,
    nick_marker: String,
    pages: Mutex<HashMap<(i64, usize, Viewer), Arc<Cached>>>,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache").finish_non_exhaustive()
    }
}

impl PageCache {
    pub fn new() -> Result<PageCache, getrandom::Error> {
        let mut rnd = [0u8; 16];
        getrandom::fill(&mut rnd)?;
        let marker = hex::encode(rnd);
        Ok(PageCache {
            csrf_marker: format!("hole-{marker}-csrf"),
            nick_marker: format!("hole-{marker}-nick"),
            pages: Mutex::default(),
        })
    }

    /// Page `page` of board `id` as `viewer` sees it, with `csrf` and
    /// `nickname` (already HTML-escaped) filled in.
    pub(crate) async fn board_page(
        &self,
        board: &Board,
        id: i64,
        page: usize,
        viewer: Viewer,
        csrf: &str,
        nickname: &str,
    ) -> Result<String, WebError> {
        let cached = self.get(board, id, page, viewer).await?;
        let mut out = String::with_capacity(cached.text.len() + cached.holes.len() * 64);
        let mut at = 0;
        for &(offset, hole) in &cached.holes {
            out.push_str(&cached.text[at..offset]);
            let (value, marker) = match hole {
                Hole::Csrf => (csrf, &self.csrf_marker),
                Hole::Nickname => (nickname, &self.nick_marker),
            };
            out.push_str(value);
            at = offset + marker.len();
        }
        out.push_str(&cached.text[at..]);
        Ok(out)
    }

    async fn get(
        &self,
        board: &Board,
        id: i64,
        page: usize,
        viewer: Viewer,
    ) -> Result<Arc<Cached>, WebError> {
        // Read before loading: see `Board::version`.
        let version = board.version();
        let key = (id, page, viewer);
        if let Some(hit) = self.lock().get(&key)
            && hit.version == version
        {
            return Ok(hit.clone());
        }
        let info = board.board(id).await?;
        let last_event = board.last_event_id().await?;
        let (threads, more) = board.threads(id, page, false).await?;
        let is_admin = viewer == Viewer::Admin;
        let nickname = (viewer == Viewer::Named).then(|| self.nick_marker.clone());
        let text = render(&BoardPage {
            has_threads: !threads.is_empty(),
            threads: threads
                .iter()
                .map(|t| render_post(&t.post, &t.replies, &self.csrf_marker, true))
                .collect(),
            can_post: is_admin || (nickname.is_some() && !info.locked),
            csrf: self.csrf_marker.clone(),
            board: info,
            page,
            more,
            nickname,
            is_admin,
            last_event,
            back: format!("/boards/{id}"),
        })?
        .0;
        let built = Arc::new(self.cut(version, text));
        let mut pages = self.lock();
        if pages.len() >= CAPACITY {
            pages.clear();
        }
        pages.insert(key, built.clone());
        Ok(built)
    }

    /// Finds the holes in a freshly rendered page.
    fn cut(&self, version: u64, text: String) -> Cached {
        let mut holes: Vec<(usize, Hole)> = text
            .match_indices(self.csrf_marker.as_str())
            .map(|(i, _)| (i, Hole::Csrf))
            .chain(
                text.match_indices(self.nick_marker.as_str())
                    .map(|(i, _)| (i, Hole::Nickname)),
            )
            .collect();
        holes.sort_unstable_by_key(|h| h.0);
        Cached {
            version,
            text,
            holes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, usize, Viewer), Arc<Cached>>> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }
}
