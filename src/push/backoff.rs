//! When to retry a push target, and when to say so in the log. Pure: the
//! caller passes the time (`now`) and random numbers in.
//!
//! The policy: an outage starts with the first failure after a session that
//! published for [`STABLE_AFTER`] (or with the first failure ever). While
//! the outage is young (the first [`YOUNG_OUTAGE`]) retries come at most
//! [`FAST_MAX`] apart, whatever the sessions in between looked like, so a
//! server that restarts a few times (a config reload, a rolling deploy) has
//! us back within seconds of its return. Only a server that stays down or
//! keeps refusing or dropping us for longer backs off, doubling toward
//! [`MAX_DELAY`]. Every delay is scaled by a random factor in [0.75, 1.0]
//! so that many devices cut off together do not come back in lockstep.

use std::time::{Duration, Instant};

/// The first retry delay of an outage (before jitter).
pub const MIN_DELAY: Duration = Duration::from_millis(500);
/// The longest delay while the outage is young.
pub const FAST_MAX: Duration = Duration::from_secs(3);
/// How long an outage counts as young.
pub const YOUNG_OUTAGE: Duration = Duration::from_secs(120);
/// The longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Publishing this long ends the outage: the next failure starts a new one.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Where the target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet.
    Idle,
    Publishing {
        since: Instant,
    },
    /// A young outage: fast retries.
    Retrying,
    /// An old outage: doubling delays.
    BackingOff,
}

/// The reconnect policy and its log decisions for one target.
#[derive(Debug, Clone)]
pub struct Reconnect {
    state: State,
    /// When the current outage began (kept across short sessions).
    outage_since: Option<Instant>,
    /// When the target last stopped publishing (or first failed).
    down_since: Option<Instant>,
    /// Fast (young) and slow (old) delays.
    fast: crate::backoff::Backoff,
    slow: crate::backoff::Backoff,
    /// Failed attempts since the last time publishing started.
    failures: u32,
    last_error: Option<String>,
}

/// What the adapter should log: one line per state change, none per try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Nothing new.
    Quiet,
    /// Publishing, for the first time (`failures` 0, no outage) or again.
    Publishing {
        failures: u32,
        down_for: Option<Duration>,
    },
    /// A publishing session ended after `published_for`.
    Lost { published_for: Duration },
    /// An attempt failed with an error unlike the previous one.
    Failed,
    /// The outage is old: from now on the delays double toward
    /// [`MAX_DELAY`].
    BackingOff { down_for: Duration },
}

/// The answer to a failure: how long to wait, and what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub delay: Duration,
    pub note: Note,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            state: State::Idle,
            outage_since: None,
            down_since: None,
            fast: crate::backoff::Backoff::new(MIN_DELAY, FAST_MAX),
            slow: crate::backoff::Backoff::new(FAST_MAX * 2, MAX_DELAY),
            failures: 0,
            last_error: None,
        }
    }
}

impl Reconnect {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the target is in an outage old enough to back off.
    pub fn is_backing_off(&self) -> bool {
        self.state == State::BackingOff
    }

    /// Publishing started at `now`.
    pub fn published(&mut self, now: Instant) -> Note {
        let failures = std::mem::take(&mut self.failures);
        self.last_error = None;
        self.state = State::Publishing { since: now };
        let down_for = self
            .down_since
            .take()
            .filter(|_| failures > 0)
            .map(|t| now.saturating_duration_since(t));
        Note::Publishing { failures, down_for }
    }

