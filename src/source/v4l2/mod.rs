//! V4L2 camera capture: mmap streaming, single-planar.
//!
//! [`V4l2Source::open`] opens the node, negotiates the format for the
//! configured size and frame rate ([`negotiate`]), sets the frame interval,
//! maps the driver's buffers and starts streaming. Each [`Frame`] borrows one
//! dequeued buffer, cut to its `bytesused`; dropping the frame requeues the
//! buffer (see `Queue`), so the driver gets it back as soon as the encoder
//! (or the converter) is done with it. Nothing is allocated per frame.
//!
//! Why not the `v4l` crate (0.14): its mmap stream hands out the whole buffer
//! rather than `bytesused`, requeues a buffer only on the next `next()`, and
//! its `Drop`s panic on ioctl/munmap/close errors, which with `panic = "abort"`
//! kills the process exactly when a camera is unplugged. The dozen ioctls
//! needed are small enough to own (`sys`), with drops that cannot panic.

pub mod csi;
mod error;
mod layout;
mod list;
pub mod negotiate;
mod probe;
#[allow(unsafe_code)]
mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use self::error::{CameraError, CameraErrorKind};
use self::layout::Layout;
pub use self::layout::StrideError;
pub use self::list::{ListError, device_nodes, list_devices, list_formats, list_formats_for};
use self::negotiate::Request;
pub use self::probe::DeviceInfo;
use self::probe::{enumerate, fourcc_text, fract, query};
use self::sys::{Device, Fract, Mapping};
use super::{FrameSource, SourceError, SourceFormat};
use crate::clock;
use crate::media::{Fraction, Frame, PixelFormat, Release, ReleaseBuffer};

/// No frame for this long means the camera stalled: the source reports a
/// recoverable error and the pipeline reopens it. (At 1 fps, three frame
/// intervals: see [`stall_timeout`].)
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for a frame at `fps`: 2 s, or three frame intervals
/// for rates below 1.5 fps, so a slow camera is not taken for a stalled one.
pub fn stall_timeout(fps: Fraction) -> Duration {
    STALL_TIMEOUT.max(fps.frame_duration() * 3)
}

/// Capture buffers asked for: enough to ride out an encode that takes a
/// little longer than a frame interval, few enough to keep latency and
/// memory low (the driver may give more or fewer).
const BUFFERS: u32 = 4;

/// The device and which buffer a frame holds: the part of the source a
/// [`Frame`] borrows mutably to requeue its buffer when dropped.
#[derive(Debug)]
struct Queue {
    dev: Device,
    /// A dequeued buffer not yet given back.
    held: Option<u32>,
    /// A requeue that failed (reported by the next `next_frame`).
    failed: Option<io::Error>,
}

impl ReleaseBuffer for Queue {
    fn release(&mut self) {
        if let Some(index) = self.held.take() {
            if let Err(e) = self.dev.qbuf(index) {
                self.failed.get_or_insert(e);
            }
        }
    }
}

/// An open, streaming camera.
pub struct V4l2Source {
    format: SourceFormat,
    path: PathBuf,
    queue: Queue,
    buffers: Vec<Mapping>,
    layout: Layout,
    stall_timeout: Duration,
    /// Frames skipped because the driver flagged or shortened them.
    pub skipped: u64,
    keyframe_control: bool,
}

