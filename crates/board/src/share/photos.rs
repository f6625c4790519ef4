//! Photos of shared posts. An event names its photo; the photo itself
//! follows separately, fetched from the peer that delivered the post and
//! within a daily byte budget per peer (the peer layer keeps it). What
//! arrives is treated exactly like a guest's upload: the type is read from
//! the content and must agree with what the event claims, and the picture
//! is decoded and encoded afresh. A photo that does not come (over budget,
//! not a picture, the peer does not have it) leaves the text and the note
//! "not carried".

use std::path::PathBuf;

use hearth_store::rusqlite::{OptionalExtension, params};

use crate::{Board, error::BoardError, photo, rows::load_post, share::shared_id};

impl Board {
    /// The photo file of post `(origin, seq)` on shared board `board`, to
    /// send to a peer; `None` when that post has no photo here.
    pub async fn shared_photo(
        &self,
        board: &str,
        origin: &str,
        seq: u64,
    ) -> Result<Option<PathBuf>, BoardError> {
        let (board, origin) = (board.to_string(), origin.to_string());
        let name: Option<String> = self
            .store
            .read(move |c| {
                let Some(id) = shared_id(c, &board)? else {
                    return Ok(None);
                };
                Ok::<_, BoardError>(
                    c.query_row(
                        "SELECT photo FROM board_posts
                         WHERE board_id = ?1 AND origin = ?2 AND seq = ?3 AND photo IS NOT NULL",
                        params![id, origin, seq as i64],
                        |r| r.get(0),
                    )
                    .optional()?,
                )
            })
            .await?;
        Ok(name
            .filter(|n| photo::valid_name(n).is_some())
            .map(|n| self.photos.join(n)))
    }

    /// Attaches the photo that came for shared post `post`: checked and
    /// re-encoded as an upload is, the file stored before the row names
    /// it. A picture that is not what the event claimed is refused, and
    /// the post says "not carried".
    pub async fn attach_photo(
        &self,
        post: i64,
        data: Vec<u8>,
        claimed: photo::Kind,
    ) -> Result<(), BoardError> {
        let dir = self.photos.as_ref().clone();
        let stored = tokio::task::spawn_blocking(move || {
            let cleaned = photo::clean(&data, Some(claimed))?;
            photo::store(&dir, &cleaned)
        })
        .await
        .map_err(|e| BoardError::Internal(e.to_string()))?;
        match stored {
            Ok(name) => {
                let kept = self.set_photo(post, Some(name.clone()), None).await;
                if !matches!(kept, Ok(true)) {
                    photo::remove(&self.photos, &name);
                }
                kept.map(|_| ())
            }
            Err(e) => {
                self.set_photo(post, None, Some("not carried")).await?;
                Err(e)
            }
        }
    }

    /// Marks shared post `post`'s photo as not carried (over the budget,
    /// or the peer could not send it).
    pub async fn photo_not_carried(&self, post: i64) -> Result<(), BoardError> {
        self.set_photo(post, None, Some("not carried"))
            .await
            .map(|_| ())
    }

    /// Sets a remote post's photo or note, if it has no photo yet, and
    /// tells live pages to redraw it. Returns whether the row changed.
    async fn set_photo(
        &self,
        post: i64,
        name: Option<String>,
        note: Option<&'static str>,
    ) -> Result<bool, BoardError> {
        let _order = self.publish.lock().await;
        let renderer = self.renderer.clone();
        let event = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let n = tx.execute(
                    "UPDATE board_posts SET photo = ?2, photo_note = ?3
                     WHERE id = ?1 AND photo IS NULL AND origin_name IS NOT NULL",
                    params![post, name, note],
                )?;
                if n == 0 {
                    return Ok(None);
                }
                let p = load_post(&tx, post)?;
                let event = Board::record_event(&tx, p.board_id, "replace", post, renderer(&p))?;
                tx.commit()?;
                Ok::<_, BoardError>(Some(event))
            })
            .await?;
        let changed = event.is_some();
        if let Some(e) = event {
            self.changed();
            if !self.post_hidden(post).await {
                self.broadcast(e);
            }
        }
        Ok(changed)
    }

    async fn post_hidden(&self, post: i64) -> bool {
        self.store
            .read(move |c| load_post(c, post).map(|p| p.hidden))
            .await
            .unwrap_or(true)
    }
}
