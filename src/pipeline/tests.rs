use super::*;
use crate::encode::{Encoder, EncoderSettings};
use crate::fanout::KeyframeRequest;
use crate::h264::ParameterSets;
use crate::media::Image;
use crate::reopen::{RETRY_MAX, RETRY_MIN};
use crate::source::v4l2::{CameraError, CameraErrorKind};

/// What opening a camera that is not plugged in gives.
fn not_there() -> SourceError {
    CameraError::open("/dev/fake", std::io::Error::from_raw_os_error(libc::ENOENT)).into()
}
use crate::source::Pace;
use crate::source::testsrc::TestPattern;

#[test]
fn encodes_the_test_pattern_into_the_fanout() {
    let fanout = Fanout::new(Arc::new(KeyframeRequest::default()));
    let sub = fanout.subscribe(crate::fanout::SinkKind::Rtsp, 100);
    let src = TestPattern::new(160, 120, Fraction::new(30, 1), Pace::Asap).unwrap();
    let stats = Arc::new(PipelineStats::default());
    let health = Health::new();
    let p = Pipeline::new(
        Box::new(src),
        &EncodeOptions {
            bitrate_kbps: 300,
            keyint_seconds: 0.5,
            threads: 1,
        },
        Handles {
            fanout: fanout.clone(),
            stats: stats.clone(),
            health: health.clone(),
            stop: Arc::default(),
            snapshots: Arc::default(),
        },
        Some(40),
    )
    .unwrap();
    assert_eq!(health.source(), SourceState::Starting);
    assert_eq!(fanout.stream_info().unwrap().width, 160);
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let mut frames = Vec::new();
    while let Some(f) = sub.try_recv() {
        frames.push(f);
    }
    assert_eq!(frames.len(), 40);
    assert!(frames[0].keyframe);
    let keys: Vec<u64> = frames
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.seq)
        .collect();
    assert_eq!(keys, vec![0, 15, 30]);
    assert!(frames.windows(2).all(|w| w[1].pts > w[0].pts));
    assert_eq!(stats.frames_total.load(Ordering::Relaxed), 40);
    assert_eq!(health.source(), SourceState::Delivering);
}

#[test]
fn encode_time_excludes_waiting_for_the_source() {
    // At 5 fps the loop waits 200 ms for each frame; a 64x48 encode
    // takes about a millisecond. The stats must show the encode only.
    let fanout = Fanout::new(Arc::new(KeyframeRequest::default()));
    let stats = Arc::new(PipelineStats::default());
    let src = TestPattern::new(64, 48, Fraction::new(5, 1), Pace::Realtime).unwrap();
    let p = Pipeline::new(
        Box::new(src),
        &EncodeOptions {
            bitrate_kbps: 100,
            keyint_seconds: 1.0,
            threads: 1,
        },
        Handles {
            fanout,
            stats: stats.clone(),
            health: Health::new(),
            stop: Arc::default(),
            snapshots: Arc::default(),
        },
        Some(4),
    )
    .unwrap();
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let w = stats.take_window();
    assert_eq!(w.frames, 4);
    assert!(
        w.encode_p50 < Duration::from_millis(150),
        "encode p50 {:?} includes the wait for frames",
        w.encode_p50
    );
}

#[test]
fn keyint_rounds_and_is_at_least_one() {
    assert_eq!(keyint_frames(2.0, Fraction::new(30, 1)), 60);
    assert_eq!(keyint_frames(0.01, Fraction::new(30, 1)), 1);
    assert_eq!(keyint_frames(1.0, Fraction::new(30000, 1001)), 30);
}

