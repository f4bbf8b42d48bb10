//! The source's life policy, pure: when to open a camera, when to close it
//! (privacy pause), when to retry after a failure (doubling backoff), and
//! when to send a "no signal" slate frame while no camera frames flow.
//!
//! Time is passed in (CLOCK_MONOTONIC as a [`Duration`]) and decisions come
//! out as [`Action`]s; the capture thread ([`crate::pipeline`]) does the
//! opening, reading, encoding and sleeping, and tells the policy what came
//! of it. No clock, no I/O, no sleeps: the tests run on virtual time.

use std::time::Duration;

use crate::backoff::Backoff;

/// First wait before reopening a failed camera. A USB camera that glitched
/// usually re-enumerates within a second, so the first retry comes quickly.
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest wait between reopen attempts: a camera plugged in later is
/// picked up within 10 s, while a missing one costs one attempt (and at most
/// one debug log line) per 10 s. A camera that ran this long before failing
/// starts again from [`RETRY_MIN`].
pub const RETRY_MAX: Duration = Duration::from_secs(10);
/// The slate's frame interval (2 fps): enough for a clock that ticks and
/// for a server's idle-publisher timeout, and next to no CPU.
pub const SLATE_INTERVAL: Duration = Duration::from_millis(500);

/// Why the slate is on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlateReason {
    /// The camera is missing, unplugged, stalled or failing.
    Offline,
    /// The privacy switch is on.
    Privacy,
}

impl SlateReason {
    /// The card's headline.
    pub fn text(self) -> &'static str {
        match self {
            Self::Offline => "camera offline",
            Self::Privacy => "privacy pause",
        }
    }
}

/// What the capture thread should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read (and encode) the next frame from the open source.
    Read,
    /// Open the source now, then report [`Policy::opened`] or
    /// [`Policy::open_failed`].
    Open,
    /// Close the source (the privacy switch went on): its LED goes off.
    Close,
    /// Encode one slate frame saying `reason`, then report
    /// [`Policy::slate_sent`]. `idr`: the first slate frame after a change,
    /// which must be a keyframe.
    Slate { reason: SlateReason, idr: bool },
    /// Nothing to do for this long (the caller may look again sooner).
    Wait(Duration),
}

/// The policy's state. See the module docs.
#[derive(Debug, Clone)]
pub struct Policy {
    open: bool,
    /// Whether the source can be closed and reopened (a camera) or stays
    /// open (a test pattern, a file: the privacy pause only stops reading).
    reopens: bool,
    paused: bool,
    retry_at: Duration,
    opened_at: Duration,
    backoff: Backoff,
    /// `None`: no slate (frames just stop while the source is down).
    slate_interval: Option<Duration>,
    next_slate: Duration,
    slate_idr: bool,
}

impl Policy {
    /// A policy for a source that is closed now (`open` false: open it at
    /// once) or already open. `reopens`: a camera, closed for the privacy
    /// pause and reopened after failures.
    pub fn new(now: Duration, open: bool, reopens: bool) -> Self {
        Self {
            open,
            reopens,
            paused: false,
            retry_at: now,
            opened_at: now,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            slate_interval: None,
            next_slate: now,
            slate_idr: true,
        }
    }

    /// Sends a slate every `interval` while the source is down.
    pub fn with_slate(mut self, interval: Duration) -> Self {
        self.slate_interval = Some(interval);
        self
    }

    /// Changes the reopen backoff (tests).
    #[cfg(test)]
    pub fn set_backoff(&mut self, min: Duration, max: Duration) {
        self.backoff = Backoff::new(min, max);
    }

    /// Whether the privacy pause is in effect.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The next thing to do at `now`, with the privacy switch at `privacy`.
    pub fn poll(&mut self, now: Duration, privacy: bool) -> Action {
        if privacy {
            if !self.paused {
                self.paused = true;
                self.down(now);
                if self.open && self.reopens {
                    self.open = false;
                    return Action::Close;
                }
                self.open = false;
            }
            return self.slate_or_wait(now, SlateReason::Privacy, None);
        }
        if self.paused {
            self.paused = false;
            self.retry_at = now;
            self.backoff.reset();
        }
        if self.open {
            return Action::Read;
        }
        if now >= self.retry_at {
            return Action::Open;
        }
        self.slate_or_wait(now, SlateReason::Offline, Some(self.retry_at))
    }

    fn slate_or_wait(
        &mut self,
        now: Duration,
        reason: SlateReason,
        until: Option<Duration>,
    ) -> Action {
        if self.slate_interval.is_some() && now >= self.next_slate {
            return Action::Slate {
                reason,
                idr: self.slate_idr,
            };
        }
        let next = match (self.slate_interval, until) {
            (Some(_), Some(u)) => u.min(self.next_slate),
            (Some(_), None) => self.next_slate,
            (None, Some(u)) => u,
            // Paused without a slate: look at the switch again in a while.
            (None, None) => now + SLATE_INTERVAL,
        };
        Action::Wait(next.saturating_sub(now))
    }

    /// The source stopped delivering at `now`: a slate goes out at once.
    fn down(&mut self, now: Duration) {
        self.next_slate = now;
        self.slate_idr = true;
    }

    /// The source opened at `now`.
    pub fn opened(&mut self, now: Duration) {
        self.open = true;
        self.opened_at = now;
    }

    /// Opening failed in a way waiting may fix; returns the wait before the
    /// next attempt.
    pub fn open_failed(&mut self, now: Duration) -> Duration {
        let delay = self.backoff.next_delay();
        self.retry_at = now + delay;
        delay
    }

    /// The open source failed at `now` (unplugged, stalled, a capture
    /// error): it is closed and reopened after the returned wait.
    pub fn failed(&mut self, now: Duration) -> Duration {
        self.open = false;
        self.down(now);
        if now.saturating_sub(self.opened_at) >= RETRY_MAX {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay();
        self.retry_at = now + delay;
        delay
    }

    /// A frame came from the source at `now`: a camera that has run for
    /// [`RETRY_MAX`] starts its backoff afresh on the next failure.
    pub fn delivered(&mut self, now: Duration) {
        if now.saturating_sub(self.opened_at) >= RETRY_MAX {
            self.backoff.reset();
        }
    }

    /// A slate frame went out at `now`.
    pub fn slate_sent(&mut self, now: Duration) {
        let interval = self.slate_interval.unwrap_or(SLATE_INTERVAL);
        self.next_slate = now + interval;
        self.slate_idr = false;
    }
}

#[cfg(test)]
mod tests;
