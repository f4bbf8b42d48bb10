//! The supervision policy of a command source, pure: times go in (durations
//! on any monotonic clock), decisions come out. The I/O adapter
//! (`super::CommandSource`) polls the child's stdout until [`Watchdog::deadline`],
//! and stops the child by the steps of [`Stopper`].
//!
//! Restarting with backoff is not here: a failed child is reported to the
//! pipeline as a recoverable source error, and the pipeline reopens it the
//! way it reopens a camera (0.5 s doubling to 10 s, reset after 10 s of
//! frames), with the "no signal" state in between.

use std::time::Duration;

/// How long a child may take or stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the start until the first byte (rpicam-vid takes 1-3 s to start
    /// the camera on a Pi Zero).
    pub startup: Duration,
    /// Silence between bytes once pictures flow.
    pub stall: Duration,
    /// From SIGTERM to SIGKILL.
    pub grace: Duration,
}

impl Timeouts {
    /// Frame intervals a running child may stay silent.
    pub const STALL_FRAMES: u32 = 5;
    /// The shortest stall timeout, however high the frame rate.
    pub const MIN_STALL: Duration = Duration::from_millis(500);

    /// The timeouts for a producer at `frame` intervals.
    pub fn for_frame_interval(frame: Duration) -> Self {
        Self {
            startup: Duration::from_secs(10),
            stall: (frame * Self::STALL_FRAMES).max(Self::MIN_STALL),
            grace: Duration::from_secs(1),
        }
    }
}

/// What the watchdog makes of the time now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep reading, until the deadline at the latest.
    Wait,
    /// No byte since the start for this long.
    NeverStarted(Duration),
    /// No byte since the last one for this long (a stalled or stopped child).
    Stalled(Duration),
}

/// Watches the child's output: started at `started`, fed each read.
#[derive(Debug, Clone)]
pub struct Watchdog {
    t: Timeouts,
    started: Duration,
    last_data: Option<Duration>,
}

impl Watchdog {
    pub fn new(t: Timeouts, started: Duration) -> Self {
        Self {
            t,
            started,
            last_data: None,
        }
    }

    /// Bytes came at `now`.
    pub fn data(&mut self, now: Duration) {
        self.last_data = Some(now);
    }

    /// Whether any byte came yet (unit tests).
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        self.last_data.is_some()
    }

    /// When the child is overdue if nothing comes.
    pub fn deadline(&self) -> Duration {
        match self.last_data {
            None => self.started + self.t.startup,
            Some(t) => t + self.t.stall,
        }
    }

    pub fn check(&self, now: Duration) -> Verdict {
        if now < self.deadline() {
            return Verdict::Wait;
        }
        match self.last_data {
            None => Verdict::NeverStarted(now.saturating_sub(self.started)),
            Some(t) => Verdict::Stalled(now.saturating_sub(t)),
        }
    }
}

/// A signal to send to the child's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// The next step of stopping a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// Signal the group.
    Send(Signal),
    /// Look again shortly.
    Wait,
    /// The group leader has exited and the group got its last KILL: reap it.
    Reap,
}

/// Stopping a child: TERM to the group, KILL after the grace period, and a
/// KILL to the group once more when the leader has exited (a `sh -c` child's
/// own children), before the leader is reaped (so the group id cannot have
/// been reused).
#[derive(Debug, Clone)]
pub struct Stopper {
    grace: Duration,
    term_at: Option<Duration>,
    killed: bool,
}

impl Stopper {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            term_at: None,
            killed: false,
        }
    }

    /// What to do at `now`, given whether the group leader has exited.
    pub fn step(&mut self, now: Duration, leader_exited: bool) -> StopStep {
        if self.killed {
            return if leader_exited {
                StopStep::Reap
            } else {
                StopStep::Wait
            };
        }
        match self.term_at {
            _ if leader_exited => {
                self.killed = true;
                StopStep::Send(Signal::Kill)
            }
            None => {
                self.term_at = Some(now);
                StopStep::Send(Signal::Term)
            }
            Some(t) if now >= t + self.grace => {
                self.killed = true;
                StopStep::Send(Signal::Kill)
            }
            Some(_) => StopStep::Wait,
        }
    }
}

/// What to do with one line of the child's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineDecision {
    /// Log it; `suppressed` lines were dropped before it.
    Log {
        suppressed: u64,
    },
    Drop,
}

