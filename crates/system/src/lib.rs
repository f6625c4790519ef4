//! The machine under Hearth: health readings, the clock, logging and
//! systemd notification. Each reading degrades to "unknown" rather than
//! failing the dashboard, because a missing sensor is normal on a laptop.

mod clock;
mod health;
mod logging;
pub mod notify;

pub use clock::{Clock, ClockError};
pub use health::{Health, Memory, Usage, hostname};
pub use logging::init_logging;
