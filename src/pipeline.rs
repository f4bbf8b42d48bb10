//! The capture/encode loop, run on its own thread: take a frame from the
//! source, encode it (forcing an IDR when sinks asked for one), publish the
//! result to the fan-out. It never waits on a sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::encode::{Encoder, EncoderSettings};
use crate::fanout::{Fanout, KeyframePacer};
use crate::health::{Health, SourceState};
use crate::media::{Fraction, Image, PixelFormat, StreamInfo};
use crate::source::FrameSource;
use crate::stats::PipelineStats;

/// Forced keyframes are at most this frequent, however many sinks ask.
pub const MIN_FORCED_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

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

pub struct Pipeline {
    source: Box<dyn FrameSource>,
    encoder: Encoder,
    handles: Handles,
    frame_limit: Option<u64>,
    pacer: KeyframePacer,
}

impl Pipeline {
    /// Opens the encoder for the source's format and announces the stream's
    /// parameters to the fan-out.
    pub fn new(
        source: Box<dyn FrameSource>,
        opts: &EncodeOptions,
        handles: Handles,
        frame_limit: Option<u64>,
    ) -> Result<Self, String> {
        let f = source.format().clone();
        let input = match f.pixel_format {
            PixelFormat::I420 | PixelFormat::Nv12 => f.pixel_format,
            other => {
                return Err(format!(
                    "{}: {other} input is not supported yet",
                    f.description
                ));
            }
        };
        let settings = EncoderSettings {
            width: f.width,
            height: f.height,
            fps: f.fps,
            bitrate_kbps: opts.bitrate_kbps,
            keyint: keyint_frames(opts.keyint_seconds, f.fps),
            threads: opts.threads,
            input,
        };
        let encoder = Encoder::open(settings.clone()).map_err(|e| e.to_string())?;
        let params = encoder.parameter_sets().clone();
        log::info!(
            "encoder: x264 {}x{} at {} fps, {} kbit/s, keyframe every {} frames, profile {} level {:.1}, {} threads",
            settings.width,
            settings.height,
            settings.fps,
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
        handles.fanout.set_stream_info(StreamInfo {
            width: f.width,
            height: f.height,
            fps: f.fps,
            bitrate_kbps: opts.bitrate_kbps,
            params,
        });
        Ok(Self {
            source,
            encoder,
            handles,
            frame_limit,
            pacer: KeyframePacer::new(MIN_FORCED_KEYFRAME_INTERVAL),
        })
    }

    /// Runs until stopped, the frame limit, the end of the source, or an error.
    pub fn run(mut self) -> Result<Ended, String> {
        let kf = self.handles.fanout.keyframe_request().clone();
        let mut count = 0u64;
        loop {
            if self.handles.stop.load(Ordering::Relaxed) {
                return Ok(Ended::Stopped);
            }
            let frame = match self.source.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(Ended::EndOfStream),
                Err(e) => {
                    let msg = format!("{}: {e}", self.source.format().description);
                    self.handles
                        .health
                        .set_source(SourceState::Fault, Some(msg.clone()));
                    return Err(msg);
                }
            };
            let force = self.pacer.should_force(&kf, frame.pts);
            let started = Instant::now();
            let encoded = match frame.image {
                Image::Planar(p) => self
                    .encoder
                    .encode(&p, frame.pts, force)
                    .map_err(|e| e.to_string())?,
                _ => return Err("only planar input is supported yet".into()),
            };
            let took = started.elapsed();
            let Some(encoded) = encoded else { continue };
            if encoded.keyframe {
                // Before publishing: a sink subscribing now gets this frame.
                self.pacer.natural_keyframe(&kf, encoded.pts);
            }
            self.handles
                .stats
                .record(encoded.annex_b().len(), took, encoded.keyframe, force);
            self.handles.fanout.publish(Arc::new(encoded));
            if count == 0 {
                self.handles
                    .health
                    .set_source(SourceState::Delivering, None);
            }
            count += 1;
            if self.frame_limit.is_some_and(|n| count >= n) {
                return Ok(Ended::FrameLimit);
            }
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
