//! What state the device is in, shared by everything that reports it (the
//! source, the push targets) and everything that shows it (the stats line,
//! systemd STATUS=, the status LED).
//!
//! Writers update small pieces; readers take a [`Snapshot`].

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The source's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Opening; no frame yet.
    Starting = 0,
    /// Frames are flowing.
    Delivering = 1,
    /// Failed; being reopened (a camera unplugged or stalled).
    Fault = 2,
    /// Stopped on purpose (privacy pause).
    Paused = 3,
}

impl SourceState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Delivering,
            2 => Self::Fault,
            3 => Self::Paused,
            _ => Self::Starting,
        }
    }
}

/// One push target's state, as its sink reports it.
#[derive(Debug, Default)]
pub struct PushHealth {
    /// The target as shown to users (credentials and stream keys hidden).
    pub name: String,
    up: AtomicBool,
    detail: Mutex<String>,
    /// Connection attempts after the first (each retry after a failure).
    reconnects: AtomicU64,
}

impl PushHealth {
    /// Sets whether the target is publishing, and a short description
    /// (`publishing`, `connecting`, `retry in 8 s: connection refused`).
    pub fn set(&self, up: bool, detail: impl Into<String>) {
        self.up.store(up, Ordering::Relaxed);
        *self.detail.lock().unwrap_or_else(|e| e.into_inner()) = detail.into();
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Counts a new connection attempt after a failure.
    pub fn reconnecting(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Connection attempts after the first, since the target was added.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub fn detail(&self) -> String {
        self.detail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The device's health, shared.
#[derive(Debug)]
pub struct Health {
    source: AtomicU8,
    source_detail: Mutex<Option<String>>,
    privacy: AtomicBool,
    pushes: Mutex<Vec<Arc<PushHealth>>>,
    /// Bumped by the capture loop each time round (a frame, a wait for the
    /// camera, a slate): the watchdog's sign of life.
    heartbeat: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            source: AtomicU8::new(SourceState::Starting as u8),
            source_detail: Mutex::new(None),
            privacy: AtomicBool::new(false),
            pushes: Mutex::new(Vec::new()),
            heartbeat: AtomicU64::new(0),
        }
    }
}

/// A consistent copy of the health for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub source: SourceState,
    /// Why the source is not delivering, e.g. `camera gone, retrying in 4 s`.
    pub source_detail: Option<String>,
    pub privacy: bool,
    pub pushes: Vec<PushState>,
}

/// One push target in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushState {
    pub name: String,
    pub up: bool,
    pub detail: String,
    pub reconnects: u64,
}

impl Snapshot {
    /// Whether the privacy pause is on: asked for, or already in effect.
    pub fn paused(&self) -> bool {
        self.privacy || self.source == SourceState::Paused
    }

    /// Whether any push target is not publishing.
    pub fn push_down(&self) -> bool {
        self.pushes.iter().any(|p| !p.up)
    }
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set_source(&self, state: SourceState, detail: Option<String>) {
        self.source.store(state as u8, Ordering::Relaxed);
        *self.source_detail.lock().unwrap_or_else(|e| e.into_inner()) = detail;
    }

    pub fn source(&self) -> SourceState {
        SourceState::from_u8(self.source.load(Ordering::Relaxed))
    }

    /// Called by the capture loop whenever it makes progress.
    pub fn beat(&self) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
    }

    /// How often the capture loop has made progress.
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// The privacy switch: when on, capture stops and viewers stay connected.
    pub fn set_privacy(&self, on: bool) {
        self.privacy.store(on, Ordering::Relaxed);
    }

    pub fn privacy(&self) -> bool {
        self.privacy.load(Ordering::Relaxed)
    }

    /// Flips the privacy switch; returns the new state.
    pub fn toggle_privacy(&self) -> bool {
        !self.privacy.fetch_xor(true, Ordering::Relaxed)
    }

    /// Registers a push target; its sink keeps the returned handle updated.
    pub fn add_push(&self, name: impl Into<String>) -> Arc<PushHealth> {
        let p = Arc::new(PushHealth {
            name: name.into(),
            detail: Mutex::new("starting".into()),
            ..PushHealth::default()
        });
        self.pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.clone());
        p
    }

    /// The push targets registered so far, in order.
    pub fn pushes(&self) -> Vec<Arc<PushHealth>> {
        self.pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets a push target that was removed (a reload).
    pub fn remove_push(&self, push: &Arc<PushHealth>) {
        self.pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| !Arc::ptr_eq(p, push));
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            source: self.source(),
            source_detail: self
                .source_detail
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            privacy: self.privacy(),
            pushes: self
                .pushes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|p| PushState {
                    name: p.name.clone(),
                    up: p.is_up(),
                    detail: p.detail(),
                    reconnects: p.reconnects(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_updates() {
        let h = Health::new();
        assert_eq!(h.source(), SourceState::Starting);
        let p = h.add_push("rtmp://server/live/cam");
        let s = h.snapshot();
        assert!(s.push_down());
        assert_eq!(s.pushes[0].detail, "starting");
        p.set(true, "publishing");
        p.reconnecting();
        h.set_source(SourceState::Fault, Some("camera gone".into()));
        assert!(h.toggle_privacy());
        let s = h.snapshot();
        assert!(!s.push_down());
        assert_eq!(s.pushes[0].reconnects, 1);
        assert_eq!(s.source, SourceState::Fault);
        assert_eq!(s.source_detail.as_deref(), Some("camera gone"));
        assert!(s.privacy);
        assert!(!h.toggle_privacy());
        let q = h.add_push("rtmp://server/live/cam");
        h.remove_push(&p);
        let left = h.pushes();
        assert_eq!(left.len(), 1, "same name, the other one removed");
        assert!(Arc::ptr_eq(&left[0], &q));
    }
}
