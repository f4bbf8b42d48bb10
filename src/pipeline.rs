//! The capture/encode loop, run on its own thread: take a frame from the
//! source, turn it into H.264 (x264 for raw pictures, after one conversion
//! pass for packed YUV or MJPEG; the camera's own H.264 passes through),
//! publish the result to the fan-out. It never waits on a sink.
//!
//! A camera is reopened when it fails: a capture error, no frame for 2 s or
//! the device vanishing closes it, and it is opened again after a backoff
//! (0.5 s doubling to 10 s). Viewers stay connected meanwhile and get a
//! keyframe as soon as frames come back. The privacy switch closes the
//! camera (its LED goes off) until it is turned off again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::convert::{self, I420Buffer};
use crate::encode::{Encoder, EncoderSettings};
use crate::fanout::{Fanout, KeyframePacer};
use crate::h264::ParameterSets;
use crate::health::{Health, SourceState};
use crate::media::{EncodedFrame, Fraction, Frame, Image, PixelFormat, StreamInfo};
use crate::source::{FrameSource, SourceError, SourceFormat};
use crate::stats::PipelineStats;

/// Forced keyframes are at most this frequent, however many sinks ask.
pub const MIN_FORCED_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// First wait before reopening a failed camera. A USB camera that glitched
/// usually re-enumerates within a second, so the first retry comes quickly.
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest wait between reopen attempts: a camera plugged in later is
/// picked up within 10 s, while a missing one costs one attempt (and at most
/// one debug log line) per 10 s.
pub const RETRY_MAX: Duration = Duration::from_secs(10);

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
            #[cfg(feature = "mjpeg")]
            mjpeg: convert::MjpegDecoder::new(),
        }
    }

    fn is_passthrough(&self) -> bool {
        matches!(self.kind, CoderKind::Passthrough { .. })
    }

    /// Sets up x264 (or passthrough) for a source's format, unless it is
    /// already set up for the same one.
    fn prepare(&mut self, f: &SourceFormat) -> Result<(), String> {
        if self.format.as_ref().is_some_and(|c| {
            (c.width, c.height, c.fps, c.pixel_format) == (f.width, f.height, f.fps, f.pixel_format)
        }) {
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
        let input = match f.pixel_format {
            PixelFormat::Nv12 => PixelFormat::Nv12,
            PixelFormat::I420 | PixelFormat::Yuyv | PixelFormat::Uyvy => PixelFormat::I420,
            PixelFormat::Mjpeg if cfg!(feature = "mjpeg") => PixelFormat::I420,
            other => {
                return Err(format!(
                    "{}: {other} input is not supported in this build",
                    f.description
                ));
            }
        };
        let settings = EncoderSettings {
            width: f.width,
            height: f.height,
            fps: f.fps,
            bitrate_kbps: self.opts.bitrate_kbps,
            keyint: keyint_frames(self.opts.keyint_seconds, f.fps),
            threads: self.opts.threads,
            input,
        };
        // Close the old encoder before opening the new one (memory).
        self.kind = CoderKind::None;
        let encoder = Encoder::open(settings.clone()).map_err(|e| e.to_string())?;
        let params = encoder.parameter_sets().clone();
        log::info!(
            "encoder: x264 {}x{} at {} fps from {}, {} kbit/s, keyframe every {} frames, profile {} level {:.1}, {} threads",
            settings.width,
            settings.height,
            settings.fps,
            f.pixel_format,
            settings.bitrate_kbps,
            settings.keyint,
            profile_name(params.profile.profile_idc, params.profile.constraints),
            params.profile.level_idc as f64 / 10.0,
            if settings.threads == 0 {
                "auto".to_string()
            } else {
                settings.threads.to_string()
            },
        );
        announce(&self.fanout, self.opts.bitrate_kbps, f, params);
        self.kind = CoderKind::X264(Box::new(encoder));
        self.format = Some(f.clone());
        Ok(())
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
                match encoded.map_err(|e| format!("{description}: {e}"))? {
                    Some(f) => Ok(Coded::Frame(Arc::new(f))),
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

/// Tells every sink the stream's parameters.
fn announce(fanout: &Fanout, bitrate_kbps: u32, f: &SourceFormat, params: ParameterSets) {
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
    /// When a closed camera may be opened again.
    retry_at: Instant,
    fault_since: Option<Instant>,
    opened_at: Instant,
    /// The next frame must be an IDR (after a reopen or a pause).
    force_next: bool,
    paused: bool,
    last_pts: Option<Duration>,
    /// The open source's description, for messages (cloned once per open).
    description: String,
}

impl RunState {
    fn new(reported: SourceState) -> Self {
        let now = Instant::now();
        Self {
            count: 0,
            reported,
            last_error: String::new(),
            retry_at: now,
            fault_since: None,
            opened_at: now,
            force_next: false,
            paused: false,
            last_pts: None,
            description: String::new(),
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
    pacer: KeyframePacer,
    backoff: Backoff,
}

/// Sleeps until `until`, at most one idle tick (the loop then looks at the
/// stop and privacy flags again).
fn nap_until(until: Instant) {
    let now = Instant::now();
    if until > now {
        std::thread::sleep((until - now).min(IDLE_TICK));
    }
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
        let mut p = Self::with_input(Input::Fixed(source), opts, handles, frame_limit);
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
        opts: &EncodeOptions,
        handles: Handles,
        frame_limit: Option<u64>,
    ) -> Self {
        Self {
            input,
            coder: Coder::new(opts, &handles),
            handles,
            frame_limit,
            pacer: KeyframePacer::new(MIN_FORCED_KEYFRAME_INTERVAL),
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
        }
    }

    /// Changes the reopen backoff (tests).
    pub fn set_backoff(&mut self, min: Duration, max: Duration) {
        self.backoff = Backoff::new(min, max);
    }

    /// Runs until stopped, the frame limit, the end of the source, or an error.
    pub fn run(mut self) -> Result<Ended, String> {
        let kf = self.handles.fanout.keyframe_request().clone();
        let mut st = RunState::new(self.handles.health.source());
        loop {
            if self.handles.stop.load(Ordering::Relaxed) {
                return Ok(Ended::Stopped);
            }
            if self.privacy(&mut st) || !self.ensure_open(&mut st)? {
                continue;
            }
            let source: &mut Box<dyn FrameSource> = match &mut self.input {
                Input::Fixed(s) => s,
                Input::Reopen {
                    current: Some(s), ..
                } => s,
                Input::Reopen { current: None, .. } => continue,
            };
            if self.coder.is_passthrough()
                && (st.force_next || self.pacer.should_force(&kf, crate::clock::monotonic_now()))
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
                    let force = !self.coder.is_passthrough()
                        && (st.force_next || self.pacer.should_force(&kf, pts));
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
            match coded {
                Coded::Frame(f) => self.publish(&mut st, f, took, force),
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

    /// Follows the privacy switch: closes the camera when it goes on and
    /// marks a fresh start when it goes off. Returns whether paused.
    fn privacy(&mut self, st: &mut RunState) -> bool {
        let health = &self.handles.health;
        if health.privacy() {
            if !st.paused {
                st.paused = true;
                let closed = match &mut self.input {
                    Input::Reopen { current, name, .. } => {
                        current.take().map(|_| format!(", {name} closed"))
                    }
                    Input::Fixed(_) => None,
                };
                log::info!(
                    "privacy pause: capture stopped{}; viewers stay connected",
                    closed.unwrap_or_default()
                );
                st.report(health, SourceState::Paused, None);
            }
            std::thread::sleep(IDLE_TICK);
            return true;
        }
        if st.paused {
            st.paused = false;
            log::info!("privacy pause off: resuming capture");
            st.report(health, SourceState::Starting, None);
            st.force_next = true;
            st.retry_at = Instant::now();
            self.backoff.reset();
        }
        false
    }

    /// Opens the camera if it is closed and its retry time has come.
    /// Returns whether a source is ready to read.
    fn ensure_open(&mut self, st: &mut RunState) -> Result<bool, String> {
        let Input::Reopen { open, current, .. } = &mut self.input else {
            return Ok(true);
        };
        if current.is_some() {
            return Ok(true);
        }
        if Instant::now() < st.retry_at {
            nap_until(st.retry_at);
            return Ok(false);
        }
        let health = &self.handles.health;
        match open() {
            Ok(s) => {
                let f = s.format().clone();
                st.description.clear();
                *current = Some(s);
                st.opened_at = Instant::now();
                st.force_next = true;
                log::debug!(
                    "{}: opened, {}x{} at {} fps",
                    f.description,
                    f.width,
                    f.height,
                    f.fps
                );
                self.coder.prepare(&f).inspect_err(|e| {
                    health.set_source(SourceState::Fault, Some(e.clone()));
                })?;
                Ok(true)
            }
            Err(e) if e.recoverable => {
                let delay = self.backoff.next_delay();
                st.retry_at = Instant::now() + delay;
                st.fault_since.get_or_insert_with(Instant::now);
                let detail = format!("{e}, retry in {}", secs(delay));
                if st.reported != SourceState::Fault || e.message != st.last_error {
                    log::warn!("{detail}");
                } else {
                    log::debug!("{detail}");
                }
                st.report(health, SourceState::Fault, Some(detail));
                st.last_error = e.message;
                Ok(false)
            }
            Err(e) => {
                health.set_source(SourceState::Fault, Some(e.message.clone()));
                Err(e.message)
            }
        }
    }

    /// A camera that failed in a way waiting may fix is closed and reopened
    /// after the backoff; anything else ends the run with the message.
    fn source_failed(&mut self, st: &mut RunState, e: SourceError) -> Result<(), String> {
        let health = &self.handles.health;
        if let Input::Reopen { current, .. } = &mut self.input {
            if e.recoverable {
                *current = None;
                if st.opened_at.elapsed() >= RETRY_MAX {
                    self.backoff.reset();
                }
                let delay = self.backoff.next_delay();
                st.retry_at = Instant::now() + delay;
                st.fault_since = Some(Instant::now());
                let detail = format!("{e}, retry in {}", secs(delay));
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

    /// Publishes a coded frame and records that frames are flowing.
    fn publish(
        &mut self,
        st: &mut RunState,
        encoded: Arc<EncodedFrame>,
        took: Duration,
        forced: bool,
    ) {
        if forced || encoded.keyframe {
            st.force_next = false;
        }
        if encoded.keyframe {
            // Before publishing: a sink subscribing now gets this frame.
            let kf = self.handles.fanout.keyframe_request();
            self.pacer.natural_keyframe(kf, encoded.pts);
        }
        self.handles
            .stats
            .record(encoded.annex_b().len(), took, encoded.keyframe, forced);
        self.handles.fanout.publish(encoded);
        if st.reported != SourceState::Delivering {
            match (st.reported, st.fault_since.take()) {
                (SourceState::Fault, Some(t)) => {
                    log::info!(
                        "{}: frames again after {}",
                        st.description,
                        secs(t.elapsed())
                    )
                }
                (SourceState::Paused | SourceState::Starting, _) if st.count > 0 => {
                    log::info!("{}: frames again", st.description)
                }
                _ => {}
            }
            st.report(&self.handles.health, SourceState::Delivering, None);
        }
        if st.opened_at.elapsed() >= RETRY_MAX {
            self.backoff.reset();
        }
        st.count += 1;
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
        let sub = fanout.subscribe(100);
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
        let mut b = Backoff::new(RETRY_MIN, RETRY_MAX);
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
        let sub = fanout.subscribe(1000);
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
        let sub = fanout.subscribe(100);
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
