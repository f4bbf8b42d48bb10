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
    let sub = fan.subscribe(SinkKind::Rtsp, 4);
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
    let slow = fan.subscribe(SinkKind::Rtsp, 2);
    let fast = fan.subscribe(SinkKind::Rtsp, 100);
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
fn dropping_a_subscription_unsubscribes() {
    let fan = Fanout::new(Arc::default());
    let a = fan.subscribe(SinkKind::Rtsp, 1);
    let b = fan.subscribe(SinkKind::Rtsp, 1);
    assert_eq!(fan.sink_count(), 2);
    drop(a);
    assert_eq!(fan.sink_count(), 1);
    b.resync();
    drop(b);
    assert_eq!(fan.sink_count(), 0);
    fan.publish(frame(0, true));
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn budget_gives_a_burst_then_one_token_per_refill() {
    let mut b = KeyframeBudget::new(2, ms(1000));
    let t = ms(10_000);
    assert!(b.try_take(t));
    assert!(b.try_take(t + ms(300)));
    assert!(!b.try_take(t + ms(600)));
    assert!(!b.try_take(t + ms(999)));
    // The first token accrues from when the bucket stopped being full.
    assert!(b.try_take(t + ms(1000)));
    assert!(!b.try_take(t + ms(1500)));
    assert!(b.try_take(t + ms(2000)));
    // A long quiet spell fills it to the burst, no more.
    assert_eq!(b.available(t + ms(60_000)), 2);
    b.refund();
    assert_eq!(b.available(t + ms(60_000)), 2);
    // Time going backwards (a new source) takes nothing and breaks nothing.
    assert!(b.try_take(ms(5)));
    assert_eq!(b.available(ms(0)), 1);
    assert!(b.try_take(ms(10)));
    assert!(!b.try_take(ms(500)));
    assert!(b.try_take(ms(1010)), "refills on the new clock");
    assert!(!KeyframeBudget::new(0, ms(1000)).try_take(t));
}

#[test]
fn requests_share_one_idr_and_wait_for_a_token() {
    let kf = KeyframeRequest::with_budget(1, ms(1000));
    let t = ms(10_000);
    assert!(!kf.should_force(t));
    assert!(kf.try_request(t));
    assert!(
        kf.try_request(t),
        "a second joiner shares the IDR on its way"
    );
    assert!(kf.should_force(t + ms(33)));
    assert!(!kf.should_force(t + ms(66)));
    assert!(!kf.try_request(t + ms(100)), "no token left");
    assert!(!kf.is_pending());
    kf.request();
    assert!(!kf.should_force(t + ms(500)), "a deferred request is kept");
    assert!(kf.is_pending());
    assert!(kf.should_force(t + ms(1033)));
    assert_eq!(kf.forced(), 2);
    // A GOP keyframe satisfies a pending request and refunds its token.
    assert!(kf.try_request(t + ms(5000)));
    kf.natural_keyframe();
    assert!(!kf.is_pending());
    assert!(kf.try_request(t + ms(5001)));
    kf.request();
    assert!(kf.take());
    assert!(!kf.should_force(t + ms(5033)));
}

fn sized(seq: u64, keyframe: bool, len: usize) -> Arc<EncodedFrame> {
    let mut au = vec![0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    au.resize(len.max(5), seq as u8);
    Arc::new(EncodedFrame::from_annex_b(au, ms(seq * 33), seq).unwrap())
}

fn seqs(sub: &Subscription) -> Vec<u64> {
    std::iter::from_fn(|| sub.try_recv())
        .map(|f| f.seq)
        .collect()
}

#[test]
fn a_join_with_no_token_left_starts_at_once_at_the_newest_idr() {
    let kf = Arc::new(KeyframeRequest::with_budget(2, ms(1000)));
    let fan = Fanout::new(kf.clone());
    let steady = fan.subscribe(SinkKind::Rtsp, 100);
    assert!(kf.should_force(ms(0)));
    for seq in 0..4 {
        fan.publish(sized(seq, seq == 0, 100));
    }
    let forced = fan.subscribe(SinkKind::Rtsp, 100);
    assert!(kf.is_pending(), "the token buys this one an IDR");
    fan.publish(sized(4, false, 100));
    assert!(kf.should_force(ms(5 * 33)));
    fan.publish(sized(5, true, 100));
    fan.publish(sized(6, false, 100));
    // No token now: the third sink gets frames 5 and 6 at once, the
    // very same allocations, then live frames after them.
    let late = fan.subscribe(SinkKind::Rtsp, 100);
    assert!(!kf.is_pending());
    fan.publish(sized(7, false, 100));
    let first = late.try_recv().unwrap();
    assert_eq!(first.seq, 5);
    assert!(first.keyframe);
    assert!(Arc::ptr_eq(&first, &forced.try_recv().unwrap()));
    assert_eq!(seqs(&late), vec![6, 7]);
    assert_eq!(seqs(&forced), vec![6, 7]);
    assert_eq!(seqs(&steady), (0..8).collect::<Vec<_>>());
    let j = fan.joins();
    assert_eq!(
        j.forced.load(Ordering::Relaxed),
        2,
        "the first sink took one"
    );
    assert_eq!(j.backlog.load(Ordering::Relaxed), 1);
    // resync starts over the same way.
    late.resync();
    assert_eq!(seqs(&late), vec![5, 6, 7]);
}

#[test]
fn the_backlog_is_bounded_in_bytes() {
    let kf = Arc::new(KeyframeRequest::with_budget(0, ms(1000)));
    let fan = Fanout::new(kf.clone());
    fan.publish(sized(0, true, JOIN_BACKLOG_BYTES / 2));
    fan.publish(sized(1, false, JOIN_BACKLOG_BYTES / 4));
    let a = fan.subscribe(SinkKind::Rtsp, 10);
    assert_eq!(seqs(&a), vec![0, 1]);
    fan.publish(sized(2, false, JOIN_BACKLOG_BYTES / 2));
    // Too much to send at once: the next sink waits for a keyframe,
    // which it asked for.
    let b = fan.subscribe(SinkKind::Rtsp, 10);
    assert!(kf.is_pending());
    assert_eq!(fan.joins().waited.load(Ordering::Relaxed), 1);
    fan.publish(sized(3, false, 10));
    assert!(b.try_recv().is_none());
    fan.publish(sized(4, true, 10));
    assert_eq!(seqs(&b), vec![4]);
    // New parameters: the old GOP cannot start anyone.
    use crate::h264::ParameterSets;
    use crate::media::Fraction;
    fan.set_stream_info(StreamInfo {
        width: 2,
        height: 2,
        fps: Fraction::new(1, 1),
        bitrate_kbps: 1,
        params: ParameterSets::new(vec![0x67, 0x42, 0, 0x1e], vec![0x68, 1]).unwrap(),
    });
    let c = fan.subscribe(SinkKind::Rtsp, 10);
    assert!(c.try_recv().is_none());
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

#[test]
fn drops_are_counted_by_cause() {
    let fan = Fanout::new(Arc::new(KeyframeRequest::default()));
    // A new sink waits for a keyframe: normal.
    let late = fan.subscribe(SinkKind::Rtsp, 100);
    fan.publish(frame(0, false));
    // A slow sink: its queue fills, then it waits for a keyframe.
    let slow = fan.subscribe(SinkKind::Http, 1);
    let down = fan.subscribe(SinkKind::Push, 1);
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
    // Since start, per sink kind.
    let t = fan.totals();
    assert_eq!(t.drops(SinkKind::Rtsp).waiting_for_keyframe, 1);
    assert_eq!(t.drops(SinkKind::Http).too_slow, 2);
    assert_eq!(t.drops(SinkKind::Push).target_down, 2);
    assert_eq!(fan.dropped_total(), 5);
    slow.meter().sent(1000);
    assert_eq!(t.bytes(SinkKind::Http), 1000);
    drop((late, slow, down));
}
