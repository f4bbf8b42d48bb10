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
mod list;
pub mod negotiate;
#[allow(unsafe_code)]
mod sys;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use self::list::{ListError, device_nodes, list_devices, list_formats, list_formats_for};
use self::negotiate::{CameraFormat, FrameSize, Intervals, Request};
use self::sys::{Device, Fract, Mapping};
use super::{FrameSource, SourceError, SourceFormat};
use crate::clock;
use crate::media::{Fraction, Frame, Image, PixelFormat, Planar, Release, ReleaseBuffer};

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

fn fourcc_text(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn fract(f: Fract) -> Fraction {
    Fraction::new(f.numerator, f.denominator)
}

/// What a device node is.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    pub bus_info: String,
    /// Video capture with streaming I/O, single-planar: usable.
    pub capture: bool,
    /// Multi-planar capture only (not supported).
    pub mplane: bool,
}

/// Whether an error opening or using a camera may go away by itself (the
/// device unplugged, not there yet, busy) rather than needing a fix.
fn recoverable(e: &io::Error) -> bool {
    !matches!(
        e.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENOTTY)
    )
}

fn open_error(path: &Path, e: io::Error) -> SourceError {
    let p = path.display();
    match e.raw_os_error() {
        Some(libc::ENOENT) => SourceError::recoverable(format!("camera {p} is not there")),
        Some(libc::EACCES) | Some(libc::EPERM) => SourceError::fatal(format!(
            "camera {p}: permission denied; add the user to the `video` group"
        )),
        Some(libc::EBUSY) => {
            SourceError::recoverable(format!("camera {p} is busy (another program has it)"))
        }
        _ if recoverable(&e) => SourceError::recoverable(format!("camera {p}: {e}")),
        _ => SourceError::fatal(format!("camera {p}: {e}")),
    }
}

fn query(dev: &Device, path: &Path) -> io::Result<DeviceInfo> {
    let cap = dev.querycap()?;
    let caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    Ok(DeviceInfo {
        path: path.to_path_buf(),
        card: c_text(&cap.card),
        driver: c_text(&cap.driver),
        bus_info: c_text(&cap.bus_info),
        capture: caps & sys::CAP_VIDEO_CAPTURE != 0 && caps & sys::CAP_STREAMING != 0,
        mplane: caps & sys::CAP_VIDEO_CAPTURE_MPLANE != 0,
    })
}

fn intervals(dev: &Device, code: u32, w: u32, h: u32) -> io::Result<Intervals> {
    let mut list = Vec::new();
    for index in 0..256 {
        let Some(i) = dev.enum_frameintervals(code, w, h, index)? else {
            break;
        };
        match i.type_ {
            sys::FRMIVAL_TYPE_DISCRETE => list.push(fract(i.u[0])),
            _ => {
                return Ok(Intervals::Range {
                    min: fract(i.u[0]),
                    max: fract(i.u[1]),
                });
            }
        }
    }
    Ok(if list.is_empty() {
        Intervals::Unknown
    } else {
        Intervals::Discrete(list)
    })
}