#[test]
fn backoff_doubles_to_the_cap_and_resets() {
    let mut b = crate::backoff::Backoff::new(RETRY_MIN, RETRY_MAX);
    let waits: Vec<f64> = (0..7).map(|_| b.next_delay().as_secs_f64()).collect();
    assert_eq!(waits, vec![0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
    b.reset();
    assert_eq!(b.next_delay(), RETRY_MIN);
    assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
    assert_eq!(secs(Duration::from_secs(4)), "4 s");
}

use crate::media::{Frame, Release, ReleaseBuffer};
use std::sync::atomic::AtomicUsize;

/// What the fake cameras saw.
#[derive(Default)]
struct Counters {
    opened: AtomicUsize,
    closed: AtomicUsize,
    released: AtomicUsize,
    keyframe_requests: AtomicUsize,
}

/// The buffer-return side of a fake camera.
struct Returner {
    held: bool,
    counters: Arc<Counters>,
}

impl ReleaseBuffer for Returner {
    fn release(&mut self) {
        self.held = false;
        self.counters.released.fetch_add(1, Ordering::Relaxed);
    }
}

/// A camera delivering YUYV (or given compressed frames), failing after
/// `fail_after` frames like an unplugged one.
struct FakeCamera {
    format: SourceFormat,
    buf: Vec<u8>,
    /// Compressed frames to hand out instead of YUYV, cycled.
    compressed: Vec<Vec<u8>>,
    next_compressed: usize,
    n: u64,
    fail_after: Option<u64>,
    ret: Returner,
    pace: Duration,
}

impl FakeCamera {
    fn yuyv(counters: &Arc<Counters>, fail_after: Option<u64>) -> Self {
        Self::sized(counters, fail_after, 64, 48)
    }

    fn sized(counters: &Arc<Counters>, fail_after: Option<u64>, w: u32, h: u32) -> Self {
        counters.opened.fetch_add(1, Ordering::Relaxed);
        let mut buf = vec![0u8; (w * h * 2) as usize];
        fastrand::Rng::with_seed(1).fill(&mut buf);
        Self {
            format: SourceFormat {
                width: w,
                height: h,
                fps: Fraction::new(25, 1),
                pixel_format: PixelFormat::Yuyv,
                description: "fake camera".into(),
            },
            buf,
            compressed: Vec::new(),
            next_compressed: 0,
            n: 0,
            fail_after,
            ret: Returner {
                held: false,
                counters: counters.clone(),
            },
            pace: Duration::ZERO,
        }
    }
}

impl FrameSource for FakeCamera {
    fn format(&self) -> &SourceFormat {
        &self.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        assert!(
            !self.ret.held,
            "the previous frame's buffer was not given back before the next"
        );
        if self.fail_after.is_some_and(|n| self.n >= n) {
            return Err(CameraError::new("/dev/fake", CameraErrorKind::Gone).into());
        }
        std::thread::sleep(self.pace);
        let pts = crate::clock::monotonic_now();
        self.n += 1;
        self.ret.held = true;
        let image = if self.compressed.is_empty() {
            Image::Packed {
                format: PixelFormat::Yuyv,
                width: self.format.width,
                height: self.format.height,
                stride: self.format.width as usize * 2,
                data: &self.buf,
            }
        } else {
            let i = self.next_compressed % self.compressed.len();
            self.next_compressed += 1;
            Image::Compressed {
                format: PixelFormat::H264,
                data: &self.compressed[i],
            }
        };
        Ok(Some(Frame {
            pts,
            image,
            release: Release::new(&mut self.ret),
        }))
    }

    fn request_keyframe(&mut self) {
        self.ret
            .counters
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        // The camera's next frame is its IDR (the first one given).
        self.next_compressed = 0;
    }
}

impl Drop for FakeCamera {
    fn drop(&mut self) {
        self.ret.counters.closed.fetch_add(1, Ordering::Relaxed);
    }
}

fn handles() -> (Handles, crate::fanout::Subscription) {
    let fanout = Fanout::new(Arc::new(KeyframeRequest::default()));
    let sub = fanout.subscribe(crate::fanout::SinkKind::Rtsp, 1000);
    (
        Handles {
            fanout,
            stats: Arc::new(PipelineStats::default()),
            health: Health::new(),
            stop: Arc::default(),
            snapshots: Arc::default(),
        },
        sub,
    )
}

fn opts() -> EncodeOptions {
    EncodeOptions {
        bitrate_kbps: 200,
        keyint_seconds: 100.0,
        threads: 1,
    }
}

fn drain(sub: &crate::fanout::Subscription) -> Vec<Arc<EncodedFrame>> {
    let mut v = Vec::new();
    while let Some(f) = sub.try_recv() {
        v.push(f);
    }
    v
}

type Opened = Result<Box<dyn FrameSource>, SourceError>;

/// An opener that asks `script` what each attempt finds (attempt 0
/// first), with the counters its cameras report to; and the attempts made.
fn scripted(
    counters: &Arc<Counters>,
    script: impl Fn(usize, &Arc<Counters>) -> Opened + Send + 'static,
) -> (Opener, Arc<AtomicUsize>) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let open: Opener = {
        let (counters, attempts) = (counters.clone(), attempts.clone());
        Box::new(move || script(attempts.fetch_add(1, Ordering::Relaxed), &counters))
    };
    (open, attempts)
}

#[test]
fn reopens_a_failing_camera_and_resumes_with_a_keyframe() {
    let counters = Arc::new(Counters::default());
    let (h, sub) = handles();
    let health = h.health.clone();
    let (open, attempts) = scripted(&counters, |n, counters| match n {
        // Fails after 10 frames, twice; one reopen finds nothing.
        0 | 1 => Ok(Box::new(FakeCamera::yuyv(counters, Some(10)))),
        2 => Err(not_there()),
        _ => Ok(Box::new(FakeCamera::yuyv(counters, None))),
    });
    let stats = h.stats.clone();
    let mut p = Pipeline::reopening(open, None, "camera /dev/fake", &opts(), h, Some(35)).unwrap();
    p.set_backoff(Duration::from_millis(5), Duration::from_millis(20));
    assert!(p.handles.fanout.stream_info().is_none(), "nothing open yet");
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let frames = drain(&sub);
    assert_eq!(frames.len(), 35);
    let keys: Vec<u64> = frames
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.seq)
        .collect();
    assert_eq!(keys, vec![0, 10, 20], "an IDR first and after each reopen");
    assert_eq!(attempts.load(Ordering::Relaxed), 4);
    assert_eq!(counters.opened.load(Ordering::Relaxed), 3);
    let restarts = stats.source_restarts.load(Ordering::Relaxed);
    assert_eq!(restarts, 2, "two failures of a running camera");
    // Two failed cameras closed by the pipeline, the last one at the end.
    assert_eq!(counters.closed.load(Ordering::Relaxed), 3);
    // Every frame's buffer went back (the converted ones before encoding).
    assert_eq!(counters.released.load(Ordering::Relaxed), 35);
    assert_eq!(health.source(), SourceState::Delivering);
    let info = frames[0].parameter_sets().unwrap();
    assert_eq!(info.profile.profile_idc, 66);
}

