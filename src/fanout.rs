//! One encoder, many sinks: a bounded broadcast of encoded frames.
//!
//! Every sink (an RTSP viewer, a push target) subscribes with its own
//! fixed-capacity queue. [`Fanout::publish`] never blocks: when a sink's queue
//! is full, that sink loses frames until the next keyframe (a decoder cannot
//! resume on anything else) and a keyframe is requested so it does not wait a
//! whole GOP. Memory is bounded by sinks x capacity x frame size.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smol::channel::{self, Receiver, Sender, TrySendError};

use crate::media::{EncodedFrame, StreamInfo};

/// A request for the encoder to make the next frame an IDR, shared between
/// whoever wants one (a new viewer, a lagging sink, a reconnected pusher) and
/// the encoder thread, which honours it at most once per
/// [`KeyframePacer`] interval.
#[derive(Debug, Default)]
pub struct KeyframeRequest {
    pending: AtomicBool,
    requests: AtomicU64,
}

impl KeyframeRequest {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.pending.store(true, Ordering::Release);
    }

    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Clears the request; returns whether one was pending.
    pub fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }

    /// How many requests were made in all.
    pub fn total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Rate-limits forced keyframes: a request made within `min_interval` of the
/// last forced keyframe waits (it is not lost) until the interval has passed.
/// Natural keyframes (the GOP) also satisfy pending requests.
#[derive(Debug, Clone)]
pub struct KeyframePacer {
    min_interval: Duration,
    last: Option<Duration>,
}

impl KeyframePacer {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last: None,
        }
    }

    /// Decides whether the frame about to be encoded at `now` must be forced
    /// to an IDR. Consumes the request only when it is honoured.
    pub fn should_force(&mut self, request: &KeyframeRequest, now: Duration) -> bool {
        if !request.is_pending() {
            return false;
        }
        if let Some(last) = self.last {
            if now.saturating_sub(last) < self.min_interval {
                return false;
            }
        }
        request.take();
        self.last = Some(now);
        true
    }

    /// Tells the pacer a keyframe went out anyway (the GOP): a pending
    /// request is satisfied by it.
    pub fn natural_keyframe(&mut self, request: &KeyframeRequest, now: Duration) {
        request.take();
        self.last = Some(now);
    }
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

/// Frames not handed to a sink, by cause (see [`Fanout::take_drops`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// The sink's queue was full (a viewer or server too slow), and the
    /// frames after that until the next keyframe.
    pub too_slow: u64,
    /// The sink was down (a push target reconnecting).
    pub target_down: u64,
    /// A new (or resynced) sink waiting for its first keyframe: normal.
    pub waiting_for_keyframe: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.too_slow + self.target_down + self.waiting_for_keyframe
    }
}

struct Slot {
    id: u64,
    tx: Sender<Arc<EncodedFrame>>,
    /// Set when the sink lost a frame: nothing but a keyframe goes in next.
    need_keyframe: bool,
    /// The wait for a keyframe follows a full queue (loss), not a join.
    lost: bool,
    stats: Arc<SinkStats>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    info: Option<Arc<StreamInfo>>,
    last_pts: Option<Duration>,
}

/// The broadcast point between the encoder and the sinks.
pub struct Fanout {
    state: Mutex<State>,
    keyframes: Arc<KeyframeRequest>,
    next_id: AtomicU64,
    dropped_total: AtomicU64,
    /// Drops since the last [`Fanout::take_drops`]: too slow, target down,
    /// waiting for a keyframe.
    drops: [AtomicU64; 3],
    info_changed: event_listener::Event,
}