/// Everything the camera offers. For stepwise sizes, the intervals are
/// those at `at` if it is given and in range, else at the largest size.
fn enumerate(dev: &Device, at: Option<(u32, u32)>) -> io::Result<Vec<CameraFormat>> {
    let mut formats = Vec::new();
    for index in 0..256 {
        let Some(d) = dev.enum_fmt(index)? else { break };
        let code = d.pixelformat;
        let mut sizes = Vec::new();
        for si in 0..1024 {
            let Some(s) = dev.enum_framesizes(code, si)? else {
                break;
            };
            if s.type_ == sys::FRMSIZE_TYPE_DISCRETE {
                let (w, h) = (s.u[0], s.u[1]);
                sizes.push(FrameSize::Discrete {
                    width: w,
                    height: h,
                    intervals: intervals(dev, code, w, h)?,
                });
            } else {
                let (min, max) = ((s.u[0], s.u[3]), (s.u[1], s.u[4]));
                let step = if s.type_ == sys::FRMSIZE_TYPE_CONTINUOUS {
                    (1, 1)
                } else {
                    (s.u[2], s.u[5])
                };
                let (w, h) = match at {
                    Some((w, h))
                        if (min.0..=max.0).contains(&w) && (min.1..=max.1).contains(&h) =>
                    {
                        (w, h)
                    }
                    _ => max,
                };
                sizes.push(FrameSize::Stepwise {
                    min,
                    max,
                    step,
                    intervals: intervals(dev, code, w, h)?,
                });
                break;
            }
        }
        if sizes.is_empty() {
            sizes.push(FrameSize::Unlisted);
        }
        formats.push(CameraFormat {
            fourcc: fourcc_text(code),
            description: c_text(&d.description),
            sizes,
        });
    }
    Ok(formats)
}

/// The driver's line stride is shorter than a line of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StrideError {
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    row: usize,
}

impl fmt::Display for StrideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            format,
            width,
            height,
            stride,
            row,
        } = self;
        write!(
            f,
            "the driver gave {format} {width}x{height} a line stride of {stride} bytes, less than {row}"
        )
    }
}

impl std::error::Error for StrideError {}

/// How the bytes of a buffer become an [`Image`].
#[derive(Debug, Clone, Copy)]
struct Layout {
    format: PixelFormat,
    width: u32,
    height: u32,
    bytesperline: usize,
    /// Bytes a complete raw frame needs (compressed formats: 1).
    min_bytes: usize,
}