/// Rate-limits the child's stderr: at most `burst` lines per `window`; the
/// count of dropped lines is logged with the next line let through. A
/// producer printing a status line per frame (rpicam-vid at its default
/// verbosity) costs a few log lines per window, not 30 a second.
#[derive(Debug, Clone)]
pub struct LineLimiter {
    burst: u32,
    window: Duration,
    window_start: Option<Duration>,
    in_window: u32,
    suppressed: u64,
}

impl LineLimiter {
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    pub fn line(&mut self, now: Duration) -> LineDecision {
        let start = *self.window_start.get_or_insert(now);
        if now >= start + self.window {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= self.burst {
            self.suppressed += 1;
            return LineDecision::Drop;
        }
        self.in_window += 1;
        let suppressed = std::mem::take(&mut self.suppressed);
        LineDecision::Log { suppressed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn stall_timeout_is_a_few_frames_with_a_floor() {
        assert_eq!(Timeouts::for_frame_interval(ms(200)).stall, ms(1000));
        assert_eq!(
            Timeouts::for_frame_interval(Duration::from_nanos(33_333_333)).stall,
            ms(500)
        );
    }

    #[test]
    fn watchdog_allows_a_slow_start_then_catches_a_stall() {
        let t = Timeouts {
            startup: ms(3000),
            stall: ms(500),
            grace: ms(1000),
        };
        let mut w = Watchdog::new(t, ms(10_000));
        assert_eq!(w.deadline(), ms(13_000));
        assert_eq!(w.check(ms(12_999)), Verdict::Wait);
        w.data(ms(12_000));
        assert!(w.started());
        assert_eq!(w.deadline(), ms(12_500));
        assert_eq!(w.check(ms(12_400)), Verdict::Wait);
        w.data(ms(12_450));
        assert_eq!(w.check(ms(12_900)), Verdict::Wait);
        assert_eq!(w.check(ms(12_950)), Verdict::Stalled(ms(500)));
    }

    #[test]
    fn watchdog_reports_a_child_that_never_sends() {
        let t = Timeouts::for_frame_interval(ms(33));
        let w = Watchdog::new(t, ms(0));
        assert_eq!(w.check(ms(9_999)), Verdict::Wait);
        assert_eq!(w.check(ms(10_000)), Verdict::NeverStarted(ms(10_000)));
    }

    #[test]
    fn stopper_terms_then_kills_after_the_grace_period() {
        let mut s = Stopper::new(ms(1000));
        assert_eq!(s.step(ms(0), false), StopStep::Send(Signal::Term));
        assert_eq!(s.step(ms(10), false), StopStep::Wait);
        assert_eq!(s.step(ms(999), false), StopStep::Wait);
        assert_eq!(s.step(ms(1000), false), StopStep::Send(Signal::Kill));
        assert_eq!(s.step(ms(1010), false), StopStep::Wait);
        assert_eq!(s.step(ms(1020), true), StopStep::Reap);
    }

    #[test]
    fn stopper_kills_the_rest_of_the_group_when_the_leader_obeys_term() {
        let mut s = Stopper::new(ms(1000));
        assert_eq!(s.step(ms(0), false), StopStep::Send(Signal::Term));
        assert_eq!(s.step(ms(20), true), StopStep::Send(Signal::Kill));
        assert_eq!(s.step(ms(30), true), StopStep::Reap);
    }

    #[test]
    fn stopper_of_a_child_already_gone_kills_its_group_and_reaps() {
        let mut s = Stopper::new(ms(1000));
        assert_eq!(s.step(ms(0), true), StopStep::Send(Signal::Kill));
        assert_eq!(s.step(ms(0), true), StopStep::Reap);
    }

    #[test]
    fn line_limiter_lets_a_burst_through_and_counts_the_rest() {
        let mut l = LineLimiter::new(3, ms(10_000));
        for i in 0..3 {
            assert_eq!(l.line(ms(i)), LineDecision::Log { suppressed: 0 });
        }
        for i in 3..30 {
            assert_eq!(l.line(ms(i * 100)), LineDecision::Drop);
        }
        assert_eq!(l.line(ms(10_000)), LineDecision::Log { suppressed: 27 });
        assert_eq!(l.line(ms(10_001)), LineDecision::Log { suppressed: 0 });
    }
}
