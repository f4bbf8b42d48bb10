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
pub mod negotiate;
mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// The V4L2 device nodes present, sorted by number.
pub fn device_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// The stable names (`/dev/v4l/by-id/...`, `by-path/...`) pointing at `node`.
fn stable_names(node: &Path) -> Vec<PathBuf> {
    let target = std::fs::canonicalize(node).unwrap_or_else(|_| node.to_path_buf());
    let mut names = Vec::new();
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if std::fs::canonicalize(e.path()).ok().as_deref() == Some(target.as_path()) {
                names.push(e.path());
            }
        }
    }
    names.sort();
    names
}

/// The text of `--list-devices`.
pub fn list_devices() -> String {
    let nodes = device_nodes();
    if nodes.is_empty() {
        return "no V4L2 devices (/dev/video*) found\n".into();
    }
    let mut out = String::new();
    let mut found = Vec::new();
    for node in nodes {
        let line = match Device::open(&node).and_then(|d| query(&d, &node)) {
            Ok(i) => {
                found.push(i.clone());
                let what = if i.capture {
                    "video capture"
                } else if i.mplane {
                    "multi-planar capture (not supported)"
                } else {
                    "no video capture (metadata or output node)"
                };
                format!(
                    "{}: {} (driver {}, {}): {what}",
                    node.display(),
                    i.card,
                    i.driver,
                    i.bus_info
                )
            }
            Err(e) => format!("{}: cannot open: {e}", node.display()),
        };
        out.push_str(&line);
        out.push('\n');
        for name in stable_names(&node) {
            out.push_str(&format!("    also {}\n", name.display()));
        }
    }
    if let Some(hint) = csi::csi_hint(&found) {
        out.push_str(&format!("note: {hint}\n"));
    }
    out
}

/// The text of `--list-formats` for one device.
pub fn list_formats(path: &Path) -> Result<String, String> {
    let dev = Device::open(path).map_err(|e| open_error(path, e).message)?;
    let info = query(&dev, path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTTY) | Some(libc::EINVAL) => {
            format!("{} is not a V4L2 device", path.display())
        }
        _ => format!("{}: {e}", path.display()),
    })?;
    let formats = enumerate(&dev, None).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "{}: {} (driver {}, {})\n{}",
        path.display(),
        info.card,
        info.driver,
        info.bus_info,
        negotiate::describe(&formats)
    ))
}

/// The text of `--list-formats`: the `source` camera, or every capture
/// device if the source is not a camera.
pub fn list_formats_for(source: &crate::config::SourceSpec) -> Result<String, String> {
    if let crate::config::SourceSpec::Device(path) = source {
        return list_formats(path);
    }
    let mut out = String::new();
    for node in device_nodes() {
        let capture = Device::open(&node)
            .and_then(|d| query(&d, &node))
            .is_ok_and(|i| i.capture);
        if capture {
            match list_formats(&node) {
                Ok(text) => out.push_str(&text),
                Err(e) => out.push_str(&format!("{e}\n")),
            }
        }
    }
    if out.is_empty() {
        return Err("no V4L2 capture devices found (see --list-devices)".into());
    }
    Ok(out)
}

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
    fn new(format: PixelFormat, width: u32, height: u32, bpl: u32) -> Result<Self, String> {
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
            return Err(format!(
                "the driver gave {format} {width}x{height} a line stride of {bpl} bytes, less than {row}"
            ));
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
mod tests {
    use super::*;

    #[test]
    fn layouts_honour_the_stride_and_check_sizes() {
        let l = Layout::new(PixelFormat::I420, 6, 4, 8).unwrap();
        assert_eq!(l.min_bytes, 8 * 4 + 2 * 4 * 2);
        let buf = vec![0u8; l.min_bytes];
        match l.image(&buf) {
            Some(Image::Planar(p)) => {
                assert_eq!(p.strides, [8, 4, 4]);
                assert_eq!(p.planes.map(|p| p.len()), [32, 8, 8]);
            }
            other => panic!("{other:?}"),
        }
        assert!(l.image(&buf[1..]).is_none(), "short frame");
        let l = Layout::new(PixelFormat::Nv12, 6, 4, 8).unwrap();
        assert_eq!(l.min_bytes, 8 * 4 + 8 * 2);
        let l = Layout::new(PixelFormat::Yuyv, 6, 4, 16).unwrap();
        assert_eq!(l.min_bytes, 16 * 3 + 12);
        assert!(Layout::new(PixelFormat::Yuyv, 6, 4, 10).is_err());
        let l = Layout::new(PixelFormat::Mjpeg, 6, 4, 0).unwrap();
        assert!(matches!(
            l.image(&[0xff, 0xd8]),
            Some(Image::Compressed { data, .. }) if data.len() == 2
        ));
    }

    #[test]
    fn slow_cameras_get_three_frame_intervals() {
        assert_eq!(stall_timeout(Fraction::new(30, 1)), STALL_TIMEOUT);
        assert_eq!(stall_timeout(Fraction::new(1, 1)), Duration::from_secs(3));
    }

    #[test]
    fn helpers() {
        assert_eq!(fourcc_text(sys::fourcc(b"Y16 ")), "Y16");
        assert_eq!(fourcc_text(sys::fourcc(b"MJPG")), "MJPG");
        assert_eq!(c_text(b"vivid\0\0junk"), "vivid");
        assert_eq!(reduce(Fraction::new(30000, 1000)), Fraction::new(30, 1));
        assert_eq!(
            reduce(Fraction::new(30000, 1001)),
            Fraction::new(30000, 1001)
        );
    }

    #[test]
    fn a_missing_camera_is_recoverable() {
        let e = V4l2Source::open(
            Path::new("/dev/video-edgestream-test-missing"),
            Request {
                width: 640,
                height: 480,
                fps: 30,
                format: None,
            },
        )
        .err()
        .unwrap();
        assert!(e.recoverable, "{e}");
        assert!(e.message.contains("is not there"), "{e}");
        let e = V4l2Source::open(
            Path::new("/dev/null"),
            Request {
                width: 640,
                height: 480,
                fps: 30,
                format: None,
            },
        )
        .err()
        .unwrap();
        assert!(!e.recoverable, "{e}");
        assert!(e.message.contains("not a V4L2 device"), "{e}");
    }
}
