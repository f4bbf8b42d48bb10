//! The capture/encode loop, run on its own thread: take a frame from the
//! source, turn it into H.264 (x264 for raw pictures, after one conversion
//! pass for packed YUV or MJPEG; the camera's own H.264 passes through),
//! publish the result to the fan-out. It never waits on a sink.
//!
//! A camera is reopened when it fails: a capture error, no frame for 2 s or
//! the device vanishing closes it, and it is opened again after a backoff
//! (0.5 s doubling to 10 s). Viewers stay connected meanwhile, see the "no
//! signal" slate ([`crate::slate`]) and get a keyframe as soon as frames
//! come back. The privacy switch closes the camera (its LED goes off) until
//! it is turned off again. When to open, close, retry and send the slate is
//! decided by the pure [`crate::reopen::Policy`]; this loop carries it out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::convert::{self, I420Buffer};
use crate::encode::threads::{EncodeTimer, ThreadPolicy};
use crate::encode::{Encoder, EncoderSettings};
use crate::fanout::{Fanout, KeyframeRequest};
use crate::h264::ParameterSets;
use crate::health::{Health, SourceState};
use crate::media::{EncodedFrame, Fraction, Frame, Image, PixelFormat, StreamInfo};
use crate::reopen::{Action, Policy, SLATE_INTERVAL, SlateReason};
use crate::slate::Slate;
use crate::source::{FrameSource, SourceError, SourceFormat};
use crate::stats::PipelineStats;

pub use crate::reopen::{RETRY_MAX, RETRY_MIN};

/// How often the loop looks at the stop and privacy flags while it waits.
const IDLE_TICK: Duration = Duration::from_millis(50);

/// Why the loop ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Asked to stop (a signal).
    Stopped,
    /// Encoded the requested number of frames.
    FrameLimit,
    /// The source ran out (end of a file).
    EndOfStream,
}

/// What the encoder is set up with, beyond what the source dictates.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub bitrate_kbps: u32,
    pub keyint_seconds: f64,
    pub threads: u32,
}

/// The shared handles the pipeline reports to.
#[derive(Clone)]
pub struct Handles {
    pub fanout: Arc<Fanout>,
    pub stats: Arc<PipelineStats>,
    pub health: Arc<Health>,
    /// Set to stop the loop (checked once per frame).
    pub stop: Arc<AtomicBool>,
    /// Raw pictures for `/snapshot.jpg`, handed over only when asked for.
    pub snapshots: Arc<crate::http::snapshot::Snapshots>,
}

/// Opens a source, again after each failure (a camera).
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, SourceError> + Send>;

/// "0.5 s", "4 s".
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// Where frames come from.
enum Input {
    /// A source that is not reopened (test pattern, file): errors end the run.
    Fixed(Box<dyn FrameSource>),
    /// A camera: reopened with backoff, closed during a privacy pause.
    Reopen {
        open: Opener,
        name: String,
        current: Option<Box<dyn FrameSource>>,
    },
}

/// What turns one captured frame into H.264.
enum CoderKind {
    None,
    X264(Box<Encoder>),
    /// The camera's own H.264: SPS/PPS as last seen in the stream.
    Passthrough {
        params: Option<ParameterSets>,
        seq: u64,
    },
}

/// What came of coding one frame.
enum Coded {
    /// An access unit to publish (shared as is by every sink).
    Frame(Arc<EncodedFrame>),
    /// Nothing goes out this time (an undecodable frame was skipped).
    Skipped,
    /// Nothing goes out until the camera sends SPS/PPS and an IDR.
    AwaitingKeyframe,
}

