//! The board's public data: what the web layer shows and submits.
//!
//! Plain types (boards, posts, threads, guests, the landing text, live
//! events, moderation records, a submitted post) and the limits pages are
//! built around. They live apart from the code that loads and changes them so
//! that every other module can use them, and the crate root can re-export
//! them, without any of those modules importing each other.

use std::sync::Arc;

use serde::Serialize;

use crate::photo;

/// One board as listed.
#[derive(Clone, Debug, Serialize)]
pub struct BoardInfo {
    pub id: i64,
    pub name: String,
    pub position: i64,
    pub locked: bool,
    pub slow_secs: u32,
    pub threads: u64,
}

/// One post, thread or reply.
#[derive(Clone, Debug, Serialize)]
pub struct Post {
    pub id: i64,
    pub board_id: i64,
    pub parent_id: Option<i64>,
    pub nickname: String,
    /// The body as safe HTML (escaped, links made clickable).
    pub html: String,
    pub photo: Option<String>,
    pub created_at: i64,
    pub pinned: bool,
    pub hidden: bool,
    /// Posted by the admin.
    pub by_admin: bool,
    /// The name of the Hearth a shared post came from; `None` for posts
    /// written here.
    pub from: Option<String>,
    /// The short fingerprint of that Hearth (as its Peers page shows it):
    /// a name can be chosen by anyone, the fingerprint cannot.
    pub from_fp: Option<String>,
    /// Why a shared post's photo is not here ("not carried").
    pub photo_note: Option<String>,
}

/// A thread with its replies.
#[derive(Clone, Debug, Serialize)]
pub struct Thread {
    pub post: Post,
    pub replies: Vec<Post>,
}

/// A guest's chosen name.
#[derive(Clone, Debug)]
pub struct Guest {
    pub id: String,
    pub nickname: String,
}

/// The landing page's words, set by the admin.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Landing {
    pub title: String,
    pub welcome: String,
}

impl Default for Landing {
    fn default() -> Self {
        Landing {
            title: "Welcome to this Hearth".into(),
            welcome: "A board for everyone on this Wi-Fi. Pick a name and say hello.".into(),
        }
    }
}

/// A change for live pages: the SSE event id, its board, a name
/// (`post`, `remove`, `refresh`) and its data.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: i64,
    pub board_id: i64,
    pub kind: &'static str,
    pub data: Arc<str>,
}

/// Turns a post into the HTML fragment pages show and receive live.
pub type Renderer = Arc<dyn Fn(&Post) -> String + Send + Sync>;

/// Threads per page.
pub const PAGE_SIZE: usize = 20;

/// Events replayed to a page that reconnects; one further behind reloads.
pub const MAX_REPLAY: usize = 500;

/// A post as submitted.
#[derive(Debug, Default)]
pub struct NewPost {
    pub board: i64,
    /// The thread replied to, if a reply.
    pub parent: Option<i64>,
    /// The guest's cookie id; `None` for the admin.
    pub guest: Option<String>,
    pub nickname: String,
    pub address: String,
    pub body: String,
    /// Photo bytes and the type the upload claimed (from name or MIME).
    pub photo: Option<(Vec<u8>, Option<photo::Kind>)>,
}

/// One line of the moderation log.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    pub at: i64,
    pub action: String,
    pub target: String,
}

/// A ban: a guest id, an address, or both.
#[derive(Clone, Debug, Serialize)]
pub struct Ban {
    pub id: i64,
    pub guest_id: Option<String>,
    pub address: Option<String>,
    pub reason: String,
    pub created_at: i64,
}
