//! Flood control for posts: how many a client may make in a minute.
//!
//! Kept in memory only; posting checks a guest's id and its address
//! separately. `Board` (the crate root) holds one `RateLimit` and `posting`
//! consults it, so it lives apart from both: in `posting`, the crate root
//! would import a module that imports it back.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Per-client flood control: at most `BURST` posts in any `WINDOW`.
#[derive(Debug, Default)]
pub struct RateLimit {
    recent: Mutex<HashMap<String, Vec<Instant>>>,
}

const BURST: usize = 5;
const WINDOW: Duration = Duration::from_secs(60);

impl RateLimit {
    /// Records a post by `client` now, or says how long to wait.
    pub(crate) fn check(&self, client: &str) -> Result<(), u64> {
        let Ok(mut map) = self.recent.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        let times = map.entry(client.to_string()).or_default();
        times.retain(|t| now.duration_since(*t) < WINDOW);
        if times.len() >= BURST {
            let wait = WINDOW.saturating_sub(now.duration_since(times[0]));
            return Err(wait.as_secs().max(1));
        }
        times.push(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_wait_for_the_window() {
        let r = RateLimit::default();
        for _ in 0..BURST {
            assert!(r.check("a").is_ok());
        }
        let wait = r.check("a").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(r.check("b").is_ok(), "others unaffected");
    }
}