/// The H.264 side of the loop: x264 with its conversion buffers, or the
/// camera's stream passed through.
struct Coder {
    kind: CoderKind,
    /// The source format the coder is set up for.
    format: Option<SourceFormat>,
    opts: EncodeOptions,
    /// Where the stream's parameters are announced.
    fanout: Arc<Fanout>,
    snapshots: Arc<crate::http::snapshot::Snapshots>,
    /// Reused conversion target for packed YUV and MJPEG.
    i420: I420Buffer,
    /// `threads = 0`: picks x264's thread count from encode times.
    auto: Option<ThreadPolicy>,
    /// A thread count to reopen x264 with at the next keyframe.
    rethread: Option<u32>,
    /// Frames since the last keyframe, and the GOP length.
    since_key: u32,
    keyint: u32,
    stats: Arc<PipelineStats>,
    #[cfg(feature = "mjpeg")]
    mjpeg: convert::MjpegDecoder,
}

impl Coder {
    fn new(opts: &EncodeOptions, handles: &Handles) -> Self {
        Self {
            kind: CoderKind::None,
            format: None,
            opts: opts.clone(),
            fanout: handles.fanout.clone(),
            snapshots: handles.snapshots.clone(),
            i420: I420Buffer::new(),
            auto: None,
            rethread: None,
            since_key: 0,
            keyint: 1,
            stats: handles.stats.clone(),
            #[cfg(feature = "mjpeg")]
            mjpeg: convert::MjpegDecoder::new(),
        }
    }

    fn is_passthrough(&self) -> bool {
        matches!(self.kind, CoderKind::Passthrough { .. })
    }

    /// Sets up x264 (or passthrough) for a source's format, unless it is
    /// already set up for the same one.
    /// An encoder is kept when only the source's pixel format changes but
    /// x264 takes the same input (a YUYV camera and the I420 slate): no new
    /// SPS/PPS for the viewers then.
    fn prepare(&mut self, f: &SourceFormat) -> Result<(), String> {
        let same = |c: &SourceFormat| {
            (c.width, c.height, c.fps) == (f.width, f.height, f.fps)
                && (c.pixel_format == f.pixel_format
                    || (matches!(self.kind, CoderKind::X264(_))
                        && x264_input(c.pixel_format).is_some()
                        && x264_input(c.pixel_format) == x264_input(f.pixel_format)))
        };
        if self.format.as_ref().is_some_and(same) {
            self.format = Some(f.clone());
            return Ok(());
        }
        if f.pixel_format == PixelFormat::H264 {
            log::info!(
                "{}: passing the camera's H.264 through ({}x{} at {} fps); no x264",
                f.description,
                f.width,
                f.height,
                f.fps
            );
            let seq = match &self.kind {
                CoderKind::Passthrough { seq, .. } => *seq,
                _ => 0,
            };
            self.kind = CoderKind::Passthrough { params: None, seq };
            self.format = Some(f.clone());
            return Ok(());
        }
        let Some(input) = x264_input(f.pixel_format) else {
            return Err(format!(
                "{}: {} input is not supported in this build",
                f.description, f.pixel_format
            ));
        };
        let settings = EncoderSettings {
            width: f.width,
            height: f.height,
            fps: f.fps,
            bitrate_kbps: self.opts.bitrate_kbps,
            keyint: keyint_frames(self.opts.keyint_seconds, f.fps),
            threads: self.threads_for(f),
            input,
        };
        self.keyint = settings.keyint;
        // Close the old encoder before opening the new one (memory).
        self.kind = CoderKind::None;
        let encoder = Encoder::open(settings.clone()).map_err(|e| e.to_string())?;
        let params = encoder.parameter_sets().clone();
        log::info!(
            "encoder: x264 {}x{} at {} fps from {}, {} kbit/s, keyframe every {} frames, profile {} level {:.1}, {} thread{}{}",
            settings.width,
            settings.height,
            settings.fps,
            f.pixel_format,
            settings.bitrate_kbps,
            settings.keyint,
            profile_name(params.profile.profile_idc, params.profile.constraints),
            params.profile.level_idc as f64 / 10.0,
            settings.threads,
            if settings.threads == 1 { "" } else { "s" },
            if self.auto.is_some() { " (auto)" } else { "" },
        );
        self.stats
            .set_threads(settings.threads, self.auto.is_some());
        announce(&self.fanout, self.opts.bitrate_kbps, f, params);
        self.kind = CoderKind::X264(Box::new(encoder));
        self.format = Some(f.clone());
        Ok(())
    }

