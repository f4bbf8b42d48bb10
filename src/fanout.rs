//! One encoder, many sinks: a bounded broadcast of encoded frames.
//!
//! Every sink (an RTSP viewer, a push target) subscribes with its own
//! fixed-capacity queue. [`Fanout::publish`] never blocks: when a sink's queue
//! is full, that sink loses frames until the next keyframe (a decoder cannot
//! resume on anything else) and a keyframe is requested so it does not wait a
//! whole GOP. Memory is bounded by sinks x capacity x frame size.
//!
//! A new sink starts at a keyframe at once: an IDR forced for it while the
//! [`KeyframeBudget`] has a token, otherwise the newest IDR and the frames
//! since (kept here, shared, bounded in bytes), so a join storm is never an
//! IDR flood. This works the same for a source that cannot be asked for
//! IDRs (a zero budget). README "Joining viewers" has the figures.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smol::channel::{self, Receiver, Sender, TrySendError};

use crate::media::{EncodedFrame, StreamInfo};

mod totals;
pub use totals::{Cause, Drops, Meter, SinkKind, SinkTotals};

/// How many forced IDRs may go out at once (a join storm gets this many
/// fresh keyframes before later joiners start from the newest IDR instead).
pub const DEFAULT_KEYFRAME_BURST: u32 = 2;
/// One forced-IDR token comes back per this much stream time.
pub const KEYFRAME_REFILL: Duration = Duration::from_secs(1);
/// The most a new sink is sent at once when it starts at the newest IDR
/// with the frames since (shared, never copied). Past this the newest GOP is
/// not offered and the sink waits for a keyframe.
pub const JOIN_BACKLOG_BYTES: usize = 256 * 1024;
/// ... and at most this many frames.
pub const JOIN_BACKLOG_FRAMES: usize = 120;

/// A token bucket for forced IDRs, on stream time passed in (pure).
///
/// `burst` tokens at most; one comes back every `refill`. A bucket with a
/// zero burst never grants one: keyframes only come from the GOP (a source
/// that cannot be asked for IDRs).
#[derive(Debug, Clone)]
pub struct KeyframeBudget {
    burst: u32,
    refill: Duration,
    tokens: u32,
    /// When the next token started accruing (`None` before the first use).
    since: Option<Duration>,
}

impl KeyframeBudget {
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst,
            refill: refill.max(Duration::from_millis(1)),
            tokens: burst,
            since: None,
        }
    }

    fn refill(&mut self, now: Duration) {
        let since = *self.since.get_or_insert(now);
        if self.tokens >= self.burst || now < since {
            // Full, or the clock went back (another source): start over.
            self.since = Some(now);
            return;
        }
        let ticks = now.saturating_sub(since).as_nanos() / self.refill.as_nanos();
        if ticks > 0 {
            let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(ticks).min(self.burst);
            self.since = Some(since + self.refill.saturating_mul(ticks));
        }
    }

    /// Tokens left at `now`.
    #[cfg(test)]
    pub fn available(&mut self, now: Duration) -> u32 {
        self.refill(now);
        self.tokens
    }

    /// Takes a token if one is left at `now`.
    pub fn try_take(&mut self, now: Duration) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Gives back a token whose IDR was not needed (the GOP came first).
    pub fn refund(&mut self) {
        self.tokens = (self.tokens + 1).min(self.burst);
    }
}

#[derive(Debug)]
struct Pacing {
    budget: KeyframeBudget,
    /// A token is taken: the next frame is forced to an IDR.
    granted: bool,
    /// Someone needs a keyframe but no token was left: forced as soon as
    /// one comes back, unless the GOP comes first.
    wanted: bool,
}

/// Keyframe requests shared between whoever wants one (a new viewer, a
/// lagging sink, a reconnected pusher) and the encoder thread, paced by a
/// [`KeyframeBudget`] so a storm of requests is never a flood of IDRs.
#[derive(Debug)]
pub struct KeyframeRequest {
    pacing: Mutex<Pacing>,
    requests: AtomicU64,
    forced: AtomicU64,
}

impl Default for KeyframeRequest {
    fn default() -> Self {
        Self::with_budget(DEFAULT_KEYFRAME_BURST, KEYFRAME_REFILL)
    }
}

