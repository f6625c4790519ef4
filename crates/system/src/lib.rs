//! The machine under Hearth: health readings, the clock, logging,
//! systemd notification and durable small-file writes. Each reading degrades to "unknown" rather than
//! failing the dashboard, because a missing sensor is normal on a laptop.

mod clock;
pub mod files;
mod health;
mod logging;
pub mod notify;

pub use clock::{Clock, ClockError, unix_now};
pub use files::{sync_parent, write_durably};
pub use health::{Health, Memory, Usage, hostname};
pub use logging::init_logging;