    /// A connection ended at `now` with `error` (its text, without the
    /// delay), or an attempt failed; `random` is uniform in [0, 1).
    pub fn failed(&mut self, now: Instant, error: &str, random: f64) -> Retry {
        let jitter = 0.75 + 0.25 * random.clamp(0.0, 1.0);
        self.failures = self.failures.saturating_add(1);
        self.down_since.get_or_insert(now);
        let mut note = match self.state {
            State::Publishing { since } => {
                let published_for = now.saturating_duration_since(since);
                if published_for >= STABLE_AFTER {
                    self.outage_since = None;
                    self.slow.reset();
                }
                // A session that published starts the fast ladder again.
                self.fast.reset();
                self.state = State::Retrying;
                Note::Lost { published_for }
            }
            State::Idle | State::Retrying | State::BackingOff => {
                if self.last_error.as_deref() == Some(error) {
                    Note::Quiet
                } else {
                    Note::Failed
                }
            }
        };
        if self.state == State::Idle {
            self.state = State::Retrying;
        }
        self.last_error = Some(error.to_string());
        let since = *self.outage_since.get_or_insert(now);
        let down_for = now.saturating_duration_since(since);
        let young = down_for < YOUNG_OUTAGE;
        let base = if young {
            self.fast.next_delay()
        } else {
            if self.state != State::BackingOff {
                self.state = State::BackingOff;
                if note == Note::Quiet {
                    note = Note::BackingOff { down_for };
                }
            }
            self.slow.next_delay()
        };
        Retry {
            delay: base.mul_f64(jitter),
            note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Drives the policy against a server that is down from `t` until
    /// `up_at`, with attempts taking no time; returns when publishing starts
    /// again and the delays used.
    fn until_up(r: &mut Reconnect, t: &mut Instant, up_at: Instant) -> Vec<Duration> {
        let mut delays = Vec::new();
        loop {
            if *t >= up_at {
                r.published(*t);
                return delays;
            }
            let d = r.failed(*t, "connection refused", 0.5).delay;
            delays.push(d);
            *t += d;
        }
    }

    #[test]
    fn a_young_outage_retries_within_seconds_after_any_number_of_short_sessions() {
        let t0 = Instant::now();
        let mut r = Reconnect::new();
        let mut t = t0;
        r.published(t);
        // Killed every 7 s, down 3 s each time, ten times over: every return
        // is noticed within FAST_MAX.
        for round in 0..10 {
            t += 4 * S;
            let down_at = t;
            until_up(&mut r, &mut t, down_at + 3 * S);
            let back = t - (down_at + 3 * S);
            assert!(back <= FAST_MAX, "round {round}: back {back:?} late");
        }
        assert!(!r.is_backing_off());
        // "Publishing again" reports the last time down, not the outage.
        t += 4 * S;
        let down_at = t;
        let _ = r.failed(t, "closed", 0.5);
        t += 2 * S;
        let Note::Publishing {
            down_for: Some(down),
            ..
        } = r.published(t)
        else {
            panic!("no publishing note");
        };
        assert_eq!(down, t - down_at);
    }

    #[test]
    fn delays_are_short_and_jittered_while_young_then_double_to_the_cap() {
        let t0 = Instant::now();
        let mut r = Reconnect::new();
        let mut t = t0;
        let mut delays = Vec::new();
        while t < t0 + 10 * 60 * S {
            let d = r.failed(t, "connection refused", 0.999_999).delay;
            delays.push(d);
            t += d;
        }
        let ms: Vec<u128> = delays.iter().take(4).map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![499, 999, 1999, 2999]);
        assert_eq!(delays[4], delays[3], "capped at FAST_MAX");
        // Within the first two minutes nothing is over FAST_MAX ...
        let mut at = Duration::ZERO;
        for d in &delays {
            if at < YOUNG_OUTAGE {
                assert!(*d <= FAST_MAX, "{d:?} at {at:?}");
            }
            assert!(*d <= MAX_DELAY);
            at += *d;
        }
        // ... then it doubles: 6, 12, 24, 30, 30 s (times the jitter).
        let old: Vec<u64> = delays
            .iter()
            .skip_while(|d| **d <= FAST_MAX)
            .take(5)
            .map(|d| d.as_secs_f64().round() as u64)
            .collect();
        assert_eq!(old, vec![6, 12, 24, 30, 30]);
        assert!(r.is_backing_off());
        // The lowest jitter factor is 0.75.
        let mut r = Reconnect::new();
        assert_eq!(r.failed(t0, "x", 0.0).delay, MIN_DELAY.mul_f64(0.75));
    }

    #[test]
    fn short_sessions_do_not_end_an_outage_and_a_stable_one_does() {
        let t0 = Instant::now();
        let mut r = Reconnect::new();
        let mut t = t0;
        // A server that accepts and drops us after 5 s, for five minutes.
        while t < t0 + 5 * 60 * S {
            r.published(t);
            t += 5 * S;
            let d = r.failed(t, "closed", 0.5).delay;
            t += d;
        }
        assert!(r.is_backing_off());
        // After a session shorter than STABLE_AFTER the outage goes on
        // (the fast ladder restarts, but the old outage backs off).
        r.published(t);
        t += STABLE_AFTER - S;
        assert!(r.failed(t, "closed", 0.5).delay > FAST_MAX);
        // A minute of publishing ends it: back to fast retries.
        r.published(t);
        t += STABLE_AFTER;
        let retry = r.failed(t, "closed", 0.5);
        assert!(retry.delay <= MIN_DELAY, "{retry:?}");
        assert!(!r.is_backing_off());
    }

    #[test]
    fn one_note_per_state_change() {
        let t0 = Instant::now();
        let mut r = Reconnect::new();
        let mut t = t0;
        let mut notes = Vec::new();
        let fail = |r: &mut Reconnect, t: &mut Instant, e: &str| {
            let retry = r.failed(*t, e, 0.5);
            *t += retry.delay;
            retry.note
        };
        notes.push(fail(&mut r, &mut t, "connection refused"));
        notes.push(fail(&mut r, &mut t, "connection refused"));
        notes.push(fail(&mut r, &mut t, "timed out"));
        assert_eq!(notes, vec![Note::Failed, Note::Quiet, Note::Failed]);
        let Note::Publishing {
            failures: 3,
            down_for: Some(down),
        } = r.published(t)
        else {
            panic!("no publishing note");
        };
        assert_eq!(down, t - t0);
        t += 10 * S;
        // Losing a session is news even with the old error text.
        assert_eq!(
            fail(&mut r, &mut t, "timed out"),
            Note::Lost {
                published_for: 10 * S
            }
        );
        // Then quiet until the outage grows old: one BackingOff line.
        let mut quiet = 0;
        let backing_off = loop {
            match fail(&mut r, &mut t, "timed out") {
                Note::Quiet => quiet += 1,
                other => break other,
            }
        };
        assert!(quiet > 30, "{quiet}");
        let Note::BackingOff { down_for } = backing_off else {
            panic!("{backing_off:?}");
        };
        assert!(down_for >= YOUNG_OUTAGE && down_for < YOUNG_OUTAGE + FAST_MAX);
        assert_eq!(fail(&mut r, &mut t, "timed out"), Note::Quiet);
        assert_eq!(fail(&mut r, &mut t, "refused"), Note::Failed);
        // The very first start has no outage to report.
        let mut r = Reconnect::new();
        assert_eq!(
            r.published(t0),
            Note::Publishing {
                failures: 0,
                down_for: None
            }
        );
    }
}