#[test]
fn a_camera_back_with_another_size_gets_a_new_encoder() {
    let counters = Arc::new(Counters::default());
    let (h, sub) = handles();
    let fanout = h.fanout.clone();
    let (open, _) = scripted(&counters, |n, counters| {
        let (w, h) = if n == 0 { (64, 48) } else { (32, 24) };
        Ok(Box::new(FakeCamera::sized(counters, Some(5), w, h)))
    });
    let mut p = Pipeline::reopening(open, None, "camera /dev/fake", &opts(), h, Some(8)).unwrap();
    p.set_backoff(Duration::from_millis(1), Duration::from_millis(2));
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let frames = drain(&sub);
    assert_eq!(frames.len(), 8);
    assert!(frames[5].keyframe);
    let info = fanout.stream_info().unwrap();
    assert_eq!((info.width, info.height), (32, 24), "stream info follows");
    assert_eq!(
        frames[5].parameter_sets().unwrap(),
        info.params,
        "new SPS/PPS announced"
    );
    assert_ne!(frames[0].parameter_sets().unwrap(), info.params);
}

#[test]
fn the_slate_covers_a_missing_camera_and_follows_its_size() {
    let counters = Arc::new(Counters::default());
    let (h, sub) = handles();
    let fanout = h.fanout.clone();
    let health = h.health.clone();
    let (open, attempts) = scripted(&counters, |n, counters| match n {
        // Missing twice, then there at another size than the configured
        // one for 5 frames, then gone for good.
        2 => Ok(Box::new(FakeCamera::sized(counters, Some(5), 32, 24))),
        _ => Err(not_there()),
    });
    let mut p = Pipeline::reopening(open, None, "camera /dev/fake", &opts(), h, Some(7))
        .unwrap()
        .with_slate(64, 48, Fraction::new(25, 1));
    p.set_backoff(Duration::from_millis(100), Duration::from_millis(100));
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let frames = drain(&sub);
    assert_eq!(frames.len(), 7);
    let keys: Vec<usize> = (0..7).filter(|&i| frames[i].keyframe).collect();
    // The slate at once (IDR), the camera's IDR, the slate again (IDR).
    assert_eq!(
        keys,
        vec![0, 1, 6],
        "{:?}",
        frames.iter().map(|f| f.pts).collect::<Vec<_>>()
    );
    let slate_ps = frames[0].parameter_sets().unwrap();
    let camera_ps = frames[1].parameter_sets().unwrap();
    assert_ne!(slate_ps, camera_ps, "a new SPS for the camera's size");
    assert_eq!(
        frames[6].parameter_sets().unwrap(),
        camera_ps,
        "the slate takes the camera's size: no new SPS"
    );
    let info = fanout.stream_info().unwrap();
    assert_eq!((info.width, info.height), (32, 24));
    assert_eq!(health.source(), SourceState::Fault);
    assert!(attempts.load(Ordering::Relaxed) >= 3);
}

