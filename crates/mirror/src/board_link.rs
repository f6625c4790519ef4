//! One peer's shared-board traffic, as the Peers card shows it: a plain
//! record with its daily roll-over and per-minute budget. A leaf module, so
//! that the service's state can hold it and the board exchange
//! (`boards`) can fill it without either importing the other.

use std::time::{Duration, Instant};

use hearth_system::unix_now;

/// Events accepted from one peer per minute; the rest wait for the next
/// minute (a peer forwarding a long backlog is slowed, not refused).
pub const PER_MINUTE: usize = 1500;

/// One peer's shared-board traffic, as the Peers card shows it.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Day number (UTC) the counters are for.
    day: i64,
    pub in_today: u64,
    pub out_today: u64,
    /// Photo bytes fetched today (against the daily budget).
    pub photo_bytes_today: u64,
    /// Photos that were not carried today (over budget or not pictures).
    pub photos_dropped_today: u64,
    /// When the last exchange with it succeeded (Unix seconds).
    pub last_exchange: Option<i64>,
    /// Why it is refused, while it is.
    pub refused: Option<String>,
    pub(crate) refused_until: Option<Instant>,
    window: Option<Instant>,
    pub(crate) window_count: usize,
}

impl Link {
    pub(crate) fn roll(&mut self) {
        let today = unix_now() / 86_400;
        if self.day != today {
            self.day = today;
            self.in_today = 0;
            self.out_today = 0;
            self.photo_bytes_today = 0;
            self.photos_dropped_today = 0;
        }
        if self.refused_until.is_some_and(|t| t <= Instant::now()) {
            self.refused_until = None;
            self.refused = None;
        }
    }

    /// Events that may still be accepted this minute.
    pub(crate) fn budget(&mut self) -> usize {
        if self
            .window
            .is_none_or(|w| w.elapsed() >= Duration::from_secs(60))
        {
            self.window = Some(Instant::now());
            self.window_count = 0;
        }
        PER_MINUTE.saturating_sub(self.window_count)
    }
}