    /// The x264 thread count for a newly opened encoder.
    fn threads_for(&mut self, f: &SourceFormat) -> u32 {
        if self.opts.threads != 0 {
            return self.opts.threads;
        }
        if let Some(n) = self.rethread.take() {
            return n;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let policy = ThreadPolicy::new(f.fps, u32::try_from(cores).unwrap_or(1));
        self.auto.insert(policy).threads()
    }

    /// Reopens x264 with the thread count the policy asked for, when the
    /// frame about to be coded is a keyframe anyway (forced, or the GOP's).
    fn maybe_rethread(&mut self, force: bool) -> Result<(), String> {
        if !matches!(self.kind, CoderKind::X264(_)) || self.rethread.is_none() {
            return Ok(());
        }
        if !force && self.since_key + 1 < self.keyint {
            return Ok(());
        }
        match self.format.take() {
            Some(f) => self.prepare(&f),
            None => Ok(()),
        }
    }

    /// Codes one frame captured at `pts`; `force` makes x264 produce an IDR.
    /// The frame (and so the capture buffer) is given back as soon as it has
    /// been read: after encoding for planar input, after the conversion pass
    /// otherwise.
    fn code(
        &mut self,
        frame: Frame<'_>,
        pts: Duration,
        force: bool,
        description: &str,
    ) -> Result<Coded, String> {
        self.maybe_rethread(force)?;
        match (&mut self.kind, frame.image) {
            (CoderKind::Passthrough { params, seq }, Image::Compressed { data, .. }) => {
                let au = data.to_vec();
                drop(frame);
                let f = match EncodedFrame::from_annex_b(au, pts, *seq) {
                    Ok(f) => f,
                    Err(e) => {
                        log::debug!("{description}: skipped a frame: {e}");
                        return Ok(Coded::Skipped);
                    }
                };
                if f.keyframe {
                    if let Some(ps) = ParameterSets::from_annex_b(f.annex_b()) {
                        if params.as_ref() != Some(&ps) {
                            *params = Some(ps.clone());
                            if let Some(fmt) = &self.format {
                                announce(&self.fanout, self.opts.bitrate_kbps, fmt, ps);
                            }
                        }
                    }
                }
                if params.is_none() {
                    // Nothing can decode before SPS/PPS and an IDR.
                    return Ok(Coded::AwaitingKeyframe);
                }
                *seq += 1;
                Ok(Coded::Frame(Arc::new(f)))
            }
            (CoderKind::X264(enc), image) => {
                let timer = EncodeTimer::start();
                let encoded = match image {
                    // Read in place from the capture buffer; the frame goes
                    // back when this returns.
                    Image::Planar(p) => {
                        self.snapshots.offer(&p);
                        enc.encode(&p, pts, force)
                    }
                    Image::Packed {
                        format,
                        width,
                        height,
                        stride,
                        data,
                    } => {
                        convert::packed_to_i420(
                            format,
                            width,
                            height,
                            stride,
                            data,
                            &mut self.i420,
                        )
                        .map_err(|e| format!("{description}: {e}"))?;
                        drop(frame);
                        self.snapshots.offer(&self.i420.planar());
                        enc.encode(&self.i420.planar(), pts, force)
                    }
                    #[cfg(feature = "mjpeg")]
                    Image::Compressed {
                        format: PixelFormat::Mjpeg,
                        data,
                    } => {
                        if let Err(e) = self.mjpeg.decode(data, &mut self.i420) {
                            log::debug!("{description}: skipped a frame: {e}");
                            return Ok(Coded::Skipped);
                        }
                        drop(frame);
                        self.snapshots.offer(&self.i420.planar());
                        enc.encode(&self.i420.planar(), pts, force)
                    }
                    Image::Compressed { format, .. } => {
                        return Err(format!("{description}: {format} frames cannot go to x264"));
                    }
                };
                let encoded = encoded.map_err(|e| format!("{description}: {e}"))?;
                if let Some(p) = &mut self.auto {
                    let took = timer.elapsed(p.threads());
                    self.rethread = self.rethread.or(p.record(took));
                }
                match encoded {
                    Some(f) => {
                        self.since_key = if f.keyframe { 0 } else { self.since_key + 1 };
                        Ok(Coded::Frame(Arc::new(f)))
                    }
                    None => Ok(Coded::Skipped),
                }
            }
            (_, image) => Err(format!(
                "{description}: no encoder for {:?}",
                std::mem::discriminant(&image)
            )),
        }
    }
}

/// What x264 is fed for a source's pixel format (after conversion), if it
/// can take it at all.
fn x264_input(f: PixelFormat) -> Option<PixelFormat> {
    match f {
        PixelFormat::Nv12 => Some(PixelFormat::Nv12),
        PixelFormat::I420 | PixelFormat::Yuyv | PixelFormat::Uyvy => Some(PixelFormat::I420),
        PixelFormat::Mjpeg if cfg!(feature = "mjpeg") => Some(PixelFormat::I420),
        _ => None,
    }
}

/// Tells every sink the stream's parameters.
fn announce(fanout: &Fanout, bitrate_kbps: u32, f: &SourceFormat, params: ParameterSets) {
    if let Some(old) = fanout.stream_info() {
        if (old.width, old.height) != (f.width, f.height) {
            log::info!(
                "stream: {}x{} from now on (was {}x{}): new SPS/PPS in-band with the next \
                 keyframe and in the SDP of new DESCRIBEs; a player that cannot switch size \
                 mid-stream must reconnect",
                f.width,
                f.height,
                old.width,
                old.height
            );
        }
    }
    fanout.set_stream_info(StreamInfo {
        width: f.width,
        height: f.height,
        fps: f.fps,
        bitrate_kbps,
        params,
    });
}

/// The loop's memory between frames.
struct RunState {
    /// Frames published.
    count: u64,
    /// The source state last reported (one log line per change).
    reported: SourceState,
    last_error: String,
    fault_since: Option<Instant>,
    /// The next frame must be an IDR (after a reopen or a pause).
    force_next: bool,
    /// The privacy pause as last logged.
    paused: bool,
    last_pts: Option<Duration>,
    /// The open source's description, for messages (cloned once per open).
    description: String,
    /// The size the camera last delivered: the slate's size, so viewers
    /// need no new SPS/PPS when the slate comes on.
    last_size: Option<(u32, u32, Fraction)>,
}

impl RunState {
    fn new(reported: SourceState) -> Self {
        Self {
            count: 0,
            reported,
            last_error: String::new(),
            fault_since: None,
            force_next: false,
            paused: false,
            last_pts: None,
            description: String::new(),
            last_size: None,
        }
    }