impl Layout {
    fn new(format: PixelFormat, width: u32, height: u32, bpl: u32) -> Result<Self, StrideError> {
        let (w, h) = (width as usize, height as usize);
        let bpl = bpl as usize;
        let min_bytes = match format {
            PixelFormat::I420 => bpl * h + 2 * bpl.div_ceil(2) * h.div_ceil(2),
            PixelFormat::Nv12 => bpl * h + bpl * h.div_ceil(2),
            PixelFormat::Yuyv | PixelFormat::Uyvy => bpl * (h - 1) + 2 * w,
            PixelFormat::Mjpeg | PixelFormat::H264 => 1,
        };
        let row = match format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => 2 * w,
            PixelFormat::I420 | PixelFormat::Nv12 => w,
            _ => 0,
        };
        if bpl < row {
            return Err(StrideError {
                format,
                width,
                height,
                stride: bpl,
                row,
            });
        }
        Ok(Self {
            format,
            width,
            height,
            bytesperline: bpl,
            min_bytes,
        })
    }

    fn image<'a>(&self, data: &'a [u8]) -> Option<Image<'a>> {
        if data.len() < self.min_bytes {
            return None;
        }
        Some(match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => Image::Planar(
                Planar::from_contiguous(
                    self.format,
                    self.width,
                    self.height,
                    self.bytesperline,
                    data,
                )
                .ok()?,
            ),
            PixelFormat::Yuyv | PixelFormat::Uyvy => Image::Packed {
                format: self.format,
                width: self.width,
                height: self.height,
                stride: self.bytesperline,
                data,
            },
            PixelFormat::Mjpeg | PixelFormat::H264 => Image::Compressed {
                format: self.format,
                data,
            },
        })
    }
}

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
    pub fn open(path: &Path, req: Request) -> Result<Self, SourceError> {
        let p = path.display().to_string();
        let dev = Device::open(path).map_err(|e| open_error(path, e))?;
        let io_err = |what: &str, e: io::Error| {
            let msg = format!("camera {p}: {what}: {e}");
            if recoverable(&e) {
                SourceError::recoverable(msg)
            } else {
                SourceError::fatal(msg)
            }
        };
        let info = query(&dev, path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EINVAL) => {
                SourceError::fatal(format!("{p} is not a V4L2 device"))
            }
            _ => io_err("VIDIOC_QUERYCAP", e),
        })?;
        if !info.capture {
            return Err(SourceError::fatal(if info.mplane {
                format!(
                    "camera {p} ({}) offers only the multi-planar capture API, which edgestream does not support yet",
                    info.card
                )
            } else {
                format!(
                    "{p} ({}) is not a video capture device with streaming I/O; see --list-devices",
                    info.card
                )
            }));
        }
        let formats = enumerate(&dev, Some((req.width, req.height)))
            .map_err(|e| io_err("listing formats", e))?;
        let choice = negotiate::negotiate(&formats, req)
            .map_err(|e| SourceError::fatal(format!("camera {p} ({}): {e}", info.card)))?;

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
        let got = dev.s_fmt(want).map_err(|e| io_err("VIDIOC_S_FMT", e))?;
        if (got.width, got.height, got.pixelformat) != (want.width, want.height, want.pixelformat) {
            return Err(SourceError::fatal(format!(
                "camera {p}: asked for {} {}x{}, the driver set {} {}x{}",
                choice.pixel_format,
                want.width,
                want.height,
                fourcc_text(got.pixelformat),
                got.width,
                got.height
            )));
        }
        if got.field != sys::FIELD_NONE && got.field != sys::FIELD_ANY {
            log::warn!(
                "camera {p}: the driver delivers interlaced fields (field {}); the picture may comb",
                got.field
            );
        }
        let layout = Layout::new(choice.pixel_format, got.width, got.height, got.bytesperline)
            .map_err(|e| SourceError::fatal(format!("camera {p}: {e}")))?;

        // The frame interval: set it where the driver allows, then read back.
        let mut interval = choice.interval;
        let parm = dev.g_parm().ok();
        if parm.is_some_and(|c| c.capability & sys::CAP_TIMEPERFRAME != 0) {
            let set = dev
                .s_parm(Fract {
                    numerator: choice.interval.num,
                    denominator: choice.interval.den,
                })
                .map_err(|e| io_err("VIDIOC_S_PARM", e))?;
            if set.timeperframe.numerator > 0 && set.timeperframe.denominator > 0 {
                interval = fract(set.timeperframe);
            }
        } else if let Some(c) = parm {
            if c.timeperframe.numerator > 0 && c.timeperframe.denominator > 0 {
                interval = fract(c.timeperframe);
            }
        }
        let fps = reduce(Fraction::new(interval.den, interval.num));

        let count = dev
            .reqbufs(BUFFERS)
            .map_err(|e| io_err("VIDIOC_REQBUFS", e))?;
        if count < 2 {
            return Err(SourceError::recoverable(format!(
                "camera {p}: the driver gave {count} buffers, at least 2 are needed"
            )));
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
                .map_err(|e| io_err("mapping buffers", e))?;
            source.buffers.push(m);
        }
        for i in 0..count {
            source
                .queue
                .dev
                .qbuf(i)
                .map_err(|e| io_err("VIDIOC_QBUF", e))?;
        }
        source
            .queue
            .dev
            .streamon()
            .map_err(|e| io_err("VIDIOC_STREAMON", e))?;
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

    fn gone(&self, what: &str, e: io::Error) -> SourceError {
        let p = self.path.display();
        match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => {
                SourceError::recoverable(format!("camera {p} gone (unplugged?)"))
            }
            _ => SourceError::recoverable(format!("camera {p}: capture error: {what}: {e}")),
        }
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
                        return Err(SourceError::recoverable(format!(
                            "camera {} stalled: no frame for {} s",
                            self.path.display(),
                            self.stall_timeout.as_secs_f64()
                        )));
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
                return Err(SourceError::recoverable(format!(
                    "camera {}: the driver returned buffer {} of {}",
                    self.path.display(),
                    d.index,
                    self.buffers.len()
                )));
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
