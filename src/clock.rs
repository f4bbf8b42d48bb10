//! The one time base of the data path: CLOCK_MONOTONIC, the clock V4L2
//! stamps capture buffers with. Capture times (`pts`) are durations on it;
//! RTP and FLV timestamps are derived from them, and RTCP maps them to wall
//! clock time.

use std::time::{Duration, SystemTime};

/// The current CLOCK_MONOTONIC time.
pub fn monotonic_now() -> Duration {
    crate::sys::monotonic_now()
}

/// Maps a CLOCK_MONOTONIC time to wall clock time, using the offset between
/// the two clocks now.
pub fn wall_time_of(pts: Duration) -> SystemTime {
    let now_mono = monotonic_now();
    let now_wall = SystemTime::now();
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
    fn monotonic_moves_forward_and_maps_to_wall_time() {
        let a = monotonic_now();
        sleep_until(a + Duration::from_millis(5));
        let b = monotonic_now();
        assert!(b >= a + Duration::from_millis(5));
        let wall = wall_time_of(a);
        let delta = SystemTime::now().duration_since(wall).unwrap();
        assert!(delta < Duration::from_secs(1), "{delta:?}");
    }
}