    /// Keeps presentation times strictly increasing at millisecond
    /// resolution (FLV and most containers count in ms): a camera that falls
    /// behind can hand over a burst of buffers stamped the same instant.
    fn monotonic(&mut self, pts: Duration) -> Duration {
        let pts = match self.last_pts {
            Some(last) if pts < last + Duration::from_millis(1) => last + Duration::from_millis(1),
            _ => pts,
        };
        self.last_pts = Some(pts);
        pts
    }

    /// Reports a source state to the health and remembers it.
    fn report(&mut self, health: &Health, state: SourceState, detail: Option<String>) {
        health.set_source(state, detail);
        self.reported = state;
    }
}

pub struct Pipeline {
    input: Input,
    coder: Coder,
    handles: Handles,
    frame_limit: Option<u64>,
    /// When to open, close, retry, and send the slate (pure; driven here).
    policy: Policy,
    /// The "no signal" card, if enabled ([`Pipeline::with_slate`]).
    slate: Option<Slate>,
}

impl Pipeline {
    /// A pipeline over one source that is never reopened. Opens the encoder
    /// for the source's format and announces the stream's parameters.
    pub fn new(
        source: Box<dyn FrameSource>,
        opts: &EncodeOptions,
        handles: Handles,
        frame_limit: Option<u64>,
    ) -> Result<Self, String> {
        let f = source.format().clone();
        let mut p = Self::with_input(
            Input::Fixed(source),
            true,
            false,
            opts,
            handles,
            frame_limit,
        );
        p.coder.prepare(&f)?;
        Ok(p)
    }