impl Fanout {
    pub fn new(keyframes: Arc<KeyframeRequest>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            keyframes,
            next_id: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            drops: Default::default(),
            info_changed: event_listener::Event::new(),
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

    /// Adds a sink with a queue of `capacity` frames. Its first frame will be
    /// a keyframe, and one is requested now.
    pub fn subscribe(self: &Arc<Self>, capacity: usize) -> Subscription {
        let (tx, rx) = channel::bounded(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(SinkStats::default());
        self.lock().slots.push(Slot {
            id,
            tx,
            need_keyframe: true,
            lost: false,
            stats: stats.clone(),
        });
        self.keyframes.request();
        Subscription {
            id,
            rx,
            stats,
            fanout: self.clone(),
        }
    }

    /// Hands a frame to every sink without waiting for any of them.
    pub fn publish(&self, frame: Arc<EncodedFrame>) {
        let mut want_keyframe = false;
        let mut dropped = 0;
        {
            let mut st = self.lock();
            st.last_pts = Some(frame.pts);
            for slot in st.slots.iter_mut() {
                let cause = if slot.stats.down.load(Ordering::Relaxed) {
                    1
                } else if slot.lost || !slot.need_keyframe {
                    0
                } else {
                    2
                };
                if slot.need_keyframe && !frame.keyframe {
                    slot.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    self.drops[cause].fetch_add(1, Ordering::Relaxed);
                    dropped += 1;
                    continue;
                }
                match slot.tx.try_send(frame.clone()) {
                    Ok(()) => {
                        slot.need_keyframe = false;
                        slot.lost = false;
                        slot.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(_)) => {
                        slot.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        self.drops[usize::from(cause == 1)].fetch_add(1, Ordering::Relaxed);
                        dropped += 1;
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
        if dropped > 0 {
            self.dropped_total.fetch_add(dropped, Ordering::Relaxed);
        }
        if want_keyframe {
            self.keyframes.request();
        }
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
        self.dropped_total.load(Ordering::Relaxed)
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().slots.retain(|s| s.id != id);
    }

    fn resync(&self, id: u64) {
        if let Some(slot) = self.lock().slots.iter_mut().find(|s| s.id == id) {
            slot.need_keyframe = true;
            slot.lost = false;
        }
        self.keyframes.request();
    }
}

/// A sink's end of the fan-out. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    rx: Receiver<Arc<EncodedFrame>>,
    stats: Arc<SinkStats>,
    fanout: Arc<Fanout>,
}

impl Subscription {
    /// The next frame; `None` once the fan-out is gone.
    pub async fn recv(&self) -> Option<Arc<EncodedFrame>> {
        self.rx.recv().await.ok()
    }

    pub fn try_recv(&self) -> Option<Arc<EncodedFrame>> {
        self.rx.try_recv().ok()
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Empties the queue and restarts this sink at the next keyframe (which
    /// is requested). For a sink whose peer lost frames, e.g. a reconnect.
    pub fn resync(&self) {
        while self.rx.try_recv().is_ok() {}
        self.fanout.resync(self.id);
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
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
mod tests {
    use super::*;

    fn frame(seq: u64, keyframe: bool) -> Arc<EncodedFrame> {
        let nal = if keyframe { 0x65 } else { 0x41 };
        Arc::new(
            EncodedFrame::from_annex_b(
                vec![0, 0, 1, nal, seq as u8],
                Duration::from_millis(seq),
                seq,
            )
            .unwrap(),
        )
    }

    #[test]
    fn first_frame_is_a_keyframe_and_subscribing_requests_one() {
        let kf = Arc::new(KeyframeRequest::default());
        let fan = Fanout::new(kf.clone());
        let sub = fan.subscribe(4);
        assert!(kf.take());
        fan.publish(frame(0, false));
        fan.publish(frame(1, true));
        fan.publish(frame(2, false));
        assert_eq!(sub.try_recv().unwrap().seq, 1);
        assert_eq!(sub.try_recv().unwrap().seq, 2);
        assert!(sub.try_recv().is_none());
        assert_eq!(sub.stats().dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_queue_drops_until_the_next_keyframe_and_asks_for_one() {
        let kf = Arc::new(KeyframeRequest::default());
        let fan = Fanout::new(kf.clone());
        let slow = fan.subscribe(2);
        let fast = fan.subscribe(100);
        kf.take();
        fan.publish(frame(0, true));
        for seq in 1..6 {
            fan.publish(frame(seq, false));
            while fast.try_recv().is_some() {}
        }
        assert!(kf.take(), "a lagging sink must request a keyframe");
        // Room again, but only a keyframe may go in.
        assert_eq!(slow.try_recv().unwrap().seq, 0);
        assert_eq!(slow.try_recv().unwrap().seq, 1);
        fan.publish(frame(6, false));
        assert!(slow.try_recv().is_none());
        fan.publish(frame(7, true));
        fan.publish(frame(8, false));
        assert_eq!(slow.try_recv().unwrap().seq, 7);
        assert_eq!(slow.try_recv().unwrap().seq, 8);
        assert!(!kf.take(), "one request per lag, not one per dropped frame");
        assert_eq!(fast.stats().dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn drops_are_counted_by_cause() {
        let fan = Fanout::new(Arc::new(KeyframeRequest::default()));
        // A new sink waits for a keyframe: normal.
        let late = fan.subscribe(100);
        fan.publish(frame(0, false));
        // A slow sink: its queue fills, then it waits for a keyframe.
        let slow = fan.subscribe(1);
        let down = fan.subscribe(1);
        down.stats().down.store(true, Ordering::Relaxed);
        fan.publish(frame(1, true));
        fan.publish(frame(2, false));
        fan.publish(frame(3, false));
        let d = fan.take_drops();
        assert_eq!(
            d,
            Drops {
                too_slow: 2,
                target_down: 2,
                waiting_for_keyframe: 1,
            },
            "late: 1 before its keyframe; slow: 2 once its queue filled; down: 2"
        );
        assert_eq!(fan.take_drops(), Drops::default(), "per interval");
        drop((late, slow, down));
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let fan = Fanout::new(Arc::default());
        let a = fan.subscribe(1);
        let b = fan.subscribe(1);
        assert_eq!(fan.sink_count(), 2);
        drop(a);
        assert_eq!(fan.sink_count(), 1);
        b.resync();
        drop(b);
        assert_eq!(fan.sink_count(), 0);
        fan.publish(frame(0, true));
    }

    #[test]
    fn pacer_defers_requests_inside_the_interval() {
        let kf = KeyframeRequest::default();
        let mut p = KeyframePacer::new(Duration::from_millis(500));
        let t = Duration::from_secs(10);
        assert!(!p.should_force(&kf, t));
        kf.request();
        assert!(p.should_force(&kf, t));
        kf.request();
        assert!(!p.should_force(&kf, t + Duration::from_millis(100)));
        assert!(kf.is_pending(), "a deferred request is kept");
        assert!(p.should_force(&kf, t + Duration::from_millis(500)));
        kf.request();
        p.natural_keyframe(&kf, t + Duration::from_secs(2));
        assert!(!kf.is_pending());
    }

    #[test]
    fn wait_stream_info_wakes_on_set() {
        use crate::h264::ParameterSets;
        use crate::media::Fraction;
        let fan = Fanout::new(Arc::default());
        let f2 = fan.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            f2.set_stream_info(StreamInfo {
                width: 2,
                height: 2,
                fps: Fraction::new(1, 1),
                bitrate_kbps: 1,
                params: ParameterSets::new(vec![0x67, 0x42, 0, 0x1e], vec![0x68, 1]).unwrap(),
            });
        });
        let got = smol::block_on(fan.wait_stream_info(Duration::from_secs(10)));
        assert_eq!(got.unwrap().width, 2);
        t.join().unwrap();
        let empty = Fanout::new(Arc::default());
        assert!(smol::block_on(empty.wait_stream_info(Duration::from_millis(10))).is_none());
    }
}
