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
    let inner: Box<dyn log::Log> = match journal {
        Some(j) => Box::new(j.with_syslog_identifier("hearth".to_string())),
        None => Box::new(Stderr),
    };
    let installed = log::set_boxed_logger(Box::new(OwnDebug(inner))).is_ok();
    if installed {
        log::set_max_level(level);
    }
}

/// Other crates' debug and trace lines are dropped: at `log_level =
/// "debug"` they drown Hearth's own (mdns-sd alone logs its interface scan
/// every few seconds), and Hearth's debug lines are what a bug report needs.
struct OwnDebug(Box<dyn log::Log>);

impl log::Log for OwnDebug {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        (m.level() <= log::Level::Info || m.target().starts_with("hearth")) && self.0.enabled(m)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
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