    /// A pipeline over a camera: `open` is called now if `first` is `None`,
    /// and again after every failure, with backoff. A recoverable error
    /// (camera missing, unplugged, stalled) is retried; any other ends the
    /// run.
    pub fn reopening(
        open: Opener,
        first: Option<Box<dyn FrameSource>>,
        name: impl Into<String>,
        opts: &EncodeOptions,
        handles: Handles,
        frame_limit: Option<u64>,
    ) -> Result<Self, String> {
        let format = first.as_ref().map(|s| s.format().clone());
        let mut p = Self::with_input(
            Input::Reopen {
                open,
                name: name.into(),
                current: first,
            },
            format.is_some(),
            true,
            opts,
            handles,
            frame_limit,
        );
        if let Some(f) = format {
            p.coder.prepare(&f)?;
        }
        Ok(p)
    }

    fn with_input(
        input: Input,
        open: bool,
        reopens: bool,
        opts: &EncodeOptions,
        handles: Handles,
        frame_limit: Option<u64>,
    ) -> Self {
        Self {
            input,
            coder: Coder::new(opts, &handles),
            handles,
            frame_limit,
            policy: Policy::new(crate::clock::monotonic_now(), open, reopens),
            slate: None,
        }
    }

    /// While the source is down (missing, unplugged, stalled, paused for
    /// privacy), encode a "no signal" card at about 2 fps, so viewers and
    /// push targets keep getting a stream. Drawn at the size the camera last
    /// delivered, else at `width`x`height`. With no camera at the start, the
    /// card's stream parameters are announced at once (DESCRIBE answers).
    pub fn with_slate(mut self, width: u32, height: u32, fps: Fraction) -> Self {
        self.slate = Some(Slate::new(width, height, fps));
        self.policy = self.policy.with_slate(SLATE_INTERVAL);
        self
    }

    /// Changes the reopen backoff (tests).
    pub fn set_backoff(&mut self, min: Duration, max: Duration) {
        self.policy.set_backoff(min, max);
    }