impl KeyframeRequest {
    /// `burst` forced IDRs at once, one more per `refill`.
    pub fn with_budget(burst: u32, refill: Duration) -> Self {
        Self {
            pacing: Mutex::new(Pacing {
                budget: KeyframeBudget::new(burst, refill),
                granted: false,
                wanted: false,
            }),
            requests: AtomicU64::new(0),
            forced: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the budget, e.g. to a zero burst for a source that cannot be
    /// asked for IDRs (new sinks then always start at the newest IDR with
    /// the frames since, or wait for the next one).
    pub fn set_budget(&self, burst: u32, refill: Duration) {
        self.lock().budget = KeyframeBudget::new(burst, refill);
    }

    /// Asks for a keyframe: forced when a token is (or comes) back, unless
    /// the GOP brings one first. Never lost.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.lock().wanted = true;
    }

    /// Asks for a keyframe only if one can be forced now (a token is left,
    /// or one is already on its way); `false` leaves nothing pending.
    pub fn try_request(&self, now: Duration) -> bool {
        let mut p = self.lock();
        if p.granted || p.budget.try_take(now) {
            p.granted = true;
            drop(p);
            self.requests.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    pub fn is_pending(&self) -> bool {
        let p = self.lock();
        p.granted || p.wanted
    }

    /// Clears any request; returns whether one was pending.
    pub fn take(&self) -> bool {
        let mut p = self.lock();
        let was = p.granted || p.wanted;
        (p.granted, p.wanted) = (false, false);
        was
    }

    /// How many requests were made in all.
    pub fn total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How many IDRs were forced in all.
    pub fn forced(&self) -> u64 {
        self.forced.load(Ordering::Relaxed)
    }

    /// Decides whether the frame about to be encoded at `now` must be forced
    /// to an IDR, spending a token; a request with no token left waits.
    pub fn should_force(&self, now: Duration) -> bool {
        let mut p = self.lock();
        let force = p.granted || (p.wanted && p.budget.try_take(now));
        if force {
            (p.granted, p.wanted) = (false, false);
            drop(p);
            self.forced.fetch_add(1, Ordering::Relaxed);
        }
        force
    }

    /// A keyframe went out anyway (the GOP, a camera's own): it satisfies
    /// what was pending, and a token taken for it comes back.
    pub fn natural_keyframe(&self) {
        let mut p = self.lock();
        if p.granted {
            p.budget.refund();
        }
        (p.granted, p.wanted) = (false, false);
    }
}

/// The newest IDR and the frames since, kept for sinks that join when no
/// forced IDR is left: bounded by [`JOIN_BACKLOG_BYTES`] and
/// [`JOIN_BACKLOG_FRAMES`], the frames shared with every sink.
#[derive(Default)]
struct Gop {
    frames: Vec<Arc<EncodedFrame>>,
    bytes: usize,
}

impl Gop {
    fn push(&mut self, frame: &Arc<EncodedFrame>) {
        if frame.keyframe {
            self.frames.clear();
            self.bytes = 0;
        } else if self.frames.is_empty() {
            return;
        }
        let len = frame.annex_b().len();
        if self.bytes + len > JOIN_BACKLOG_BYTES || self.frames.len() >= JOIN_BACKLOG_FRAMES {
            // Too much to send at once: no backlog until the next IDR.
            self.frames.clear();
            self.bytes = 0;
            return;
        }
        self.bytes += len;
        self.frames.push(frame.clone());
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

/// How sinks started, for the stats line and the benchmarks.
#[derive(Debug, Default)]
pub struct JoinStats {
    /// Started at an IDR forced for them (a token was left).
    pub forced: AtomicU64,
    /// Started at once at the newest IDR with the frames since.
    pub backlog: AtomicU64,
    /// Waited for the next keyframe (no token, no backlog).
    pub waited: AtomicU64,
}

/// Counters one sink's subscription keeps, readable by the stats line.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    /// Set by a sink that is not connected (a push target down or still
    /// connecting): its drops count as "push target down", not as loss.
    pub down: std::sync::atomic::AtomicBool,
}

struct Slot {
    id: u64,
    tx: Sender<Arc<EncodedFrame>>,
    /// Set when the sink lost a frame: nothing but a keyframe goes in next.
    need_keyframe: bool,
    /// The wait for a keyframe follows a full queue (loss), not a join.
    lost: bool,
    stats: Arc<SinkStats>,
    kind: SinkKind,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    info: Option<Arc<StreamInfo>>,
    last_pts: Option<Duration>,
    gop: Gop,
}

/// The broadcast point between the encoder and the sinks.
pub struct Fanout {
    state: Mutex<State>,
    keyframes: Arc<KeyframeRequest>,
    next_id: AtomicU64,
    /// Bytes and drops per sink kind since start.
    totals: Arc<SinkTotals>,
    /// Drops since the last [`Fanout::take_drops`]: too slow, target down,
    /// waiting for a keyframe.
    drops: [AtomicU64; 3],
    info_changed: event_listener::Event,
    joins: JoinStats,
}

impl Fanout {
    pub fn new(keyframes: Arc<KeyframeRequest>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            keyframes,
            next_id: AtomicU64::new(0),
            totals: Arc::default(),
            drops: Default::default(),
            info_changed: event_listener::Event::new(),
            joins: JoinStats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only plain data behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keyframe request this fan-out raises for lagging sinks.
    pub fn keyframe_request(&self) -> &Arc<KeyframeRequest> {
        &self.keyframes
    }

    /// Sets what sinks need before the first frame (SPS/PPS, size, rate).
    /// Called by the encoder at start and whenever the parameters change.
    pub fn set_stream_info(&self, info: StreamInfo) {
        let mut st = self.lock();
        if st.info.as_deref() != Some(&info) {
            st.info = Some(Arc::new(info));
            // Frames coded with other parameters cannot start a sink.
            st.gop.clear();
            drop(st);
            self.info_changed.notify(usize::MAX);
        }
    }

    pub fn stream_info(&self) -> Option<Arc<StreamInfo>> {
        self.lock().info.clone()
    }

    /// Waits up to `timeout` for the stream info to be known.
    pub async fn wait_stream_info(&self, timeout: Duration) -> Option<Arc<StreamInfo>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let listener = self.info_changed.listen();
            if let Some(info) = self.stream_info() {
                return Some(info);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            smol::future::or(listener, async {
                smol::Timer::at(deadline).await;
            })
            .await;
        }
    }

    /// The capture time of the last frame published, if any.
    pub fn last_pts(&self) -> Option<Duration> {
        self.lock().last_pts
    }

    /// How sinks started so far.
    pub fn joins(&self) -> &JoinStats {
        &self.joins
    }

    /// Adds a sink with a queue of `capacity` frames. Its first frame is a
    /// keyframe, at once: an IDR forced for it if the [`KeyframeBudget`] has
    /// a token left; otherwise the newest IDR and the frames since (shared,
    /// bounded by [`JOIN_BACKLOG_BYTES`]), ahead of its queue; failing both,
    /// the next keyframe, which is requested.
    pub fn subscribe(self: &Arc<Self>, kind: SinkKind, capacity: usize) -> Subscription {
        let (tx, rx) = channel::bounded(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(SinkStats::default());
        let mut st = self.lock();
        let (need_keyframe, backlog) = self.start(&st, &stats);
        st.slots.push(Slot {
            id,
            tx,
            need_keyframe,
            lost: false,
            stats: stats.clone(),
            kind,
        });
        drop(st);
        Subscription {
            id,
            rx,
            backlog: Mutex::new(backlog),
            stats,
            meter: Meter::new(self.totals.clone(), kind),
            fanout: self.clone(),
        }
    }

    /// How a sink (re)starts: `(wait for a keyframe, frames to send first)`.
    fn start(&self, st: &State, stats: &SinkStats) -> (bool, VecDeque<Arc<EncodedFrame>>) {
        let now = st.last_pts.unwrap_or_default();
        if self.keyframes.try_request(now) {
            self.joins.forced.fetch_add(1, Ordering::Relaxed);
            (true, VecDeque::new())
        } else if !st.gop.frames.is_empty() {
            let backlog: VecDeque<_> = st.gop.frames.iter().cloned().collect();
            stats
                .delivered
                .fetch_add(backlog.len() as u64, Ordering::Relaxed);
            self.joins.backlog.fetch_add(1, Ordering::Relaxed);
            (false, backlog)
        } else {
            self.keyframes.request();
            self.joins.waited.fetch_add(1, Ordering::Relaxed);
            (true, VecDeque::new())
        }
    }

    /// Hands a frame to every sink without waiting for any of them.
    pub fn publish(&self, frame: Arc<EncodedFrame>) {
        let mut want_keyframe = false;
        {
            let mut st = self.lock();
            st.last_pts = Some(frame.pts);
            st.gop.push(&frame);
            for slot in st.slots.iter_mut() {
                let cause = if slot.stats.down.load(Ordering::Relaxed) {
                    Cause::TargetDown
                } else if slot.lost || !slot.need_keyframe {
                    Cause::TooSlow
                } else {
                    Cause::WaitingForKeyframe
                };
                if slot.need_keyframe && !frame.keyframe {
                    self.dropped(slot, cause);
                    continue;
                }
                match slot.tx.try_send(frame.clone()) {
                    Ok(()) => {
                        slot.need_keyframe = false;
                        slot.lost = false;
                        slot.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(_)) => {
                        // A full queue is loss, unless the sink is down.
                        let cause = match cause {
                            Cause::TargetDown => Cause::TargetDown,
                            _ => Cause::TooSlow,
                        };
                        self.dropped(slot, cause);
                        if !slot.need_keyframe {
                            slot.need_keyframe = true;
                            slot.lost = true;
                            want_keyframe = true;
                        }
                    }
                    // The receiver is going away; its Drop removes the slot.
                    Err(TrySendError::Closed(_)) => {}
                }
            }
        }
        if want_keyframe {
            self.keyframes.request();
        }
    }

    /// Counts one frame `slot` did not get.
    fn dropped(&self, slot: &Slot, cause: Cause) {
        slot.stats.dropped.fetch_add(1, Ordering::Relaxed);
        self.drops[cause as usize].fetch_add(1, Ordering::Relaxed);
        self.totals.add_drop(slot.kind, cause);
    }

    /// Number of subscribed sinks.
    pub fn sink_count(&self) -> usize {
        self.lock().slots.len()
    }

    /// Frames dropped since the last call, by cause (the stats line's
    /// interval).
    pub fn take_drops(&self) -> Drops {
        let take = |i: usize| self.drops[i].swap(0, Ordering::Relaxed);
        Drops {
            too_slow: take(0),
            target_down: take(1),
            waiting_for_keyframe: take(2),
        }
    }

    /// Frames dropped across all sinks since start.
    pub fn dropped_total(&self) -> u64 {
        self.totals.dropped_total()
    }

    /// Bytes written and frames dropped per sink kind since start.
    pub fn totals(&self) -> &SinkTotals {
        &self.totals
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().slots.retain(|s| s.id != id);
    }

    /// Restarts a sink as if it had just subscribed; returns its backlog.
    /// `drain` empties its queue under the lock, so nothing older than the
    /// restart point is left in it.
    fn resync(&self, id: u64, drain: impl FnOnce()) -> VecDeque<Arc<EncodedFrame>> {
        let mut st = self.lock();
        drain();
        let Some(i) = st.slots.iter().position(|s| s.id == id) else {
            return VecDeque::new();
        };
        let stats = st.slots[i].stats.clone();
        let (need_keyframe, backlog) = self.start(&st, &stats);
        st.slots[i].need_keyframe = need_keyframe;
        st.slots[i].lost = false;
        backlog
    }
}

/// A sink's end of the fan-out. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    rx: Receiver<Arc<EncodedFrame>>,
    /// The frames a sink starting mid-GOP gets first (see
    /// [`Fanout::subscribe`]); its queue holds what follows them.
    backlog: Mutex<VecDeque<Arc<EncodedFrame>>>,
    stats: Arc<SinkStats>,
    meter: Meter,
    fanout: Arc<Fanout>,
}

impl Subscription {
    fn backlog(&self) -> MutexGuard<'_, VecDeque<Arc<EncodedFrame>>> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next frame; `None` once the fan-out is gone.
    pub async fn recv(&self) -> Option<Arc<EncodedFrame>> {
        if let Some(f) = self.backlog().pop_front() {
            return Some(f);
        }
        self.rx.recv().await.ok()
    }

    pub fn try_recv(&self) -> Option<Arc<EncodedFrame>> {
        if let Some(f) = self.backlog().pop_front() {
            return Some(f);
        }
        self.rx.try_recv().ok()
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        self.backlog().len() + self.rx.len()
    }

    /// Empties the queue and restarts this sink at the next keyframe (which
    /// is requested). For a sink whose peer lost frames, e.g. a reconnect.
    pub fn resync(&self) {
        let mut backlog = self.backlog();
        *backlog = self
            .fanout
            .resync(self.id, || while self.rx.try_recv().is_ok() {});
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Where this sink counts the bytes it writes.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    pub fn fanout(&self) -> &Arc<Fanout> {
        &self.fanout
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.unsubscribe(self.id);
    }
}

#[cfg(test)]
mod tests;
