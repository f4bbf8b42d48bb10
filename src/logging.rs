//! Logging: `simple_logger` on a terminal (UTC timestamps, level, module);
//! under systemd, lines prefixed with their syslog priority (`<3>` error ...
//! `<7>` debug, sd-daemon(3)) and no timestamps, since journald adds its own
//! and `journalctl -p warning` then filters by level. simple_logger cannot
//! write priority prefixes, hence the small logger here for that case.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Whether stderr goes to the journal (systemd sets JOURNAL_STREAM).
pub fn under_systemd() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

struct JournalLogger {
    level: LevelFilter,
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Formats one journal line: `<prio>message`, with the module for debug
/// and trace lines.
pub fn journal_line(level: Level, target: &str, msg: &std::fmt::Arguments<'_>) -> String {
    if level >= Level::Debug {
        format!("<{}>[{}] {}\n", priority(level), target, msg)
    } else {
        format!("<{}>{}\n", priority(level), msg)
    }
}

impl Log for JournalLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = journal_line(record.level(), record.target(), record.args());
            // One write per line, so lines from threads do not interleave.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger. Call once, before starting threads. The level is
/// `log`'s global maximum, so a reload can change it with
/// `log::set_max_level`.
pub fn init(level: LevelFilter) {
    let result = if under_systemd() {
        log::set_boxed_logger(Box::new(JournalLogger {
            level: LevelFilter::Trace,
        }))
    } else {
        simple_logger::SimpleLogger::new()
            .with_level(LevelFilter::Trace)
            .with_utc_timestamps()
            .init()
    };
    match result {
        Ok(()) => log::set_max_level(level),
        Err(e) => eprintln!("edgestream: logging already initialized: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_carry_priority() {
        assert_eq!(
            journal_line(
                Level::Warn,
                "edgestream::rtsp",
                &format_args!("viewer {} left", 3)
            ),
            "<4>viewer 3 left\n"
        );
        assert_eq!(
            journal_line(Level::Debug, "edgestream::rtsp", &format_args!("x")),
            "<7>[edgestream::rtsp] x\n"
        );
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Info), 6);
    }
}
