//! Counters for the periodic stats line (logged, and sent to systemd as
//! STATUS=). The encoder thread records; the stats timer reads and resets a
//! window.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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
    /// x264's thread count (0: no x264, e.g. passthrough) and whether the
    /// `threads = 0` policy chose it.
    threads: AtomicU32,
    threads_auto: AtomicBool,
    /// Encode times since start, cumulative per [`ENCODE_BUCKETS_US`] bound
    /// (the last slot is +Inf), and their sum (for `/metrics`).
    pub encode_buckets: [AtomicU64; ENCODE_BUCKETS_US.len() + 1],
    pub encode_sum_us: AtomicU64,
    /// Times a running source failed and was closed to be reopened (a
    /// camera error or stall, a command that exited or stalled).
    pub source_restarts: AtomicU64,
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
    pub fn set_threads(&self, threads: u32, auto: bool) {
        self.threads.store(threads, Ordering::Relaxed);
        self.threads_auto.store(auto, Ordering::Relaxed);
    }

    /// `(threads, chosen automatically)` of the x264 encoder, if one is open.
    pub fn threads(&self) -> Option<(u32, bool)> {
        let n = self.threads.load(Ordering::Relaxed);
        (n > 0).then(|| (n, self.threads_auto.load(Ordering::Relaxed)))
    }

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
    /// Frames not handed to a sink in this interval, by cause.
    pub dropped: crate::fanout::Drops,
    /// One entry per push target, e.g. `rtmp://h/live/x publishing`.
    pub push: Vec<String>,
    /// The source's state if not simply delivering (e.g. `camera retry in 4 s`).
    pub source: Option<String>,
    /// x264's threads and whether `threads = 0` chose them.
    pub threads: Option<(u32, bool)>,
}

impl std::fmt::Display for StatsLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        let w = &self.window;
        write!(
            f,
            "{:.1} fps, encode {:.1}/{:.1} ms p50/p99{}, {:.0} kbit/s, {} viewer{}, {} connection{}, {} dropped",
            w.frames as f64 / secs,
            w.encode_p50.as_secs_f64() * 1e3,
            w.encode_p99.as_secs_f64() * 1e3,
            match self.threads {
                Some((n, auto)) => format!(
                    " on {n} thread{}{}",
                    if n == 1 { "" } else { "s" },
                    if auto { " (auto)" } else { "" }
                ),
                None => String::new(),
            },
            w.bytes as f64 * 8.0 / 1000.0 / secs,
            self.viewers,
            if self.viewers == 1 { "" } else { "s" },
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.dropped.total()
        )?;
        let d = &self.dropped;
        let causes: Vec<String> = [
            (d.too_slow, "viewer/server too slow"),
            (d.target_down, "push target down"),
            (d.waiting_for_keyframe, "waiting for a keyframe"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        if !causes.is_empty() {
            write!(f, " ({})", causes.join(", "))?;
        }
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
            dropped: crate::fanout::Drops {
                too_slow: 0,
                target_down: 1,
                waiting_for_keyframe: 2,
            },
            push: vec!["rtmp://h/live/x publishing".into()],
            source: None,
            threads: Some((1, true)),
        };
        assert_eq!(
            line.to_string(),
            "30.0 fps, encode 2.1/4.5 ms p50/p99 on 1 thread (auto), 1000 kbit/s, 1 viewer, 2 connections, 3 dropped (1 push target down, 2 waiting for a keyframe), push rtmp://h/live/x publishing"
        );
        let quiet = StatsLine {
            dropped: Default::default(),
            ..line
        };
        assert!(quiet.to_string().contains("connections, 0 dropped, push"));
    }
}
