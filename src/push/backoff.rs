//! When to retry a push target, and when to say so in the log. Pure: the
//! caller supplies elapsed times and random numbers.

use std::time::Duration;

/// The first retry delay.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Publishing this long counts as stable: the next failure retries quickly.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Exponential backoff with jitter: 1, 2, 4, 8, 16, 30, 30 ... seconds,
/// each scaled by a random factor in [0.75, 1.0] (so that many devices
/// cut off together do not come back in lockstep), reset after
/// [`STABLE_AFTER`] of publishing.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    delays: crate::backoff::Backoff,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            failures: 0,
            delays: crate::backoff::Backoff::new(MIN_DELAY, MAX_DELAY),
        }
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// Failures since the last stable session.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A session ended (or never started). `published_for` is how long it
    /// published; `random` is uniform in [0, 1). Returns the wait before the
    /// next attempt.
    pub fn next_delay(&mut self, published_for: Duration, random: f64) -> Duration {
        if published_for >= STABLE_AFTER {
            self.failures = 0;
            self.delays.reset();
        }
        self.failures = self.failures.saturating_add(1);
        let base = self.delays.next_delay();
        base.mul_f64(0.75 + 0.25 * random.clamp(0.0, 1.0))
    }
}

/// Decides which state changes get a log line, so a server that stays down
/// makes one line, not one per attempt.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    last_error: Option<String>,
    published: bool,
    failures: u32,
}

/// What to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Nothing: the same as last time.
    Quiet,
    /// Publishing (for the first time, or again after `failures` failed attempts).
    Publishing { failures: u32 },
    /// A failure that differs from the previous one (or ends publishing).
    Failed { lost: bool },
}

impl ChangeLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn published(&mut self) -> Note {
        let failures = self.failures;
        self.failures = 0;
        self.last_error = None;
        self.published = true;
        Note::Publishing { failures }
    }

    /// A failure with this error text (without the retry delay).
    pub fn failed(&mut self, error: &str) -> Note {
        let lost = std::mem::take(&mut self.published);
        self.failures += 1;
        if !lost && self.last_error.as_deref() == Some(error) {
            return Note::Quiet;
        }
        self.last_error = Some(error.to_string());
        Note::Failed { lost }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets_when_stable() {
        let mut b = Backoff::new();
        let secs: Vec<u64> = (0..8)
            .map(|_| b.next_delay(Duration::ZERO, 0.999_999).as_secs())
            .collect();
        assert_eq!(secs, vec![0, 1, 3, 7, 15, 29, 29, 29]);
        let mut b = Backoff::new();
        let ms: Vec<u128> = (0..7)
            .map(|_| b.next_delay(Duration::ZERO, 0.0).as_millis())
            .collect();
        assert_eq!(ms, vec![750, 1500, 3000, 6000, 12000, 22500, 22500]);
        // A short session does not reset; a minute of publishing does.
        assert_eq!(b.next_delay(Duration::from_secs(59), 1.0), MAX_DELAY);
        assert_eq!(b.next_delay(Duration::from_secs(60), 1.0), MIN_DELAY);
        assert_eq!(b.next_delay(Duration::ZERO, 1.0), 2 * MIN_DELAY);
        assert_eq!(b.failures(), 2);
        for _ in 0..100 {
            assert!(b.next_delay(Duration::ZERO, 0.5) <= MAX_DELAY);
        }
    }

    #[test]
    fn logs_changes_only() {
        let mut l = ChangeLog::new();
        assert_eq!(l.failed("connection refused"), Note::Failed { lost: false });
        assert_eq!(l.failed("connection refused"), Note::Quiet);
        assert_eq!(l.failed("connection refused"), Note::Quiet);
        assert_eq!(l.failed("timed out"), Note::Failed { lost: false });
        assert_eq!(l.published(), Note::Publishing { failures: 4 });
        // Losing a publishing session is always news, even with an old text.
        assert_eq!(l.failed("timed out"), Note::Failed { lost: true });
        assert_eq!(l.failed("timed out"), Note::Quiet);
        assert_eq!(l.published(), Note::Publishing { failures: 2 });
    }
}
