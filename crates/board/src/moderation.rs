//! The admin's tools: boards, pins, hiding, deleting, bans, slow mode, the
//! landing text, and sharing boards with paired Hearths (which boards, and
//! the photo budget per peer). Every action is written to the moderation log in the
//! same transaction as the change, so the log cannot miss one.

use hearth_store::rusqlite::{Connection, OptionalExtension, Transaction, params};
use hearth_system::unix_now;

use crate::{
    Board,
    error::BoardError,
    model::{Ban, Landing, LogEntry},
    photo,
    rows::load_post,
};

/// Writes one line of the moderation log, inside the change's transaction.
pub(crate) fn log_action(
    tx: &Transaction<'_>,
    action: &str,
    target: &str,
) -> Result<(), BoardError> {
    tx.execute(
        "INSERT INTO board_modlog (at, action, target) VALUES (?1, ?2, ?3)",
        params![unix_now(), action, target],
    )?;
    Ok(())
}

fn board_name(raw: &str) -> Result<String, BoardError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
        return Err(BoardError::Invalid(
            "A board name is 1 to 40 characters, without control characters.".into(),
        ));
    }
    Ok(name.to_string())
}

/// Most MiB a day the admin may let each peer's photos take.
pub const MAX_PHOTO_BUDGET_MIB: u64 = 10_000;

fn describe(c: &Connection, post: i64) -> Result<String, BoardError> {
    let p = load_post(c, post)?;
    Ok(format!("post {} by {}", p.id, p.nickname))
}

