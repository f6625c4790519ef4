//! Guest identity: a random cookie id and a chosen nickname.
//!
//! Every page a guest loads needs its name, so names are kept in memory
//! (`Board::guests`, emptied when it grows past `GUEST_CACHE`) in front of
//! `board_guests`; a name changes only through `set_nickname`, which updates
//! both. Nicknames are checked by the posting rules, which apply them to
//! every post too.

use hearth_store::rusqlite::{OptionalExtension, params};
use hearth_system::unix_now;

use crate::{Board, error::BoardError, model::Guest, posting};

/// Guests whose names are kept in memory before the map starts over.
const GUEST_CACHE: usize = 10_000;

impl Board {
    fn remember_guest(&self, guest: &Guest) {
        let mut map = self.guests.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= GUEST_CACHE && !map.contains_key(&guest.id) {
            map.clear();
        }
        map.insert(guest.id.clone(), guest.nickname.clone());
    }

    /// The guest with this cookie id, if it chose a name.
    pub async fn guest(&self, id: &str) -> Result<Option<Guest>, BoardError> {
        let known = self
            .guests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(nickname) = known {
            return Ok(Some(Guest {
                id: id.to_string(),
                nickname,
            }));
        }
        let id = id.to_string();
        let found: Option<Guest> = self
            .store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT id, nickname FROM board_guests WHERE id = ?1",
                    [&id],
                    |r| {
                        Ok(Guest {
                            id: r.get(0)?,
                            nickname: r.get(1)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
            .map_err(|e: BoardError| e)?;
        if let Some(g) = &found {
            self.remember_guest(g);
        }
        Ok(found)
    }

    /// Sets a guest's nickname, creating the guest (with a new random id)
    /// when `id` is `None` or unknown.
    pub async fn set_nickname(
        &self,
        id: Option<String>,
        nickname: &str,
    ) -> Result<Guest, BoardError> {
        let nickname = posting::check_nickname(nickname)?;
        let id = match id.filter(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit())) {
            Some(i) => i,
            None => {
                let mut rnd = [0u8; 16];
                getrandom::fill(&mut rnd).map_err(|e| BoardError::Internal(e.to_string()))?;
                hex::encode(rnd)
            }
        };
        let (gid, name) = (id.clone(), nickname.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO board_guests (id, nickname, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET nickname = excluded.nickname",
                    params![gid, name, unix_now()],
                )?;
                Ok::<_, BoardError>(())
            })
            .await?;
        let guest = Guest { id, nickname };
        self.remember_guest(&guest);
        Ok(guest)
    }
}
