//! Live events: every change a page must see is recorded in
//! `board_events` inside the transaction that makes it, then broadcast in id
//! order. A page that reconnects (or a listener that fell behind the
//! broadcast) is replayed from the table.

use hearth_system::unix_now;
use std::sync::Arc;

use hearth_store::rusqlite::{Connection, params};
use tokio::sync::broadcast;

use crate::{
    Board,
    error::BoardError,
    model::{Event, MAX_REPLAY},
    rows::load_post,
};

impl Board {
    /// Live events: subscribe first, then replay what was missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Every event of `board` after `last`, rebuilt from the table, for a
    /// page that reconnects (Last-Event-ID) or fell behind.
    pub async fn events_since(&self, board: i64, last: i64) -> Result<Vec<Arc<Event>>, BoardError> {
        let renderer = self.renderer.clone();
        self.store
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT id, kind, post_id FROM board_events
                     WHERE board_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?;
                let rows: Vec<(i64, String, i64)> = stmt
                    .query_map(params![board, last, MAX_REPLAY as i64 + 1], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<_, _>>()?;
                if rows.len() > MAX_REPLAY {
                    // Too far behind to replay: one "refresh" at the newest
                    // id makes the page reload, and carry on from there.
                    let newest: i64 = c.query_row(
                        "SELECT max(id) FROM board_events WHERE board_id = ?1",
                        [board],
                        |r| r.get(0),
                    )?;
                    return Ok(vec![Arc::new(Event {
                        id: newest,
                        board_id: board,
                        kind: "refresh",
                        data: "".into(),
                    })]);
                }
                let mut out = vec![];
                for (id, kind, post) in rows {
                    let event = match kind.as_str() {
                        "post" => match load_post(c, post) {
                            Ok(p) if !p.hidden => ("post", renderer(&p)),
                            // Gone or hidden since: tell the page to drop it.
                            _ => ("remove", post.to_string()),
                        },
                        "replace" => match load_post(c, post) {
                            Ok(p) if !p.hidden => ("replace", renderer(&p)),
                            _ => ("remove", post.to_string()),
                        },
                        "remove" => ("remove", post.to_string()),
                        _ => ("refresh", String::new()),
                    };
                    out.push(Arc::new(Event {
                        id,
                        board_id: board,
                        kind: event.0,
                        data: event.1.into(),
                    }));
                }
                Ok(out)
            })
            .await
    }

    /// Records an event (inside the caller's transaction) and returns it
    /// ready to broadcast once that transaction commits.
    pub(crate) fn record_event(
        c: &Connection,
        board: i64,
        kind: &'static str,
        post: i64,
        data: String,
    ) -> Result<Arc<Event>, BoardError> {
        c.execute(
            "INSERT INTO board_events (board_id, kind, post_id, at) VALUES (?1, ?2, ?3, ?4)",
            params![board, kind, post, unix_now()],
        )?;
        Ok(Arc::new(Event {
            id: c.last_insert_rowid(),
            board_id: board,
            kind,
            data: data.into(),
        }))
    }

    pub(crate) fn broadcast(&self, event: Arc<Event>) {
        // No listener is not an error.
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewPost;

    fn board() -> (tempfile::TempDir, Board) {
        let dir = tempfile::tempdir().unwrap();
        let store = hearth_store::Store::open(&dir.path().join("hearth.db")).unwrap();
        let renderer: crate::Renderer = Arc::new(|p: &crate::Post| format!("<p>{}</p>", p.id));
        let b = Board::new(store, dir.path(), renderer);
        (dir, b)
    }

    async fn admin_post(b: &Board, body: &str) -> i64 {
        b.post(NewPost {
            board: 1,
            parent: None,
            guest: None,
            nickname: String::new(),
            address: "127.0.0.1".into(),
            body: body.into(),
            photo: None,
        })
        .await
        .unwrap()
        .id
    }

    #[tokio::test]
    async fn replay_returns_what_was_missed_and_reloads_pages_too_far_behind() {
        let (_d, b) = board();
        let start = b.last_event_id().await.unwrap();
        for i in 0..3 {
            admin_post(&b, &format!("post {i}")).await;
        }
        let missed = b.events_since(1, start).await.unwrap();
        assert_eq!(missed.len(), 3);
        assert!(missed.windows(2).all(|w| w[0].id < w[1].id));
        assert!(missed.iter().all(|e| e.kind == "post"));
        assert!(
            b.events_since(2, start).await.unwrap().is_empty(),
            "other board"
        );

        for i in 3..=MAX_REPLAY {
            admin_post(&b, &format!("post {i}")).await;
        }
        let newest = b.last_event_id().await.unwrap();
        let far = b.events_since(1, start).await.unwrap();
        assert_eq!(
            far.len(),
            1,
            "one reload instead of {} events",
            MAX_REPLAY + 1
        );
        assert_eq!((far[0].kind, far[0].id), ("refresh", newest));
        // Just within reach: replayed in full.
        assert_eq!(
            b.events_since(1, start + 1).await.unwrap().len(),
            MAX_REPLAY
        );
    }

    #[tokio::test]
    async fn every_change_moves_the_version() {
        let (_d, b) = board();
        let v0 = b.version();
        let id = admin_post(&b, "hello").await;
        let v1 = b.version();
        assert!(v1 > v0, "a post");
        b.pin(id, true).await.unwrap();
        assert!(b.version() > v1, "moderation");
        let v2 = b.version();
        b.set_nickname(None, "Ana").await.unwrap();
        assert_eq!(b.version(), v2, "a nickname changes no page content");
    }
}