impl Board {
    /// Runs one admin change and its log line in a transaction; `event`
    /// names what live pages must do (`remove` or `refresh`) for which
    /// board and post.
    pub(crate) async fn moderate<F>(&self, f: F) -> Result<(), BoardError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<Option<(i64, &'static str, i64)>, BoardError>
            + Send
            + 'static,
    {
        let _order = self.publish.lock().await;
        let event = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let event = match f(&tx)? {
                    Some((board, kind, post)) => {
                        let data = if kind == "remove" {
                            post.to_string()
                        } else {
                            String::new()
                        };
                        Some(Board::record_event(&tx, board, kind, post, data)?)
                    }
                    None => None,
                };
                tx.commit()?;
                Ok::<_, BoardError>(event)
            })
            .await?;
        self.changed();
        if let Some(e) = event {
            self.broadcast(e);
        }
        Ok(())
    }

    /// Creates a board; returns its id.
    pub async fn create_board(&self, name: &str) -> Result<i64, BoardError> {
        let name = board_name(name)?;
        let (tx_id, rx_id) = std::sync::mpsc::channel();
        self.moderate(move |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM board_boards WHERE name = ?1)",
                [&name],
                |r| r.get(0),
            )?;
            if exists {
                return Err(BoardError::Invalid(format!(
                    "There is already a board called {name}."
                )));
            }
            tx.execute(
                "INSERT INTO board_boards (name, position, created_at)
                 VALUES (?1, (SELECT coalesce(max(position), -1) + 1 FROM board_boards), ?2)",
                params![name, unix_now()],
            )?;
            let _ = tx_id.send(tx.last_insert_rowid());
            log_action(tx, "create board", &name)?;
            Ok(None)
        })
        .await?;
        rx_id
            .try_recv()
            .map_err(|_| BoardError::Internal("the new board's id was lost".into()))
    }

    pub async fn rename_board(&self, id: i64, name: &str) -> Result<(), BoardError> {
        let name = board_name(name)?;
        self.moderate(move |tx| {
            let old: String = tx
                .query_row("SELECT name FROM board_boards WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .map_err(|_| BoardError::NotFound)?;
            tx.execute(
                "UPDATE board_boards SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map_err(|_| BoardError::Invalid(format!("There is already a board called {name}.")))?;
            log_action(tx, "rename board", &format!("{old} → {name}"))?;
            Ok(Some((id, "refresh", 0)))
        })
        .await
    }

    /// Moves a board one place up (`-1`) or down (`1`) in the list.
    pub async fn move_board(&self, id: i64, delta: i64) -> Result<(), BoardError> {
        self.moderate(move |tx| {
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM board_boards ORDER BY position, id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let at = ids
                .iter()
                .position(|i| *i == id)
                .ok_or(BoardError::NotFound)?;
            let to = (at as i64 + delta).clamp(0, ids.len() as i64 - 1) as usize;
            let mut order = ids.clone();
            let moved = order.remove(at);
            order.insert(to, moved);
            for (pos, bid) in order.iter().enumerate() {
                tx.execute(
                    "UPDATE board_boards SET position = ?2 WHERE id = ?1",
                    params![bid, pos as i64],
                )?;
            }
            log_action(
                tx,
                if delta < 0 {
                    "move board up"
                } else {
                    "move board down"
                },
                &id.to_string(),
            )?;
            Ok(None)
        })
        .await
    }

    pub async fn set_locked(&self, id: i64, locked: bool) -> Result<(), BoardError> {
        self.moderate(move |tx| {
            if tx.execute(
                "UPDATE board_boards SET locked = ?2 WHERE id = ?1",
                params![id, locked],
            )? == 0
            {
                return Err(BoardError::NotFound);
            }
            log_action(
                tx,
                if locked { "lock board" } else { "unlock board" },
                &id.to_string(),
            )?;
            Ok(Some((id, "refresh", 0)))
        })
        .await
    }

    /// Slow mode: at most one post per `secs` per client on a board.
    pub async fn set_slow(&self, id: i64, secs: u32) -> Result<(), BoardError> {
        if secs > 3600 {
            return Err(BoardError::Invalid(
                "Slow mode can be at most 3600 seconds.".into(),
            ));
        }
        self.moderate(move |tx| {
            if tx.execute(
                "UPDATE board_boards SET slow_secs = ?2 WHERE id = ?1",
                params![id, secs],
            )? == 0
            {
                return Err(BoardError::NotFound);
            }
            log_action(tx, "slow mode", &format!("board {id}: {secs} s"))?;
            Ok(None)
        })
        .await
    }

    pub async fn pin(&self, post: i64, pinned: bool) -> Result<(), BoardError> {
        self.moderate(move |tx| {
            let p = load_post(tx, post)?;
            tx.execute(
                "UPDATE board_posts SET pinned = ?2 WHERE id = ?1",
                params![post, pinned],
            )?;
            log_action(
                tx,
                if pinned { "pin" } else { "unpin" },
                &describe(tx, post)?,
            )?;
            Ok(Some((p.board_id, "refresh", post)))
        })
        .await
    }

    /// Hides or shows a post (and, for a thread, everything under it).
    pub async fn hide(&self, post: i64, hidden: bool) -> Result<(), BoardError> {
        self.moderate(move |tx| {
            let p = load_post(tx, post)?;
            tx.execute(
                "UPDATE board_posts SET hidden = ?2 WHERE id = ?1",
                params![post, hidden],
            )?;
            log_action(
                tx,
                if hidden { "hide" } else { "show" },
                &describe(tx, post)?,
            )?;
            Ok(Some((
                p.board_id,
                if hidden { "remove" } else { "refresh" },
                post,
            )))
        })
        .await
    }

    /// Deletes a post for good, with its replies and photos. When it is
    /// this Hearth's own post on a shared board, its retraction travels to
    /// peers (made in the same transaction); any other delete stays here.
    pub async fn delete(&self, post: i64) -> Result<(), BoardError> {
        let photos = self.photos.clone();
        let origin = self.origin.get().cloned();
        let (tx_retract, rx_retract) = std::sync::mpsc::channel();
        let (tx_gone, rx_gone) = std::sync::mpsc::channel();
        self.moderate(move |tx| {
            let p = load_post(tx, post)?;
            let what = describe(tx, post)?;
            let _ = tx_retract.send(crate::share::retract_event(tx, origin.as_deref(), post)?);
            let names: Vec<String> = tx
                .prepare("SELECT photo FROM board_posts WHERE (id = ?1 OR parent_id = ?1) AND photo IS NOT NULL")?
                .query_map([post], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            tx.execute("DELETE FROM board_posts WHERE parent_id = ?1", [post])?;
            tx.execute("DELETE FROM board_posts WHERE id = ?1", [post])?;
            log_action(tx, "delete", &what)?;
            let _ = tx_gone.send(names);
            Ok(Some((p.board_id, "remove", post)))
        })
        .await?;
        if rx_retract.try_recv().unwrap_or(false) {
            self.share_wake.notify_one();
        }
        // Files go once the rows naming them are gone.
        for name in rx_gone.try_recv().unwrap_or_default() {
            photo::remove(&photos, &name);
        }
        Ok(())
    }

    /// Bans the author of `post`: their guest id and their address.
    pub async fn ban_author(&self, post: i64, reason: &str) -> Result<(), BoardError> {
        let reason = reason.trim().chars().take(200).collect::<String>();
        self.moderate(move |tx| {
            let (guest, address, nickname): (Option<String>, String, String) = tx
                .query_row(
                    "SELECT guest_id, address, nickname FROM board_posts WHERE id = ?1",
                    [post],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(|_| BoardError::NotFound)?;
            if guest.is_none() {
                return Err(BoardError::Invalid("That post is the admin's own.".into()));
            }
            tx.execute(
                "INSERT INTO board_bans (guest_id, address, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![guest, address, reason, unix_now()],
            )?;
            log_action(tx, "ban", &format!("{nickname} ({address}): {reason}"))?;
            Ok(None)
        })
        .await
    }

    pub async fn unban(&self, ban: i64) -> Result<(), BoardError> {
        self.moderate(move |tx| {
            if tx.execute("DELETE FROM board_bans WHERE id = ?1", [ban])? == 0 {
                return Err(BoardError::NotFound);
            }
            log_action(tx, "unban", &ban.to_string())?;
            Ok(None)
        })
        .await
    }

    pub async fn bans(&self) -> Result<Vec<Ban>, BoardError> {
        self.store
            .read(|c| {
                let rows = c
                    .prepare("SELECT id, guest_id, address, reason, created_at FROM board_bans ORDER BY id DESC")?
                    .query_map([], |r| {
                        Ok(Ban {
                            id: r.get(0)?,
                            guest_id: r.get(1)?,
                            address: r.get(2)?,
                            reason: r.get(3)?,
                            created_at: r.get(4)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The newest log lines first.
    pub async fn modlog(&self, limit: usize) -> Result<Vec<LogEntry>, BoardError> {
        self.store
            .read(move |c| {
                let rows = c
                    .prepare(
                        "SELECT at, action, target FROM board_modlog ORDER BY id DESC LIMIT ?1",
                    )?
                    .query_map([limit as i64], |r| {
                        Ok(LogEntry {
                            at: r.get(0)?,
                            action: r.get(1)?,
                            target: r.get(2)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    pub async fn set_landing(&self, landing: Landing) -> Result<(), BoardError> {
        let title = landing.title.trim().to_string();
        let welcome = landing.welcome.trim().to_string();
        if title.is_empty() || title.chars().count() > 80 || title.contains('\u{1f}') {
            return Err(BoardError::Invalid(
                "The title is 1 to 80 characters.".into(),
            ));
        }
        if welcome.chars().count() > 2000 || welcome.contains('\u{1f}') {
            return Err(BoardError::Invalid(
                "The welcome text is at most 2000 characters.".into(),
            ));
        }
        self.moderate(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('board.landing', ?1)",
                [format!("{title}\u{1f}{welcome}").into_bytes()],
            )?;
            log_action(tx, "landing text", &title)?;
            Ok(None)
        })
        .await
    }

    // ---- sharing with paired Hearths (docs/board-replication.md) --------

    /// Shares board `id` with paired Hearths, or stops. Only posts made
    /// while a board is shared travel: what people said before was said
    /// to this hotspot only.
    pub async fn set_shared(&self, id: i64, shared: bool) -> Result<(), BoardError> {
        if shared && self.origin.get().is_none() {
            return Err(BoardError::Invalid(
                "This Hearth has no device identity yet, so it cannot share boards.".into(),
            ));
        }
        self.moderate(move |tx| {
            let name: String = tx
                .query_row("SELECT name FROM board_boards WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or(BoardError::NotFound)?;
            if shared {
                tx.execute(
                    "INSERT OR IGNORE INTO board_shared (board_id) VALUES (?1)",
                    [id],
                )?;
            } else {
                tx.execute("DELETE FROM board_shared WHERE board_id = ?1", [id])?;
            }
            log_action(
                tx,
                if shared {
                    "share board"
                } else {
                    "stop sharing board"
                },
                &name,
            )?;
            Ok(None)
        })
        .await?;
        self.share_wake.notify_one();
        Ok(())
    }

    /// Creates board `name` if there is none, and shares it: accepting a
    /// board a peer offers.
    pub async fn accept_shared(&self, name: &str) -> Result<(), BoardError> {
        let wanted = name.to_string();
        let existing = self
            .store
            .read(move |c| {
                Ok::<_, BoardError>(
                    c.query_row(
                        "SELECT id FROM board_boards WHERE name = ?1",
                        [wanted],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()?,
                )
            })
            .await?;
        let id = match existing {
            Some(id) => id,
            None => self.create_board(name).await?,
        };
        self.set_shared(id, true).await
    }

    /// The admin's daily photo budget per peer, in MiB, when set on the
    /// Board page (`None`: the configuration's `board_photo_budget_mib`).
    pub async fn photo_budget_mib(&self) -> Result<Option<u64>, BoardError> {
        self.store
            .read(|c| {
                let raw: Option<Vec<u8>> = c
                    .query_row(
                        "SELECT value FROM settings WHERE key = 'board.photo_budget_mib'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(raw
                    .and_then(|r| String::from_utf8(r).ok())
                    .and_then(|t| t.parse().ok()))
            })
            .await
    }

    /// Sets the daily photo budget per peer (MiB; 0 carries no photos).
    pub async fn set_photo_budget_mib(&self, mib: u64) -> Result<(), BoardError> {
        if mib > MAX_PHOTO_BUDGET_MIB {
            return Err(BoardError::Invalid(format!(
                "The photo budget is 0 to {MAX_PHOTO_BUDGET_MIB} MiB a day."
            )));
        }
        self.moderate(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('board.photo_budget_mib', ?1)",
                [mib.to_string().into_bytes()],
            )?;
            log_action(tx, "photo budget per peer", &format!("{mib} MiB a day"))?;
            Ok(None)
        })
        .await
    }
}
