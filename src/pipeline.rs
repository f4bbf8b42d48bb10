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

use crate::fanout::{Fanout, KeyframeRequest};
use crate::health::{Health, SourceState};
use crate::media::{EncodedFrame, Fraction, PixelFormat};
use crate::reopen::{Action, Policy, SLATE_INTERVAL, SlateReason};
use crate::slate::Slate;
use crate::source::{FrameSource, SourceError, SourceFormat};
use crate::stats::PipelineStats;

mod coder;
mod error;
use coder::{Coded, Coder};
pub use error::{PipelineError, PipelineErrorKind};

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
    ) -> Result<Self, PipelineError> {
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
    ) -> Result<Self, PipelineError> {
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

    /// Changes the reopen backoff (unit tests).
    #[cfg(test)]
    pub(crate) fn set_backoff(&mut self, min: Duration, max: Duration) {
        self.policy.set_backoff(min, max);
    }

    /// Runs until stopped, the frame limit, the end of the source, or an error.
    pub fn run(mut self) -> Result<Ended, PipelineError> {
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
    fn open(&mut self, st: &mut RunState, now: Duration) -> Result<(), PipelineError> {
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
                    health.set_source(SourceState::Fault, Some(e.to_string()));
                })
            }
            Err(e) if e.is_recoverable() => {
                let delay = self.policy.open_failed(now);
                st.fault_since.get_or_insert_with(Instant::now);
                let message = e.to_string();
                let detail = format!("{message}, retrying in {}", secs(delay));
                if st.reported != SourceState::Fault || message != st.last_error {
                    log::warn!("{detail}");
                } else {
                    log::debug!("{detail}");
                }
                st.report(health, SourceState::Fault, Some(detail));
                st.last_error = message;
                Ok(())
            }
            Err(e) => {
                health.set_source(SourceState::Fault, Some(e.to_string()));
                Err(e.into())
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
    ) -> Result<(), PipelineError> {
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
        let frame = slate.frame(pts)?;
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
    /// after the backoff; anything else ends the run with the error (which
    /// names the source).
    fn source_failed(&mut self, st: &mut RunState, e: SourceError) -> Result<(), PipelineError> {
        let health = &self.handles.health;
        if let Input::Reopen { current, .. } = &mut self.input {
            if e.is_recoverable() {
                *current = None;
                self.handles
                    .stats
                    .source_restarts
                    .fetch_add(1, Ordering::Relaxed);
                let delay = self.policy.failed(crate::clock::monotonic_now());
                st.fault_since = Some(Instant::now());
                let message = e.to_string();
                let detail = format!("{message}, retrying in {}", secs(delay));
                log::warn!("{detail}");
                st.report(health, SourceState::Fault, Some(detail));
                st.last_error = message;
                return Ok(());
            }
        }
        health.set_source(SourceState::Fault, Some(e.to_string()));
        Err(e.into())
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

#[cfg(test)]
mod tests;