#[test]
fn a_fatal_error_ends_the_run_with_the_message() {
    let (h, _sub) = handles();
    let health = h.health.clone();
    let open: Opener = Box::new(|| {
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        Err(CameraError::open("/dev/x", denied).into())
    });
    let p = Pipeline::reopening(open, None, "camera /dev/x", &opts(), h, None).unwrap();
    let e = p.run().unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    assert!(matches!(e.kind(), PipelineErrorKind::Source(_)), "{e:?}");
    assert_eq!(health.source(), SourceState::Fault);
}

#[test]
fn privacy_pause_closes_the_camera_and_resumes_with_a_keyframe() {
    let counters = Arc::new(Counters::default());
    let (h, sub) = handles();
    let health = h.health.clone();
    let stop = h.stop.clone();
    let open: Opener = {
        let counters = counters.clone();
        Box::new(move || {
            let mut c = FakeCamera::yuyv(&counters, None);
            c.pace = Duration::from_millis(5);
            Ok(Box::new(c) as Box<dyn FrameSource>)
        })
    };
    let p = Pipeline::reopening(open, None, "camera /dev/fake", &opts(), h, None).unwrap();
    let thread = std::thread::spawn(move || p.run());
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for("frames", &|| sub.queued() >= 5);
    health.set_privacy(true);
    wait_for("the pause", &|| health.source() == SourceState::Paused);
    assert_eq!(counters.closed.load(Ordering::Relaxed), 1, "camera closed");
    let before = drain(&sub).len();
    std::thread::sleep(Duration::from_millis(100));
    assert!(drain(&sub).is_empty(), "no frames while paused");
    health.set_privacy(false);
    wait_for("frames again", &|| sub.queued() >= 3);
    assert_eq!(health.source(), SourceState::Delivering);
    assert_eq!(counters.opened.load(Ordering::Relaxed), 2, "reopened");
    let after = drain(&sub);
    assert!(after[0].keyframe, "first frame after the pause is an IDR");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(thread.join().unwrap().unwrap(), Ended::Stopped);
    assert!(before >= 5);
}