impl V4l2Source {
    /// Opens `path` and starts capturing `req` (size and frame rate).
    pub fn open(path: &Path, req: Request) -> Result<Self, CameraError> {
        let p = path.display().to_string();
        let fail = |kind| CameraError::new(path, kind);
        let setup = |op: &'static str| move |source| fail(CameraErrorKind::Setup { op, source });
        let dev = Device::open(path).map_err(|e| CameraError::open(path, e))?;
        let info = query(&dev, path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EINVAL) => fail(CameraErrorKind::NotV4l2(e)),
            _ => setup("VIDIOC_QUERYCAP")(e),
        })?;
        if !info.capture {
            let card = info.card;
            return Err(fail(if info.mplane {
                CameraErrorKind::MultiPlanarOnly { card }
            } else {
                CameraErrorKind::NotCapture { card }
            }));
        }
        let formats =
            enumerate(&dev, Some((req.width, req.height))).map_err(setup("listing formats"))?;
        let choice = negotiate::negotiate(&formats, req).map_err(|source| {
            fail(CameraErrorKind::NoFit {
                card: info.card.clone(),
                source,
            })
        })?;

        let want = sys::PixFormat {
            width: req.width,
            height: req.height,
            pixelformat: sys::fourcc(
                choice
                    .pixel_format
                    .fourcc()
                    .as_bytes()
                    .try_into()
                    .unwrap_or(b"????"),
            ),
            field: sys::FIELD_NONE,
            ..sys::PixFormat::default()
        };
        let got = dev.s_fmt(want).map_err(setup("VIDIOC_S_FMT"))?;
        if (got.width, got.height, got.pixelformat) != (want.width, want.height, want.pixelformat) {
            return Err(fail(CameraErrorKind::FormatRefused {
                asked: choice.pixel_format,
                width: want.width,
                height: want.height,
                got: fourcc_text(got.pixelformat),
                got_width: got.width,
                got_height: got.height,
            }));
        }
        if got.field != sys::FIELD_NONE && got.field != sys::FIELD_ANY {
            log::warn!(
                "camera {p}: the driver delivers interlaced fields (field {}); the picture may comb",
                got.field
            );
        }
        let layout = Layout::new(choice.pixel_format, got.width, got.height, got.bytesperline)
            .map_err(|e| fail(CameraErrorKind::Stride(e)))?;

        // The frame interval: set it where the driver allows, then read back.
        let mut interval = choice.interval;
        let parm = dev.g_parm().ok();
        if parm.is_some_and(|c| c.capability & sys::CAP_TIMEPERFRAME != 0) {
            let set = dev
                .s_parm(Fract {
                    numerator: choice.interval.num,
                    denominator: choice.interval.den,
                })
                .map_err(setup("VIDIOC_S_PARM"))?;
            if set.timeperframe.numerator > 0 && set.timeperframe.denominator > 0 {
                interval = fract(set.timeperframe);
            }
        } else if let Some(c) = parm {
            if c.timeperframe.numerator > 0 && c.timeperframe.denominator > 0 {
                interval = fract(c.timeperframe);
            }
        }
        let fps = reduce(Fraction::new(interval.den, interval.num));

        let count = dev.reqbufs(BUFFERS).map_err(setup("VIDIOC_REQBUFS"))?;
        if count < 2 {
            return Err(fail(CameraErrorKind::TooFewBuffers(count)));
        }
        let mut source = Self {
            format: SourceFormat {
                width: got.width,
                height: got.height,
                fps,
                pixel_format: choice.pixel_format,
                description: format!("camera {p} ({}, {})", info.card, choice.pixel_format),
            },
            path: path.to_path_buf(),
            queue: Queue {
                dev,
                held: None,
                failed: None,
            },
            buffers: Vec::with_capacity(count as usize),
            layout,
            stall_timeout: stall_timeout(fps),
            skipped: 0,
            keyframe_control: choice.pixel_format == PixelFormat::H264,
        };
        // From here on, Drop stops streaming and frees the buffers.
        for i in 0..count {
            let m = source
                .queue
                .dev
                .map_buffer(i)
                .map_err(setup("mapping buffers"))?;
            source.buffers.push(m);
        }
        for i in 0..count {
            source.queue.dev.qbuf(i).map_err(setup("VIDIOC_QBUF"))?;
        }
        source
            .queue
            .dev
            .streamon()
            .map_err(setup("VIDIOC_STREAMON"))?;
        log::debug!(
            "camera {p}: {} {}x{} stride {} sizeimage {} at {} fps, {count} buffers of {} bytes",
            choice.pixel_format,
            got.width,
            got.height,
            got.bytesperline,
            got.sizeimage,
            fps,
            source.buffers.first().map_or(0, |m| m.len()),
        );
        Ok(source)
    }

    fn gone(&self, op: &'static str, e: io::Error) -> SourceError {
        CameraError::capture(&self.path, op, e).into()
    }
}

