//! Counters since start per sink kind: bytes written and frames dropped by
//! cause. The fan-out counts the drops; each sink counts what it writes
//! through its subscription's [`Meter`]. `/metrics`, `/api/status` and the
//! page read them from here (one place).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a fan-out sink is, for the per-kind counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// An RTSP viewer (TCP interleaved or UDP).
    Rtsp,
    /// A `/live.mp4` viewer.
    Http,
    /// A push target (RTMP, RTMPS, FLV).
    Push,
    /// A WebRTC (WHEP) peer.
    WebRtc,
}

impl SinkKind {
    pub const ALL: [SinkKind; 4] = [
        SinkKind::Rtsp,
        SinkKind::Http,
        SinkKind::Push,
        SinkKind::WebRtc,
    ];

    /// The label used by `/metrics` and the JSON keys of `/api/status`.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Rtsp => "rtsp",
            SinkKind::Http => "http",
            SinkKind::Push => "push",
            SinkKind::WebRtc => "webrtc",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a frame was not handed to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The sink's queue was full (a viewer or server too slow), and the
    /// frames after that until the next keyframe.
    TooSlow = 0,
    /// The sink was down (a push target reconnecting).
    TargetDown = 1,
    /// A new (or resynced) sink waiting for its first keyframe: normal.
    WaitingForKeyframe = 2,
}

/// Frames not handed to a sink, by cause (see [`crate::fanout::Fanout::take_drops`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    pub too_slow: u64,
    pub target_down: u64,
    pub waiting_for_keyframe: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.too_slow + self.target_down + self.waiting_for_keyframe
    }

    /// `(label, count)` per cause, in a fixed order.
    pub fn by_cause(&self) -> [(&'static str, u64); 3] {
        [
            ("too_slow", self.too_slow),
            ("target_down", self.target_down),
            ("waiting_for_keyframe", self.waiting_for_keyframe),
        ]
    }

    fn from_counters(c: &[AtomicU64; 3]) -> Self {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Drops {
            too_slow: get(&c[0]),
            target_down: get(&c[1]),
            waiting_for_keyframe: get(&c[2]),
        }
    }
}

/// Totals since start, per [`SinkKind`].
#[derive(Debug, Default)]
pub struct SinkTotals {
    bytes: [AtomicU64; 4],
    drops: [[AtomicU64; 3]; 4],
}

impl SinkTotals {
    pub fn add_bytes(&self, kind: SinkKind, n: u64) {
        self.bytes[kind.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes written by sinks of `kind` since start.
    pub fn bytes(&self, kind: SinkKind) -> u64 {
        self.bytes[kind.index()].load(Ordering::Relaxed)
    }

    pub(super) fn add_drop(&self, kind: SinkKind, cause: Cause) {
        self.drops[kind.index()][cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Frames sinks of `kind` did not get since start, by cause.
    pub fn drops(&self, kind: SinkKind) -> Drops {
        Drops::from_counters(&self.drops[kind.index()])
    }

    /// Frames dropped across all sinks since start.
    pub fn dropped_total(&self) -> u64 {
        SinkKind::ALL.iter().map(|&k| self.drops(k).total()).sum()
    }
}

/// Where one sink counts the bytes it writes (cheap to clone).
#[derive(Debug, Clone)]
pub struct Meter {
    totals: Arc<SinkTotals>,
    kind: SinkKind,
}

impl Meter {
    pub(super) fn new(totals: Arc<SinkTotals>, kind: SinkKind) -> Self {
        Self { totals, kind }
    }

    /// `n` bytes went out to this sink's peer.
    pub fn sent(&self, n: usize) {
        self.totals.add_bytes(self.kind, n as u64);
    }

    pub fn kind(&self) -> SinkKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind_and_cause() {
        let t = Arc::new(SinkTotals::default());
        let m = Meter::new(t.clone(), SinkKind::Rtsp);
        m.clone().sent(100);
        m.sent(5);
        t.add_drop(SinkKind::Push, Cause::TargetDown);
        t.add_drop(SinkKind::Http, Cause::TooSlow);
        t.add_drop(SinkKind::Http, Cause::TooSlow);
        assert_eq!(t.bytes(SinkKind::Rtsp), 105);
        assert_eq!(t.bytes(SinkKind::Http), 0);
        assert_eq!(t.drops(SinkKind::Http).too_slow, 2);
        assert_eq!(t.drops(SinkKind::Push).target_down, 1);
        assert_eq!(t.dropped_total(), 3);
        assert_eq!(t.drops(SinkKind::Rtsp), Drops::default());
    }
}
