//! Frame sources: where pictures come from before the encoder.
//!
//! A source hands out one [`Frame`] at a time, borrowed from its own buffer
//! (a capture buffer for a camera, a reused buffer for the test pattern or a
//! file) until the frame is dropped, so the encoder reads pixels in place.

use std::fmt;
use std::time::Duration;

use crate::clock;
use crate::media::{Fraction, Frame, Image, PixelFormat, Planar, PlanarError};

pub mod command;
pub mod testsrc;
pub mod v4l2;
pub mod y4m;

/// How a generated or file source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// At the frame rate, on the monotonic clock (a camera's pace).
    Realtime,
    /// As fast as the encoder takes frames (benchmarks, repeatable runs).
    Asap,
}

/// What a source delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFormat {
    pub width: u32,
    pub height: u32,
    pub fps: Fraction,
    pub pixel_format: PixelFormat,
    /// For logs: what the source is, e.g. `test pattern` or a device name.
    pub description: String,
}

/// Whether reopening a source may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The trouble may go away by itself (a camera unplugged, busy or
    /// stalled, a command that exited): close the source, open it again
    /// after a backoff.
    Reopen,
    /// A permanent problem (a malformed file, a permission, a setting that
    /// cannot work): the run ends.
    Fatal,
}

/// A failure to open a source or to produce a frame. Each kind of source
/// has its own error, which names the source (the device, the command, the
/// file) and keeps the underlying error as its `source()`.
#[derive(Debug)]
pub enum SourceError {
    /// A V4L2 camera.
    Camera(v4l2::CameraError),
    /// A command's output, or stdin.
    Command(command::CommandError),
    /// A YUV4MPEG2 file.
    File(y4m::FileError),
    /// The test pattern's size.
    Pattern(testsrc::SizeError),
    /// A buffer that does not hold the picture its format says.
    Frame {
        /// The source's description.
        source: String,
        error: PlanarError,
    },
}

impl SourceError {
    /// Whether reopening the source may help.
    pub fn recovery(&self) -> Recovery {
        match self {
            Self::Camera(e) => e.recovery(),
            Self::Command(e) => e.recovery(),
            Self::File(_) | Self::Pattern(_) | Self::Frame { .. } => Recovery::Fatal,
        }
    }

    /// `recovery() == Recovery::Reopen`.
    pub fn is_recoverable(&self) -> bool {
        self.recovery() == Recovery::Reopen
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Camera(e) => e.fmt(f),
            Self::Command(e) => e.fmt(f),
            Self::File(e) => e.fmt(f),
            Self::Pattern(e) => e.fmt(f),
            Self::Frame { source, error } if source.is_empty() => error.fmt(f),
            Self::Frame { source, error } => write!(f, "{source}: {error}"),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Camera(e) => Some(e),
            Self::Command(e) => Some(e),
            Self::File(e) => Some(e),
            Self::Pattern(e) => Some(e),
            Self::Frame { error, .. } => Some(error),
        }
    }
}

impl From<v4l2::CameraError> for SourceError {
    fn from(e: v4l2::CameraError) -> Self {
        Self::Camera(e)
    }
}

impl From<command::CommandError> for SourceError {
    fn from(e: command::CommandError) -> Self {
        Self::Command(e)
    }
}

impl From<y4m::FileError> for SourceError {
    fn from(e: y4m::FileError) -> Self {
        Self::File(e)
    }
}

impl From<testsrc::SizeError> for SourceError {
    fn from(e: testsrc::SizeError) -> Self {
        Self::Pattern(e)
    }
}

/// A frame over a contiguous, tightly packed I420 buffer of `format`'s size
/// (the test pattern's and a Y4M file's reused buffers).
pub fn i420_frame<'a>(
    format: &SourceFormat,
    buf: &'a [u8],
    pts: Duration,
) -> Result<Frame<'a>, SourceError> {
    let planar = Planar::from_contiguous(
        PixelFormat::I420,
        format.width,
        format.height,
        format.width as usize,
        buf,
    )
    .map_err(|error| SourceError::Frame {
        source: format.description.clone(),
        error,
    })?;
    Ok(Frame::new(pts, Image::Planar(planar)))
}

/// A source of frames. Runs on the capture/encode thread.
pub trait FrameSource: Send {
    fn format(&self) -> &SourceFormat;

    /// Blocks until the next frame. `Ok(None)` means the source has ended
    /// (end of a file). The frame borrows the source until dropped.
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError>;

    /// Asks for the next frame to be a keyframe, for sources that deliver
    /// encoded frames (a camera's own H.264). Others ignore it.
    fn request_keyframe(&mut self) {}
}

/// Paces frames on CLOCK_MONOTONIC: frame `n` is due at `start + n/fps`.
/// A source that falls more than a frame behind skips ahead the way a
/// camera drops frames, instead of bunching them up.
#[derive(Debug, Clone)]
pub struct Pacer {
    fps: Fraction,
    pace: Pace,
    start: Option<Duration>,
    index: u64,
}

impl Pacer {
    pub fn new(fps: Fraction, pace: Pace) -> Self {
        Self {
            fps,
            pace,
            start: None,
            index: 0,
        }
    }

    /// Waits for the next frame's time; returns its index and capture time.
    pub fn wait_next(&mut self) -> (u64, Duration) {
        let start = *self.start.get_or_insert_with(clock::monotonic_now);
        let mut due = start + self.fps.frame_time(self.index);
        if self.pace == Pace::Realtime {
            let now = clock::monotonic_now();
            if now > due + self.fps.frame_duration() {
                let behind = (now - start).as_nanos() * self.fps.num as u128
                    / (1_000_000_000u128 * self.fps.den as u128);
                self.index = behind as u64;
                due = start + self.fps.frame_time(self.index);
            }
            clock::sleep_until(due);
        }
        let index = self.index;
        self.index += 1;
        (index, due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asap_pacing_gives_evenly_spaced_times() {
        let mut p = Pacer::new(Fraction::new(25, 1), Pace::Asap);
        let (i0, t0) = p.wait_next();
        let (i1, t1) = p.wait_next();
        let (i2, t2) = p.wait_next();
        assert_eq!((i0, i1, i2), (0, 1, 2));
        assert_eq!(t1 - t0, Duration::from_millis(40));
        assert_eq!(t2 - t0, Duration::from_millis(80));
    }

    #[test]
    fn realtime_pacing_skips_ahead_when_late() {
        let mut p = Pacer::new(Fraction::new(100, 1), Pace::Realtime);
        let (_, t0) = p.wait_next();
        std::thread::sleep(Duration::from_millis(100));
        let (i, t) = p.wait_next();
        assert!(i >= 9, "skipped ahead to frame {i}");
        assert_eq!(t - t0, Duration::from_millis(10 * i));
    }
}