    /// Runs until stopped, the frame limit, the end of the source, or an error.
    pub fn run(mut self) -> Result<Ended, String> {
        let kf = self.handles.fanout.keyframe_request().clone();
        let mut st = RunState::new(self.handles.health.source());
        loop {
            // A sign of life for the watchdog: each turn of this loop (a
            // frame, a nap while the camera is away or paused, a slate)
            // counts.
            self.handles.health.beat();
            if self.handles.stop.load(Ordering::Relaxed) {
                return Ok(Ended::Stopped);
            }
            let now = crate::clock::monotonic_now();
            let action = self.policy.poll(now, self.handles.health.privacy());
            self.follow_privacy(&mut st);
            match action {
                Action::Read => {}
                Action::Open => {
                    self.open(&mut st, now)?;
                    continue;
                }
                Action::Close => {
                    if let Input::Reopen { current, .. } = &mut self.input {
                        *current = None;
                    }
                    continue;
                }
                Action::Slate { reason, idr } => {
                    self.send_slate(&mut st, &kf, reason, idr)?;
                    self.policy.slate_sent(now);
                    if self.frame_limit.is_some_and(|n| st.count >= n) {
                        return Ok(Ended::FrameLimit);
                    }
                    continue;
                }
                Action::Wait(d) => {
                    std::thread::sleep(d.min(IDLE_TICK));
                    continue;
                }
            }
            let source: &mut Box<dyn FrameSource> = match &mut self.input {
                Input::Fixed(s) => s,
                Input::Reopen {
                    current: Some(s), ..
                } => s,
                Input::Reopen { current: None, .. } => continue,
            };
            if self.coder.is_passthrough()
                && (st.force_next || kf.should_force(crate::clock::monotonic_now()))
            {
                // Keyframes come from the camera: ask it (rate-limited).
                source.request_keyframe();
            }
            if st.description.is_empty() {
                st.description = source.format().description.clone();
            }
            // The frame borrows the source: it is coded (and given back)
            // inside this match; what to do next is decided after it.
            let step = match source.next_frame() {
                Ok(Some(frame)) => {
                    let pts = st.monotonic(frame.pts);
                    let force =
                        !self.coder.is_passthrough() && (st.force_next || kf.should_force(pts));
                    let started = Instant::now();
                    let coded = self.coder.code(frame, pts, force, &st.description)?;
                    Ok((coded, force, started.elapsed()))
                }
                Ok(None) => return Ok(Ended::EndOfStream),
                Err(e) => Err(e),
            };
            let (coded, force, took) = match step {
                Ok(done) => done,
                Err(e) => {
                    self.source_failed(&mut st, e)?;
                    continue;
                }
            };
            self.policy.delivered(crate::clock::monotonic_now());
            match coded {
                Coded::Frame(f) => self.publish(&mut st, f, took, force, true),
                Coded::Skipped => continue,
                Coded::AwaitingKeyframe => {
                    st.force_next = true;
                    continue;
                }
            }
            if self.frame_limit.is_some_and(|n| st.count >= n) {
                return Ok(Ended::FrameLimit);
            }
        }
    }

    /// Logs and reports the privacy pause going on or off (the policy has
    /// already decided what to close and reopen).
    fn follow_privacy(&mut self, st: &mut RunState) {
        let paused = self.policy.paused();
        if paused == st.paused {
            return;
        }
        st.paused = paused;
        let health = &self.handles.health;
        if paused {
            let closed = match &self.input {
                Input::Reopen {
                    current: Some(_),
                    name,
                    ..
                } => format!(", {name} closed"),
                _ => String::new(),
            };
            let slate = if self.slate.is_some() {
                "they see the privacy card"
            } else {
                "they see the last picture"
            };
            log::info!("privacy pause: capture stopped{closed}; viewers stay connected ({slate})");
            st.report(health, SourceState::Paused, None);
        } else {
            log::info!("privacy pause off: resuming capture");
            st.report(health, SourceState::Starting, None);
            st.force_next = true;
        }
    }

    /// Opens the camera (the policy says it is time), or for a fixed
    /// source, resumes reading after the privacy pause.
    fn open(&mut self, st: &mut RunState, now: Duration) -> Result<(), String> {
        let Input::Reopen { open, current, .. } = &mut self.input else {
            self.policy.opened(now);
            st.force_next = true;
            return self.coder.prepare(&self.input_format());
        };
        let health = &self.handles.health;
        match open() {
            Ok(s) => {
                let f = s.format().clone();
                st.description.clear();
                *current = Some(s);
                self.policy.opened(now);
                st.force_next = true;
                st.last_size = Some((f.width, f.height, f.fps));
                log::debug!(
                    "{}: opened, {}x{} at {} fps",
                    f.description,
                    f.width,
                    f.height,
                    f.fps
                );
                self.coder.prepare(&f).inspect_err(|e| {
                    health.set_source(SourceState::Fault, Some(e.clone()));
                })
            }
            Err(e) if e.recoverable => {
                let delay = self.policy.open_failed(now);
                st.fault_since.get_or_insert_with(Instant::now);
                let detail = format!("{e}, retrying in {}", secs(delay));
                if st.reported != SourceState::Fault || e.message != st.last_error {
                    log::warn!("{detail}");
                } else {
                    log::debug!("{detail}");
                }
                st.report(health, SourceState::Fault, Some(detail));
                st.last_error = e.message;
                Ok(())
            }
            Err(e) => {
                health.set_source(SourceState::Fault, Some(e.message.clone()));
                Err(e.message)
            }
        }
    }

