//! The one time base of the data path: CLOCK_MONOTONIC, the clock V4L2
//! stamps capture buffers with. Capture times (`pts`) are durations on it;
//! RTP and FLV timestamps are derived from them, and RTCP maps them to wall
//! clock time.

use std::time::{Duration, SystemTime};

/// The current CLOCK_MONOTONIC time.
pub fn monotonic_now() -> Duration {
    crate::sys::monotonic_now()
}

/// Maps a CLOCK_MONOTONIC time to wall clock time, given both clocks read
/// at one moment (`now_mono`, `now_wall`). Pure: the caller reads the clocks.
pub fn wall_time_of(pts: Duration, now_mono: Duration, now_wall: SystemTime) -> SystemTime {
    if pts <= now_mono {
        now_wall - (now_mono - pts)
    } else {
        now_wall + (pts - now_mono)
    }
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

    #[test]
    fn wall_time_of_shifts_by_the_distance_to_now() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mono = Duration::from_secs(50);
        assert_eq!(
            wall_time_of(Duration::from_secs(48), mono, wall),
            wall - Duration::from_secs(2)
        );
        assert_eq!(
            wall_time_of(Duration::from_secs(51), mono, wall),
            wall + Duration::from_secs(1)
        );
    }
}
