//! Logging: to the journal under systemd, to stderr otherwise.
//!
//! systemd sets `JOURNAL_STREAM` when it connects stdout/stderr to the
//! journal; logging natively then keeps priorities and fields instead of
//! flattening them into text.

use std::io::Write;

/// Installs the global logger at `level`. Call once, first thing.
pub fn init_logging(level: log::LevelFilter) {
    let journal = systemd_journal_logger::connected_to_journal()
        .then(|| systemd_journal_logger::JournalLog::new().ok())
        .flatten();
    let installed = match journal {
        Some(j) => j
            .with_syslog_identifier("hearth".to_string())
            .install()
            .is_ok(),
        None => log::set_boxed_logger(Box::new(Stderr)).is_ok(),
    };
    if installed {
        log::set_max_level(level);
    }
}

/// A plain stderr logger: level, target, message, one line each.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{:<5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}
