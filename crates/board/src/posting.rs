//! Writing a post: every check first (ban, lock, slow mode, rate, size,
//! photo), then one transaction for the post and its event, then the
//! broadcast. A refused post stores nothing, photo included.

use hearth_system::unix_now;

use hearth_store::rusqlite::{OptionalExtension, params};

use crate::{
    Board,
    error::BoardError,
    model::{NewPost, Post},
    photo,
    rows::load_post,
    share,
};

/// Longest post body, in characters.
pub const MAX_BODY: usize = 4000;
/// Longest nickname, in characters.
pub const MAX_NICKNAME: usize = 32;

/// Checks a nickname: trimmed, 1 to 32 characters, no control or
/// invisible characters, and not pretending to be the admin.
pub(crate) fn check_nickname(raw: &str) -> Result<String, BoardError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(BoardError::Invalid("Choose a name first.".into()));
    }
    if name.chars().count() > MAX_NICKNAME {
        return Err(BoardError::Invalid(format!(
            "Names can be at most {MAX_NICKNAME} characters."
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
    {
        return Err(BoardError::Invalid(
            "Names cannot contain control or invisible characters.".into(),
        ));
    }
    let folded: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '0' => 'o',
            '1' | 'l' | '|' => 'i',
            '4' | '@' => 'a',
            '3' => 'e',
            '5' | '$' => 's',
            c => c,
        })
        .collect();
    if [
        "admin",
        "administrator",
        "moderator",
        "hearth",
        "root",
        "sysop",
    ]
    .iter()
    .any(|r| folded.contains(r) || folded.contains(&r.replace('l', "i")))
    {
        return Err(BoardError::Invalid(
            "That name is kept for this Hearth's admin. Choose another.".into(),
        ));
    }
    Ok(name.to_string())
}

impl Board {
    /// Posts, after every check. Returns the stored post.
    pub async fn post(&self, new: NewPost) -> Result<Post, BoardError> {
        let body = new.body.trim().replace("\r\n", "\n");
        if body.is_empty() && new.photo.is_none() {
            return Err(BoardError::Invalid("Write something first.".into()));
        }
        if body.chars().count() > MAX_BODY {
            return Err(BoardError::Invalid(format!(
                "Posts can be at most {MAX_BODY} characters; this one has {}.",
                body.chars().count()
            )));
        }
        let nickname = match &new.guest {
            Some(_) => check_nickname(&new.nickname)?,
            None => "admin".to_string(),
        };
        // Bans, lock and slow mode, read before any work is done.
        let (board, guest, address, parent) = (
            new.board,
            new.guest.clone(),
            new.address.clone(),
            new.parent,
        );
        self.store
            .read(move |c| {
                let (locked, slow): (bool, i64) = c
                    .query_row(
                        "SELECT locked, slow_secs FROM board_boards WHERE id = ?1",
                        [board],
                        |r| Ok((r.get::<_, i64>(0)? != 0, r.get(1)?)),
                    )
                    .optional()?
                    .ok_or(BoardError::NotFound)?;
                if let Some(p) = parent {
                    let thread = load_post(c, p)?;
                    if thread.board_id != board || thread.parent_id.is_some() || thread.hidden {
                        return Err(BoardError::NotFound);
                    }
                }
                let Some(guest) = guest else { return Ok(()) };
                let banned: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM board_bans WHERE guest_id = ?1 OR address = ?2)",
                    params![guest, address],
                    |r| r.get(0),
                )?;
                if banned {
                    return Err(BoardError::Refused {
                        message: "You cannot post on this board.".into(),
                        retry_after: None,
                    });
                }
                if locked {
                    return Err(BoardError::Refused {
                        message: "This board is locked: only the admin can post here.".into(),
                        retry_after: None,
                    });
                }
                if slow > 0 {
                    let last: Option<i64> = c.query_row(
                        "SELECT max(created_at) FROM board_posts
                         WHERE board_id = ?1 AND (guest_id = ?2 OR address = ?3)",
                        params![board, guest, address],
                        |r| r.get(0),
                    )?;
                    if let Some(last) = last {
                        let wait = last + slow - unix_now();
                        if wait > 0 {
                            return Err(BoardError::Refused {
                                message: format!(
                                    "Slow mode is on: one post every {slow} seconds. Wait {wait} more."
                                ),
                                retry_after: Some(wait as u64),
                            });
                        }
                    }
                }
                Ok(())
            })
            .await?;
        if new.guest.is_some() {
            for client in [new.guest.as_deref().unwrap_or(""), new.address.as_str()] {
                if let Err(wait) = self.limits.check(client) {
                    return Err(BoardError::Refused {
                        message: format!(
                            "You are posting too fast. Wait {wait} seconds and try again."
                        ),
                        retry_after: Some(wait),
                    });
                }
            }
        }
        // The photo: checked and cleaned off the async threads, stored
        // before the row that names it.
        let photo_name = match new.photo {
            Some((data, claimed)) => {
                let dir = self.photos.as_ref().clone();
                let name = tokio::task::spawn_blocking(move || {
                    let cleaned = photo::clean(&data, claimed)?;
                    photo::store(&dir, &cleaned)
                })
                .await
                .map_err(|e| BoardError::Internal(e.to_string()))??;
                Some(name)
            }
            None => None,
        };
        let _order = self.publish.lock().await;
        let renderer = self.renderer.clone();
        let photos = self.photos.clone();
        let stored_photo = photo_name.clone();
        let origin = self.origin.get().cloned();
        let photo_dir = self.photos.clone();
        let result = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let t = unix_now();
                let hlc = share::next_hlc(&tx)?;
                let seq = share::post_event(
                    &tx,
                    origin.as_deref(),
                    &share::LocalPost {
                        board_id: new.board,
                        parent: new.parent,
                        nick: &nickname,
                        admin: new.guest.is_none(),
                        text: &body,
                        photo: stored_photo
                            .as_deref()
                            .and_then(|n| share::photo_ref(&photo_dir, n)),
                        hlc,
                    },
                )?;
                tx.execute(
                    "INSERT INTO board_posts
                     (board_id, parent_id, guest_id, nickname, body, photo, address, created_at,
                      last_activity, origin, seq, hlc, activity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?11)",
                    params![
                        new.board,
                        new.parent,
                        new.guest,
                        nickname,
                        body,
                        stored_photo,
                        new.address,
                        t,
                        origin.as_ref().map(|o| o.id.clone()),
                        seq.map(|s| s as i64),
                        hlc
                    ],
                )?;
                let id = tx.last_insert_rowid();
                if let Some(p) = new.parent {
                    tx.execute(
                        "UPDATE board_posts SET last_activity = ?2, activity = max(activity, ?3)
                         WHERE id = ?1",
                        params![p, t, hlc],
                    )?;
                }
                let post = load_post(&tx, id)?;
                let event = Board::record_event(&tx, new.board, "post", id, renderer(&post))?;
                tx.commit()?;
                Ok::<_, BoardError>((post, event, seq.is_some()))
            })
            .await;
        match result {
            Ok((post, event, shared)) => {
                self.changed();
                self.broadcast(event);
                if shared {
                    self.share_wake.notify_one();
                }
                Ok(post)
            }
            Err(e) => {
                if let Some(name) = photo_name {
                    photo::remove(&photos, &name);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_checked() {
        assert_eq!(check_nickname("  Ana ").unwrap(), "Ana");
        for bad in [
            "",
            "   ",
            "a\u{7}b",
            "x\u{202e}y",
            "Admin",
            "ADM1N",
            "the a.d.m.i.n",
            "Moderator 2",
            &"z".repeat(40),
        ] {
            assert!(check_nickname(bad).is_err(), "{bad:?}");
        }
        assert!(check_nickname("Madeline").is_ok());
    }
}