    /// The fixed source's format (a test pattern after the pause).
    fn input_format(&self) -> SourceFormat {
        match &self.input {
            Input::Fixed(s) => s.format().clone(),
            Input::Reopen { current, .. } => current
                .as_ref()
                .map(|s| s.format().clone())
                .or_else(|| self.coder.format.clone())
                .unwrap_or_else(|| SourceFormat {
                    width: 16,
                    height: 16,
                    fps: Fraction::new(1, 1),
                    pixel_format: PixelFormat::I420,
                    description: String::new(),
                }),
        }
    }

    /// Encodes and publishes one slate frame.
    fn send_slate(
        &mut self,
        st: &mut RunState,
        kf: &KeyframeRequest,
        reason: SlateReason,
        idr: bool,
    ) -> Result<(), String> {
        let Some(slate) = &mut self.slate else {
            return Ok(());
        };
        let fixed = match &self.input {
            Input::Fixed(s) => Some(s.format()),
            Input::Reopen { .. } => None,
        };
        let size = st
            .last_size
            .or_else(|| fixed.map(|f| (f.width, f.height, f.fps)));
        if let Some((w, h, fps)) = size {
            let f = slate.format();
            if (f.width, f.height, f.fps) != (w, h, fps) {
                *slate = Slate::new(w, h, fps);
            }
        }
        let format = slate.format().clone();
        self.coder.prepare(&format)?;
        slate.draw(reason, SystemTime::now());
        let pts = st.monotonic(crate::clock::monotonic_now());
        let force = idr || kf.should_force(pts);
        let frame = slate.frame(pts).map_err(|e| e.message)?;
        let started = Instant::now();
        let coded = self.coder.code(frame, pts, force, &format.description)?;
        if let Coded::Frame(f) = coded {
            self.publish(st, f, started.elapsed(), force, false);
        }
        // The camera's first frame after this is an IDR again.
        st.force_next = true;
        Ok(())
    }

    /// A camera that failed in a way waiting may fix is closed and reopened
    /// after the backoff; anything else ends the run with the message.
    fn source_failed(&mut self, st: &mut RunState, e: SourceError) -> Result<(), String> {
        let health = &self.handles.health;
        if let Input::Reopen { current, .. } = &mut self.input {
            if e.recoverable {
                *current = None;
                self.handles
                    .stats
                    .source_restarts
                    .fetch_add(1, Ordering::Relaxed);
                let delay = self.policy.failed(crate::clock::monotonic_now());
                st.fault_since = Some(Instant::now());
                let detail = format!("{e}, retrying in {}", secs(delay));
                log::warn!("{detail}");
                st.report(health, SourceState::Fault, Some(detail));
                st.last_error = e.message;
                return Ok(());
            }
        }
        let msg = if e.message.starts_with(&st.description) {
            e.message
        } else {
            format!("{}: {}", st.description, e.message)
        };
        health.set_source(SourceState::Fault, Some(msg.clone()));
        Err(msg)
    }

