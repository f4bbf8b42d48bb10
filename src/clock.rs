//! The one time base of the data path: CLOCK_MONOTONIC, the clock V4L2
//! stamps capture buffers with. Capture times (`pts`) are durations on it;
//! RTP and FLV timestamps are derived from them, and RTCP maps them to wall
//! clock time.

use std::time::Duration;

/// The current CLOCK_MONOTONIC time.
pub fn monotonic_now() -> Duration {
    crate::sys::monotonic_now()
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline` (returns at once if it has).
pub fn sleep_until(deadline: Duration) {
    let now = monotonic_now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_moves_forward_and_sleep_until_waits_for_it() {
        let a = monotonic_now();
        sleep_until(a + Duration::from_millis(5));
        let b = monotonic_now();
        assert!(b >= a + Duration::from_millis(5));
        sleep_until(a); // in the past: returns at once
    }
}
