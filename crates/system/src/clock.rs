//! The wall clock, which on a Pi may be wrong.
//!
//! A Pi 4 has no real-time clock and the hotspot has no internet, so after a
//! power cut the clock restarts from the last saved time. The admin's
//! browser usually knows better; [`Clock::set`] moves the system clock to
//! it. Tests (and a developer's laptop) must never move the real clock, so a
//! clock can be *simulated*: it keeps an offset from system time instead.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Whole seconds since the Unix epoch by the system clock, as stored in
/// every timestamp column; 0 if the clock reads before 1970 (a Pi that lost
/// its time), which sorts first rather than failing the write.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Why the clock could not be set.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("Hearth is not allowed to set the clock (it needs CAP_SYS_TIME)")]
    NotPermitted,
    #[error("the requested time is not valid")]
    Invalid,
    #[error("setting the clock failed: {0}")]
    Os(rustix::io::Errno),
}

/// The clock Hearth reads and may set.
#[derive(Debug)]
pub struct Clock {
    /// Milliseconds added to system time; always 0 for a real clock.
    offset_ms: AtomicI64,
    /// Whether `set` only moves `offset_ms` instead of the system clock.
    simulated: bool,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock {
            offset_ms: AtomicI64::new(0),
            simulated: false,
        }
    }

    /// A clock that starts `offset_ms` away from system time and whose `set`
    /// never touches the machine. For tests and demonstrations.
    pub fn simulated(offset_ms: i64) -> Clock {
        Clock {
            offset_ms: AtomicI64::new(offset_ms),
            simulated: true,
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        system_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Now, as a `SystemTime`.
    pub fn now(&self) -> SystemTime {
        let ms = self.now_ms();
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH
        }
    }

    /// Moves the clock to `target_ms` (milliseconds since the epoch).
    pub fn set(&self, target_ms: i64) -> Result<(), ClockError> {
        if target_ms <= 0 {
            return Err(ClockError::Invalid);
        }
        if self.simulated {
            self.offset_ms
                .store(target_ms - system_ms(), Ordering::Relaxed);
            return Ok(());
        }
        let ts = rustix::time::Timespec {
            tv_sec: target_ms / 1000,
            tv_nsec: (target_ms % 1000) * 1_000_000,
        };
        rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts).map_err(|e| {
            if e == rustix::io::Errno::PERM {
                ClockError::NotPermitted
            } else {
                ClockError::Os(e)
            }
        })
    }
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_without_touching_the_system() {
        let c = Clock::simulated(-3_600_000);
        assert!((system_ms() - c.now_ms() - 3_600_000).abs() < 1000);
        let target = system_ms() + 10_000;
        c.set(target).unwrap();
        assert!((c.now_ms() - target).abs() < 1000);
        assert!(matches!(c.set(-5), Err(ClockError::Invalid)));
    }
}