/// A camera's H.264: one IDR (with SPS/PPS) then P frames.
fn camera_h264() -> (Vec<Vec<u8>>, ParameterSets) {
    let mut enc = Encoder::open(EncoderSettings {
        width: 64,
        height: 48,
        fps: Fraction::new(25, 1),
        bitrate_kbps: 200,
        keyint: 250,
        threads: 1,
        input: PixelFormat::I420,
    })
    .unwrap();
    let mut img = vec![100u8; 64 * 48 * 3 / 2];
    let aus: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            img[i as usize * 50] = i.wrapping_mul(40);
            let p =
                crate::media::Planar::from_contiguous(PixelFormat::I420, 64, 48, 64, &img).unwrap();
            enc.encode(&p, Duration::from_millis(i as u64 * 40), false)
                .unwrap()
                .unwrap()
                .annex_b()
                .to_vec()
        })
        .collect();
    (aus, enc.parameter_sets().clone())
}

/// A pipeline over a fake H.264 camera whose stream starts mid-GOP
/// (three frames before the next IDR), never reopened.
fn h264_camera_pipeline(
    aus: &[Vec<u8>],
    counters: &Arc<Counters>,
    h: Handles,
    frames: u64,
) -> Pipeline {
    let mut cam = FakeCamera::yuyv(counters, None);
    cam.format.pixel_format = PixelFormat::H264;
    cam.compressed = aus.to_vec();
    cam.next_compressed = 3;
    let open: Opener = Box::new(|| {
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        Err(CameraError::open("/dev/fake", denied).into())
    });
    Pipeline::reopening(
        open,
        Some(Box::new(cam)),
        "camera /dev/fake",
        &opts(),
        h,
        Some(frames),
    )
    .unwrap()
}

#[test]
fn camera_h264_passes_through_with_its_parameter_sets() {
    let (aus, params) = camera_h264();
    let counters = Arc::new(Counters::default());
    let (h, sub) = handles();
    let fanout = h.fanout.clone();
    // The camera is mid-GOP; the viewer waiting for a keyframe makes the
    // pipeline ask the camera for one, and nothing before it goes out.
    let p = h264_camera_pipeline(&aus, &counters, h, 10);
    assert!(fanout.stream_info().is_none(), "known only from the stream");
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let frames = drain(&sub);
    assert_eq!(frames.len(), 10);
    assert!(frames[0].keyframe, "starts at the camera's IDR");
    assert!(counters.keyframe_requests.load(Ordering::Relaxed) >= 1);
    // Byte for byte what the camera sent: no re-encoding.
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.annex_b(), &aus[i % aus.len()][..], "frame {i}");
    }
    let info = fanout.stream_info().unwrap();
    assert_eq!(info.params, params);
    assert_eq!((info.width, info.height), (64, 48));
}

#[test]
fn camera_h264_frames_before_the_first_idr_are_dropped() {
    let (aus, _) = camera_h264();
    let counters = Arc::new(Counters::default());
    // No sink has asked for a keyframe.
    let fanout = Fanout::new(Arc::new(KeyframeRequest::default()));
    let h = Handles {
        fanout: fanout.clone(),
        stats: Arc::new(PipelineStats::default()),
        health: Health::new(),
        stop: Arc::default(),
        snapshots: Arc::default(),
    };
    let p = h264_camera_pipeline(&aus, &counters, h, 4);
    let sub = fanout.subscribe(crate::fanout::SinkKind::Rtsp, 100);
    // The subscription asked for a keyframe: clear that, to see the
    // pipeline ask by itself when the stream starts mid-GOP.
    fanout.keyframe_request().take();
    assert_eq!(p.run().unwrap(), Ended::FrameLimit);
    let frames = drain(&sub);
    assert!(frames[0].keyframe);
    assert_eq!(frames[0].annex_b(), &aus[0][..]);
    assert_eq!(counters.keyframe_requests.load(Ordering::Relaxed), 1);
    // One P frame was captured and dropped before the IDR.
    assert_eq!(counters.released.load(Ordering::Relaxed), 5);
}
