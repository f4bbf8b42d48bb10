//! The H.264 side of the capture loop: x264 with its conversion buffers,
//! or the camera's own stream passed through.

use std::sync::Arc;
use std::time::Duration;

use super::{EncodeOptions, Handles, PipelineError, PipelineErrorKind, keyint_frames};
use crate::convert::{self, I420Buffer};
use crate::encode::threads::{EncodeTimer, ThreadPolicy};
use crate::encode::{Encoder, EncoderSettings};
use crate::fanout::Fanout;
use crate::h264::ParameterSets;
use crate::media::{EncodedFrame, Frame, Image, PixelFormat, StreamInfo};
use crate::source::SourceFormat;
use crate::stats::PipelineStats;

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
pub(super) enum Coded {
    /// An access unit to publish (shared as is by every sink).
    Frame(Arc<EncodedFrame>),
    /// Nothing goes out this time (an undecodable frame was skipped).
    Skipped,
    /// Nothing goes out until the camera sends SPS/PPS and an IDR.
    AwaitingKeyframe,
}

/// The H.264 side of the loop: x264 with its conversion buffers, or the
/// camera's stream passed through.
pub(super) struct Coder {
    kind: CoderKind,
    /// The source format the coder is set up for.
    pub(super) format: Option<SourceFormat>,
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
    pub(super) fn new(opts: &EncodeOptions, handles: &Handles) -> Self {
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

    pub(super) fn is_passthrough(&self) -> bool {
        matches!(self.kind, CoderKind::Passthrough { .. })
    }

    /// Sets up x264 (or passthrough) for a source's format, unless it is
    /// already set up for the same one.
    /// An encoder is kept when only the source's pixel format changes but
    /// x264 takes the same input (a YUYV camera and the I420 slate): no new
    /// SPS/PPS for the viewers then.
    pub(super) fn prepare(&mut self, f: &SourceFormat) -> Result<(), PipelineError> {
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
            return Err(PipelineErrorKind::Unsupported {
                source: f.description.clone(),
                format: f.pixel_format,
            }
            .into());
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
        let encoder = Encoder::open(settings.clone()).map_err(PipelineErrorKind::OpenEncoder)?;
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
    fn maybe_rethread(&mut self, force: bool) -> Result<(), PipelineError> {
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
    pub(super) fn code(
        &mut self,
        frame: Frame<'_>,
        pts: Duration,
        force: bool,
        description: &str,
    ) -> Result<Coded, PipelineError> {
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
                        .map_err(|error| PipelineErrorKind::Convert {
                            source: description.to_string(),
                            error,
                        })?;
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
                        return Err(PipelineErrorKind::NotForX264 {
                            source: description.to_string(),
                            format,
                        }
                        .into());
                    }
                };
                let encoded = encoded.map_err(|error| PipelineErrorKind::Encode {
                    source: description.to_string(),
                    error,
                })?;
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
            (_, image) => Err(PipelineErrorKind::NoEncoder {
                source: description.to_string(),
                image: match image {
                    Image::Planar(_) => "planar",
                    Image::Packed { .. } => "packed",
                    Image::Compressed { .. } => "compressed",
                },
            }
            .into()),
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

fn profile_name(idc: u8, constraints: u8) -> &'static str {
    match (idc, constraints & 0x40 != 0) {
        (66, true) => "Constrained Baseline",
        (66, false) => "Baseline",
        (77, _) => "Main",
        (100, _) => "High",
        _ => "other",
    }
}
