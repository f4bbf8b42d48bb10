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

use crate::convert::{self, I420Buffer};
use crate::encode::{Encoder, EncoderSettings};
use crate::fanout::{Fanout, KeyframePacer};
use crate::h264::ParameterSets;
use crate::health::{Health, SourceState};
use crate::media::{EncodedFrame, Fraction, Image, PixelFormat, StreamInfo};
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
}

/// Opens a source, again after each failure (a camera).
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, SourceError> + Send>;

/// Doubling backoff between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

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

/// The H.264 side of the loop: x264, or the camera's own stream.
enum Coder {
    None,
    X264(Box<Encoder>),
    Passthrough {
        params: Option<ParameterSets>,
        seq: u64,
    },
}

pub struct Pipeline {
    input: Input,
    opts: EncodeOptions,
    coder: Coder,
    /// The format the coder was set up for.
    coder_format: Option<SourceFormat>,
    handles: Handles,
    frame_limit: Option<u64>,
    pacer: KeyframePacer,
    backoff: Backoff,
    /// Reused conversion target for packed YUV and MJPEG.
    i420: I420Buffer,
    #[cfg(feature = "mjpeg")]
    mjpeg: convert::MjpegDecoder,
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
        let mut p = Self::with_input(Input::Fixed(source), opts, handles, frame_limit);
        if let Input::Fixed(s) = &p.input {
            let f = s.format().clone();
            p.prepare(&f)?;
        }
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
            p.prepare(&f)?;
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
            opts: opts.clone(),
            coder: Coder::None,
            coder_format: None,
            handles,
            frame_limit,
            pacer: KeyframePacer::new(MIN_FORCED_KEYFRAME_INTERVAL),
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            i420: I420Buffer::new(),
            #[cfg(feature = "mjpeg")]
            mjpeg: convert::MjpegDecoder::new(),
        }
    }

    /// Changes the reopen backoff (tests).
    pub fn set_backoff(&mut self, min: Duration, max: Duration) {
        self.backoff = Backoff::new(min, max);
    }

    /// Sets up x264 (or passthrough) for a source's format, unless it is
    /// already set up for the same one.
    fn prepare(&mut self, f: &SourceFormat) -> Result<(), String> {
        if self.coder_format.as_ref().is_some_and(|c| {
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
            self.coder = Coder::Passthrough {
                params: None,
                seq: match &self.coder {
                    Coder::Passthrough { seq, .. } => *seq,
                    _ => 0,
                },
            };
            self.coder_format = Some(f.clone());
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
        self.coder = Coder::None;
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
        self.handles.fanout.set_stream_info(StreamInfo {
            width: f.width,
            height: f.height,
            fps: f.fps,
            bitrate_kbps: self.opts.bitrate_kbps,
            params,
        });
        self.coder = Coder::X264(Box::new(encoder));
        self.coder_format = Some(f.clone());
        Ok(())
    }

    /// Waits a little, watching the stop flag.
    fn idle(&self, until: Instant) {
        let now = Instant::now();
        if until > now {
            std::thread::sleep((until - now).min(IDLE_TICK));
        }
    }

    /// Runs until stopped, the frame limit, the end of the source, or an error.
    pub fn run(mut self) -> Result<Ended, String> {
        let kf = self.handles.fanout.keyframe_request().clone();
        let health = self.handles.health.clone();
        let mut count = 0u64;
        // The state last reported (one log line per change).
        let mut reported = health.source();
        let mut last_error = String::new();
        let mut retry_at = Instant::now();
        let mut fault_since: Option<Instant> = None;
        let mut opened_at = Instant::now();
        // The next frame must be an IDR (after a reopen or a pause).
        let mut force_next = false;
        let mut paused = false;
        'capture: loop {
            if self.handles.stop.load(Ordering::Relaxed) {
                return Ok(Ended::Stopped);
            }
            if health.privacy() {
                if !paused {
                    paused = true;
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
                    health.set_source(SourceState::Paused, None);
                    reported = SourceState::Paused;
                }
                std::thread::sleep(IDLE_TICK);
                continue;
            }
            if paused {
                paused = false;
                log::info!("privacy pause off: resuming capture");
                health.set_source(SourceState::Starting, None);
                reported = SourceState::Starting;
                force_next = true;
                retry_at = Instant::now();
                self.backoff.reset();
            }

            // Make sure a source is open.
            if let Input::Reopen { open, current, .. } = &mut self.input {
                if current.is_none() {
                    if Instant::now() < retry_at {
                        self.idle(retry_at);
                        continue;
                    }
                    match open() {
                        Ok(s) => {
                            let f = s.format().clone();
                            *current = Some(s);
                            opened_at = Instant::now();
                            force_next = true;
                            log::debug!(
                                "{}: opened, {}x{} at {} fps",
                                f.description,
                                f.width,
                                f.height,
                                f.fps
                            );
                            if let Err(e) = self.prepare(&f) {
                                health.set_source(SourceState::Fault, Some(e.clone()));
                                return Err(e);
                            }
                        }
                        Err(e) if e.recoverable => {
                            let delay = self.backoff.next_delay();
                            retry_at = Instant::now() + delay;
                            fault_since.get_or_insert_with(Instant::now);
                            let detail = format!("{e}, retry in {}", secs(delay));
                            if reported != SourceState::Fault || e.message != last_error {
                                log::warn!("{detail}");
                            } else {
                                log::debug!("{detail}");
                            }
                            health.set_source(SourceState::Fault, Some(detail));
                            reported = SourceState::Fault;
                            last_error = e.message;
                            continue;
                        }
                        Err(e) => {
                            health.set_source(SourceState::Fault, Some(e.message.clone()));
                            return Err(e.message);
                        }
                    }
                }
            }

            let passthrough = matches!(self.coder, Coder::Passthrough { .. });
            let source: &mut Box<dyn FrameSource> = match &mut self.input {
                Input::Fixed(s) => s,
                Input::Reopen { current, .. } => match current {
                    Some(s) => s,
                    None => continue,
                },
            };
            if passthrough {
                // Keyframes come from the camera: ask it (rate-limited).
                let now = crate::clock::monotonic_now();
                if force_next || self.pacer.should_force(&kf, now) {
                    source.request_keyframe();
                }
            }
            let description = source.format().description.clone();
            let e: SourceError = 'frame: {
                let frame = match source.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => return Ok(Ended::EndOfStream),
                    Err(e) => break 'frame e,
                };
                let pts = frame.pts;
                let started = Instant::now();
                let mut forced = false;
                let encoded: Option<EncodedFrame> = match (&mut self.coder, frame.image) {
                    (Coder::Passthrough { params, seq }, Image::Compressed { data, .. }) => {
                        let au = data.to_vec();
                        drop(frame);
                        match EncodedFrame::from_annex_b(au, pts, *seq) {
                            Ok(f) => {
                                if f.keyframe {
                                    if let Some(ps) = ParameterSets::from_annex_b(f.annex_b()) {
                                        if params.as_ref() != Some(&ps) {
                                            if let Some(fmt) = &self.coder_format {
                                                self.handles.fanout.set_stream_info(StreamInfo {
                                                    width: fmt.width,
                                                    height: fmt.height,
                                                    fps: fmt.fps,
                                                    bitrate_kbps: self.opts.bitrate_kbps,
                                                    params: ps.clone(),
                                                });
                                            }
                                            *params = Some(ps);
                                        }
                                    }
                                }
                                if params.is_none() {
                                    // Nothing can decode before SPS/PPS and an IDR.
                                    force_next = true;
                                    None
                                } else {
                                    *seq += 1;
                                    Some(f)
                                }
                            }
                            Err(e) => {
                                log::debug!("{description}: skipped a frame: {e}");
                                None
                            }
                        }
                    }
                    (Coder::X264(enc), image) => {
                        forced = force_next || self.pacer.should_force(&kf, pts);
                        let planar = match image {
                            Image::Planar(p) => Some(p),
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
                                None
                            }
                            #[cfg(feature = "mjpeg")]
                            Image::Compressed {
                                format: PixelFormat::Mjpeg,
                                data,
                            } => match self.mjpeg.decode(data, &mut self.i420) {
                                Ok(_) => None,
                                Err(e) => {
                                    log::debug!("{description}: skipped a frame: {e}");
                                    continue 'capture;
                                }
                            },
                            Image::Compressed { format, .. } => {
                                return Err(format!(
                                    "{description}: {format} frames cannot go to x264"
                                ));
                            }
                        };
                        let result = match planar {
                            // Read in place from the capture buffer; the frame
                            // (and so the buffer) goes back when this returns.
                            Some(p) => enc.encode(&p, pts, forced),
                            None => {
                                // Converted: the capture buffer can go back now.
                                drop(frame);
                                enc.encode(&self.i420.planar(), pts, forced)
                            }
                        };
                        result.map_err(|e| format!("{description}: {e}"))?
                    }
                    (_, image) => {
                        return Err(format!(
                            "{description}: no encoder for {:?}",
                            std::mem::discriminant(&image)
                        ));
                    }
                };
                let took = started.elapsed();
                let Some(encoded) = encoded else {
                    continue 'capture;
                };
                if forced {
                    force_next = false;
                }
                if encoded.keyframe {
                    force_next = false;
                    // Before publishing: a sink subscribing now gets this frame.
                    self.pacer.natural_keyframe(&kf, encoded.pts);
                }
                self.handles
                    .stats
                    .record(encoded.annex_b().len(), took, encoded.keyframe, forced);
                self.handles.fanout.publish(Arc::new(encoded));
                if reported != SourceState::Delivering {
                    match (reported, fault_since.take()) {
                        (SourceState::Fault, Some(t)) => {
                            log::info!("{description}: frames again after {}", secs(t.elapsed()))
                        }
                        (SourceState::Paused | SourceState::Starting, _) if count > 0 => {
                            log::info!("{description}: frames again")
                        }
                        _ => {}
                    }
                    health.set_source(SourceState::Delivering, None);
                    reported = SourceState::Delivering;
                }
                if opened_at.elapsed() >= RETRY_MAX {
                    self.backoff.reset();
                }
                count += 1;
                if self.frame_limit.is_some_and(|n| count >= n) {
                    return Ok(Ended::FrameLimit);
                }
                continue 'capture;
            };
            if let Input::Reopen { current, .. } = &mut self.input {
                if e.recoverable {
                    // Close it now; reopen after the backoff.
                    *current = None;
                    if opened_at.elapsed() >= RETRY_MAX {
                        self.backoff.reset();
                    }
                    let delay = self.backoff.next_delay();
                    retry_at = Instant::now() + delay;
                    fault_since = Some(Instant::now());
                    let detail = format!("{e}, retry in {}", secs(delay));
                    log::warn!("{detail}");
                    health.set_source(SourceState::Fault, Some(detail));
                    reported = SourceState::Fault;
                    last_error = e.message;
                    continue;
                }
            }
            let msg = if e.message.starts_with(&description) {
                e.message
            } else {
                format!("{description}: {}", e.message)
            };
            health.set_source(SourceState::Fault, Some(msg.clone()));
            return Err(msg);
        }
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
    fn keyint_rounds_and_is_at_least_one() {
        assert_eq!(keyint_frames(2.0, Fraction::new(30, 1)), 60);
        assert_eq!(keyint_frames(0.01, Fraction::new(30, 1)), 1);
        assert_eq!(keyint_frames(1.0, Fraction::new(30000, 1001)), 30);
    }
}