    /// Publishes a coded frame; `from_source`: a camera frame (not the
    /// slate), which records that frames are flowing.
    fn publish(
        &mut self,
        st: &mut RunState,
        encoded: Arc<EncodedFrame>,
        took: Duration,
        forced: bool,
        from_source: bool,
    ) {
        if from_source && (forced || encoded.keyframe) {
            st.force_next = false;
        }
        if encoded.keyframe {
            // Before publishing: a sink subscribing now gets this frame.
            self.handles.fanout.keyframe_request().natural_keyframe();
        }
        self.handles
            .stats
            .record(encoded.annex_b().len(), took, encoded.keyframe, forced);
        self.handles.fanout.publish(encoded);
        st.count += 1;
        if !from_source || st.reported == SourceState::Delivering {
            return;
        }
        match (st.reported, st.fault_since.take()) {
            (SourceState::Fault, Some(t)) => {
                log::info!(
                    "{}: frames again after {}",
                    st.description,
                    secs(t.elapsed())
                )
            }
            (SourceState::Paused | SourceState::Starting, _) if st.count > 1 => {
                log::info!("{}: frames again", st.description)
            }
            _ => {}
        }
        st.report(&self.handles.health, SourceState::Delivering, None);
    }
}

/// Frames between keyframes for an interval in seconds.
pub fn keyint_frames(seconds: f64, fps: Fraction) -> u32 {
    ((seconds * fps.as_f64()).round() as u32).max(1)
}

fn profile_name(idc: u8, constraints: u8) -> &'static str {
    match (idc, constraints & 0x40 != 0) {
        (66, true) => "Constrained Baseline",
        (66, false) => "Baseline",
        (77, _) => "Main",
        (100, _) => "High",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::KeyframeRequest;
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
                return Err(SourceError::recoverable("fake camera gone"));
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

    #[test]
    fn reopens_a_failing_camera_and_resumes_with_a_keyframe() {
        let counters = Arc::new(Counters::default());
        let (h, sub) = handles();
        let health = h.health.clone();
        let attempts = Arc::new(AtomicUsize::new(0));
        let open: Opener = {
            let counters = counters.clone();
            let attempts = attempts.clone();
            Box::new(move || match attempts.fetch_add(1, Ordering::Relaxed) {
                // Fails after 10 frames, twice; one reopen finds nothing.
                0 | 1 => {
                    Ok(Box::new(FakeCamera::yuyv(&counters, Some(10))) as Box<dyn FrameSource>)
                }
                2 => Err(SourceError::recoverable("camera /dev/fake is not there")),
                _ => Ok(Box::new(FakeCamera::yuyv(&counters, None))),
            })
        };
        let stats = h.stats.clone();
        let mut p =
            Pipeline::reopening(open, None, "camera /dev/fake", &opts(), h, Some(35)).unwrap();
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
        let attempts = Arc::new(AtomicUsize::new(0));
        let open: Opener = {
            let counters = counters.clone();
            let attempts = attempts.clone();
            Box::new(move || {
                let (w, h) = if attempts.fetch_add(1, Ordering::Relaxed) == 0 {
                    (64, 48)
                } else {
                    (32, 24)
                };
                Ok(Box::new(FakeCamera::sized(&counters, Some(5), w, h)) as Box<dyn FrameSource>)
            })
        };
        let mut p =
            Pipeline::reopening(open, None, "camera /dev/fake", &opts(), h, Some(8)).unwrap();
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
        let attempts = Arc::new(AtomicUsize::new(0));
        let open: Opener =
            {
                let counters = counters.clone();
                let attempts = attempts.clone();
                Box::new(move || match attempts.fetch_add(1, Ordering::Relaxed) {
                    // Missing twice, then there at another size than the
                    // configured one for 5 frames, then gone for good.
                    2 => Ok(Box::new(FakeCamera::sized(&counters, Some(5), 32, 24))
                        as Box<dyn FrameSource>),
                    _ => Err(SourceError::recoverable("camera /dev/fake is not there")),
                })
            };
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
        let open: Opener = Box::new(|| Err(SourceError::fatal("camera /dev/x: permission denied")));
        let p = Pipeline::reopening(open, None, "camera /dev/x", &opts(), h, None).unwrap();
        let e = p.run().unwrap_err();
        assert!(e.contains("permission denied"), "{e}");
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
                let p = crate::media::Planar::from_contiguous(PixelFormat::I420, 64, 48, 64, &img)
                    .unwrap();
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
        let open: Opener = Box::new(|| Err(SourceError::fatal("not reopened in this test")));
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
}