/// A frame rate in lowest terms (30000/1000 becomes 30).
fn reduce(f: Fraction) -> Fraction {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(f.num, f.den).max(1);
    Fraction::new(f.num / g, (f.den / g).max(1))
}

impl FrameSource for V4l2Source {
    fn format(&self) -> &SourceFormat {
        &self.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        // A frame leaked instead of dropped still gets its buffer back.
        self.queue.release();
        if let Some(e) = self.queue.failed.take() {
            return Err(self.gone("VIDIOC_QBUF", e));
        }
        let deadline = Instant::now() + self.stall_timeout;
        loop {
            let d = match self.queue.dev.dqbuf() {
                Ok(Some(d)) => d,
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let kind = CameraErrorKind::Stalled(self.stall_timeout);
                        return Err(CameraError::new(&self.path, kind).into());
                    }
                    if let Err(e) = self.queue.dev.poll_readable(left) {
                        // POLLERR says little; DQBUF says why (ENODEV: gone).
                        return Err(match self.queue.dev.dqbuf() {
                            Err(real) => self.gone("VIDIOC_DQBUF", real),
                            _ => self.gone("poll", e),
                        });
                    }
                    continue;
                }
                Err(e) => return Err(self.gone("VIDIOC_DQBUF", e)),
            };
            let Some(buf) = self.buffers.get(d.index as usize) else {
                let kind = CameraErrorKind::BadBuffer {
                    index: d.index,
                    count: self.buffers.len(),
                };
                return Err(CameraError::new(&self.path, kind).into());
            };
            // A few old drivers leave bytesused at 0 for raw formats, where
            // the whole image is always there.
            let used = match (d.bytesused, self.layout.format) {
                (0, PixelFormat::Mjpeg | PixelFormat::H264) => 0,
                (0, _) => buf.len(),
                (n, _) => n as usize,
            };
            let data = buf.bytes(used);
            let usable = d.flags & sys::BUF_FLAG_ERROR == 0 && !data.is_empty();
            let image = if usable {
                self.layout.image(data)
            } else {
                None
            };
            let Some(image) = image else {
                // A corrupt or short frame: give it back and wait for the next.
                self.skipped += 1;
                log::debug!(
                    "camera {}: skipped frame {} ({} bytes, flags {:#x})",
                    self.path.display(),
                    d.sequence,
                    d.bytesused,
                    d.flags
                );
                if let Err(e) = self.queue.dev.qbuf(d.index) {
                    return Err(self.gone("VIDIOC_QBUF", e));
                }
                continue;
            };
            let pts = if d.flags & sys::BUF_FLAG_TIMESTAMP_MASK == sys::BUF_FLAG_TIMESTAMP_MONOTONIC
                && !d.timestamp.is_zero()
            {
                d.timestamp
            } else {
                clock::monotonic_now()
            };
            self.queue.held = Some(d.index);
            return Ok(Some(Frame {
                pts,
                image,
                release: Release::new(&mut self.queue),
            }));
        }
    }

    fn request_keyframe(&mut self) {
        if !self.keyframe_control {
            return;
        }
        if let Err(e) = self.queue.dev.s_ctrl(sys::CID_FORCE_KEY_FRAME, 1) {
            log::info!(
                "camera {}: cannot force a keyframe ({e}); viewers wait for the camera's next one",
                self.path.display()
            );
            self.keyframe_control = false;
        }
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // Errors are expected when the camera is gone; none may panic.
        let _ = self.queue.dev.streamoff();
        self.buffers.clear();
        let _ = self.queue.dev.reqbufs(0);
        // The descriptor closes when `queue` drops.
    }
}

#[cfg(test)]
mod tests;
