//! Counters for the periodic stats line (logged, and sent to systemd as
//! STATUS=). The encoder thread records; the stats timer reads and resets a
//! window.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Encode-time samples kept per window (older ones are overwritten).
const SAMPLES: usize = 1024;

#[derive(Default)]
struct Window {
    frames: u64,
    bytes: u64,
    encode_us: heapless::Vec<u32, SAMPLES>,
    next: usize,
}

/// Pipeline counters, shared between the encoder thread and the reporter.
#[derive(Default)]
pub struct PipelineStats {
    window: Mutex<Window>,
    pub frames_total: AtomicU64,
    pub keyframes_total: AtomicU64,
    pub forced_keyframes_total: AtomicU64,
    /// Encode times since start, cumulative per [`ENCODE_BUCKETS_US`] bound
    /// (the last slot is +Inf), and their sum (for `/metrics`).
    pub encode_buckets: [AtomicU64; ENCODE_BUCKETS_US.len() + 1],
    pub encode_sum_us: AtomicU64,
}

/// Upper bounds (microseconds) of the encode time histogram.
pub const ENCODE_BUCKETS_US: [u64; 8] = [1000, 2500, 5000, 10_000, 20_000, 33_000, 66_000, 200_000];

/// One window's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowReport {
    pub frames: u64,
    pub bytes: u64,
    pub encode_p50: Duration,
    pub encode_p99: Duration,
}

impl PipelineStats {
    pub fn record(&self, bytes: usize, encode: Duration, keyframe: bool, forced: bool) {
        self.frames_total.fetch_add(1, Ordering::Relaxed);
        if keyframe {
            self.keyframes_total.fetch_add(1, Ordering::Relaxed);
        }
        if forced {
            self.forced_keyframes_total.fetch_add(1, Ordering::Relaxed);
        }
        let us64 = encode.as_micros() as u64;
        self.encode_sum_us.fetch_add(us64, Ordering::Relaxed);
        let slot = ENCODE_BUCKETS_US
            .iter()
            .position(|&b| us64 <= b)
            .unwrap_or(ENCODE_BUCKETS_US.len());
        self.encode_buckets[slot].fetch_add(1, Ordering::Relaxed);
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.frames += 1;
        w.bytes += bytes as u64;
        let us = encode.as_micros().min(u32::MAX as u128) as u32;
        if w.encode_us.push(us).is_err() {
            let i = w.next % SAMPLES;
            w.encode_us[i] = us;
            w.next += 1;
        }
    }

    /// Returns the figures since the last call and starts a new window.
    pub fn take_window(&self) -> WindowReport {
        let w = std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()));
        let mut s = w.encode_us;
        s.sort_unstable();
        let pct = |p: usize| -> Duration {
            if s.is_empty() {
                return Duration::ZERO;
            }
            Duration::from_micros(s[((s.len() - 1) * p).div_ceil(100)] as u64)
        };
        WindowReport {
            frames: w.frames,
            bytes: w.bytes,
            encode_p50: pct(50),
            encode_p99: pct(99),
        }
    }
}

/// Everything the stats line shows.
#[derive(Debug, Clone, Default)]
pub struct StatsLine {
    pub window: WindowReport,
    pub elapsed: Duration,
    pub viewers: usize,
    /// Open RTSP connections (viewers, and clients that have not played).
    pub connections: usize,
    pub dropped: u64,
    /// One entry per push target, e.g. `rtmp://h/live/x publishing`.
    pub push: Vec<String>,
    /// The source's state if not simply delivering (e.g. `camera retry in 4 s`).
    pub source: Option<String>,
}

impl std::fmt::Display for StatsLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        let w = &self.window;
        write!(
            f,
            "{:.1} fps, encode {:.1}/{:.1} ms p50/p99, {:.0} kbit/s, {} viewer{}, {} connection{}, {} dropped",
            w.frames as f64 / secs,
            w.encode_p50.as_secs_f64() * 1e3,
            w.encode_p99.as_secs_f64() * 1e3,
            w.bytes as f64 * 8.0 / 1000.0 / secs,
            self.viewers,
            if self.viewers == 1 { "" } else { "s" },
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.dropped
        )?;
        for p in &self.push {
            write!(f, ", push {p}")?;
        }
        if let Some(s) = &self.source {
            write!(f, ", {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_percentiles_and_reset() {
        let s = PipelineStats::default();
        for ms in 1..=100u64 {
            s.record(1000, Duration::from_millis(ms), ms == 1, false);
        }
        let w = s.take_window();
        assert_eq!(w.frames, 100);
        assert_eq!(w.bytes, 100_000);
        assert_eq!(w.encode_p50, Duration::from_millis(51));
        assert_eq!(w.encode_p99, Duration::from_millis(100));
        assert_eq!(s.take_window(), WindowReport::default());
        assert_eq!(s.frames_total.load(Ordering::Relaxed), 100);
        assert_eq!(s.keyframes_total.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn window_keeps_a_bounded_sample() {
        let s = PipelineStats::default();
        for _ in 0..3 * SAMPLES {
            s.record(1, Duration::from_micros(5), false, false);
        }
        assert_eq!(s.take_window().frames, 3 * SAMPLES as u64);
    }

    #[test]
    fn line_format() {
        let line = StatsLine {
            window: WindowReport {
                frames: 300,
                bytes: 1_250_000,
                encode_p50: Duration::from_micros(2100),
                encode_p99: Duration::from_micros(4500),
            },
            elapsed: Duration::from_secs(10),
            viewers: 1,
            connections: 2,
            dropped: 3,
            push: vec!["rtmp://h/live/x publishing".into()],
            source: None,
        };
        assert_eq!(
            line.to_string(),
            "30.0 fps, encode 2.1/4.5 ms p50/p99, 1000 kbit/s, 1 viewer, 2 connections, 3 dropped, push rtmp://h/live/x publishing"
        );
    }
}
