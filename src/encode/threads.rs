//! The `threads = 0` policy: the fewest x264 threads that keep encoding
//! comfortably inside the frame interval (p99 under half of it), found as
//! the stream runs rather than x264's 1.5 x cores. Each extra thread costs
//! CPU (sliced threads split every picture; synchronisation per slice), so
//! it starts at one and adds a thread only when a window of encode times
//! says one is not enough. It never goes back down: a busy spell that made
//! it add one would otherwise make it flap. Pure: encode times in, a
//! decision out.

use std::time::Duration;

use crate::media::Fraction;

/// Frames per measuring window (about 3 s at 30 fps).
pub const WINDOW: usize = 100;
/// Frames ignored after each (re)open: the first frames (an IDR, caches
/// still cold) say nothing about the steady state.
pub const WARM_UP: u32 = 10;

/// Chooses x264's thread count from measured encode times.
#[derive(Debug, Clone)]
pub struct ThreadPolicy {
    budget: Duration,
    max: u32,
    current: u32,
    skip: u32,
    samples: Vec<Duration>,
}

impl ThreadPolicy {
    /// For frames `fps` apart, with at most `max` threads (the cores).
    pub fn new(fps: Fraction, max: u32) -> Self {
        let interval = fps.frame_duration();
        Self {
            budget: interval / 2,
            max: max.max(1),
            current: 1,
            skip: WARM_UP,
            samples: Vec::with_capacity(WINDOW),
        }
    }

    /// The thread count to open x264 with now.
    pub fn threads(&self) -> u32 {
        self.current
    }

    /// Records one frame's encode time. Returns the new thread count when
    /// a full window's p99 is over half the frame interval and another
    /// thread is there to take; the caller reopens x264 with it (at a
    /// keyframe) and the measuring starts over.
    pub fn record(&mut self, took: Duration) -> Option<u32> {
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        self.samples.push(took);
        if self.samples.len() < WINDOW {
            return None;
        }
        self.samples.sort_unstable();
        let p99 = self.samples[(WINDOW - 1) * 99 / 100];
        self.samples.clear();
        if p99 <= self.budget || self.current >= self.max {
            return None;
        }
        self.current += 1;
        self.skip = WARM_UP;
        Some(self.current)
    }
}

/// Times one frame's encode for [`ThreadPolicy::record`]. With one x264
/// thread the work is all on the calling thread, so it counts that thread's
/// CPU time: a machine busy with other work must not make it add threads
/// (they would not help). With more it counts wall time, since the work is
/// spread over x264's threads.
pub struct EncodeTimer {
    wall: std::time::Instant,
    cpu: Option<Duration>,
}

impl EncodeTimer {
    pub fn start() -> Self {
        Self {
            wall: std::time::Instant::now(),
            cpu: thread_cpu_time(),
        }
    }

    /// The encode time as the policy sees it, for x264 on `threads`.
    pub fn elapsed(&self, threads: u32) -> Duration {
        match (threads, self.cpu, thread_cpu_time()) {
            (1, Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.wall.elapsed(),
        }
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| {
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn feed(p: &mut ThreadPolicy, took: Duration, frames: usize) -> Option<u32> {
        (0..frames).find_map(|_| p.record(took))
    }

    #[test]
    fn the_timer_counts_this_threads_cpu_with_one_thread() {
        let t = EncodeTimer::start();
        std::thread::sleep(ms(30));
        assert!(t.elapsed(1) < ms(20), "sleeping is not encoding");
        assert!(t.elapsed(2) >= ms(30));
    }

    #[test]
    fn stays_at_one_thread_while_one_is_enough() {
        let mut p = ThreadPolicy::new(Fraction::new(30, 1), 4);
        assert_eq!(p.threads(), 1);
        // 33 ms frames: 16 ms is the limit. A few slow frames (1 in 100) do
        // not count, the p99 does.
        for _ in 0..5 {
            assert_eq!(feed(&mut p, ms(8), 98), None);
            assert_eq!(p.record(ms(30)), None);
            assert_eq!(feed(&mut p, ms(8), 2), None);
        }
        assert_eq!(p.threads(), 1);
    }

    #[test]
    fn adds_threads_one_at_a_time_up_to_the_cores() {
        let mut p = ThreadPolicy::new(Fraction::new(30, 1), 3);
        // Warm-up frames are ignored, however slow.
        assert_eq!(feed(&mut p, ms(500), WARM_UP as usize), None);
        assert_eq!(feed(&mut p, ms(20), WINDOW - 1), None);
        assert_eq!(p.record(ms(20)), Some(2));
        assert_eq!(feed(&mut p, ms(20), WARM_UP as usize + WINDOW), Some(3));
        // No more cores: it stays.
        assert_eq!(feed(&mut p, ms(20), 10 * WINDOW), None);
        assert_eq!(p.threads(), 3);
        // And never goes back down.
        assert_eq!(feed(&mut p, ms(1), 10 * WINDOW), None);
        assert_eq!(p.threads(), 3);
    }
}
