//! What can go wrong with a camera, by operation: opening the node, setting
//! it up, capturing. Every error names the device; the kernel's error is
//! its `source()`. Whether reopening may help follows from the kind.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::layout::StrideError;
use super::negotiate::NoFit;
use crate::media::PixelFormat;
use crate::source::Recovery;

/// A camera that cannot be opened, set up or read.
#[derive(Debug)]
pub struct CameraError {
    pub device: PathBuf,
    pub kind: CameraErrorKind,
}

/// What went wrong with a camera.
#[derive(Debug)]
pub enum CameraErrorKind {
    /// open(2) failed (ENOENT: not there, EACCES: permission, EBUSY: busy).
    Open(io::Error),
    /// VIDIOC_QUERYCAP refused: not a V4L2 device.
    NotV4l2(io::Error),
    /// Only the multi-planar capture API, which is not supported.
    MultiPlanarOnly { card: String },
    /// Not a video capture device with streaming I/O.
    NotCapture { card: String },
    /// An ioctl while setting the camera up.
    Setup { op: &'static str, source: io::Error },
    /// None of the camera's formats fits the request.
    NoFit { card: String, source: NoFit },
    /// The driver set another format than asked for.
    FormatRefused {
        asked: PixelFormat,
        width: u32,
        height: u32,
        got: String,
        got_width: u32,
        got_height: u32,
    },
    /// The driver's line stride cannot hold a line.
    Stride(StrideError),
    /// Fewer than 2 capture buffers.
    TooFewBuffers(u32),
    /// The device vanished (ENODEV, ENXIO): unplugged.
    Gone,
    /// An ioctl or poll while capturing.
    Capture { op: &'static str, source: io::Error },
    /// No frame within the stall timeout.
    Stalled(Duration),
    /// The driver returned a buffer index it was never given.
    BadBuffer { index: u32, count: usize },
}

impl CameraError {
    pub fn new(device: impl Into<PathBuf>, kind: CameraErrorKind) -> Self {
        Self {
            device: device.into(),
            kind,
        }
    }

    /// The device node failed to open.
    pub fn open(device: impl Into<PathBuf>, e: io::Error) -> Self {
        Self::new(device, CameraErrorKind::Open(e))
    }

    /// An ioctl failed while capturing: the device is gone, or may recover.
    pub fn capture(device: impl Into<PathBuf>, op: &'static str, e: io::Error) -> Self {
        let kind = match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => CameraErrorKind::Gone,
            _ => CameraErrorKind::Capture { op, source: e },
        };
        Self::new(device, kind)
    }

    /// Whether reopening the camera may help.
    pub fn recovery(&self) -> Recovery {
        use CameraErrorKind::*;
        match &self.kind {
            Open(e) | Setup { source: e, .. } => errno_recovery(e),
            NotV4l2(_) | MultiPlanarOnly { .. } | NotCapture { .. } | NoFit { .. } => {
                Recovery::Fatal
            }
            FormatRefused { .. } | Stride(_) => Recovery::Fatal,
            TooFewBuffers(_) | Gone | Capture { .. } | Stalled(_) | BadBuffer { .. } => {
                Recovery::Reopen
            }
        }
    }
}

/// Whether an error opening or using a camera may go away by itself (the
/// device unplugged, not there yet, busy) rather than needing a fix.
fn errno_recovery(e: &io::Error) -> Recovery {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENOTTY) => Recovery::Fatal,
        _ => Recovery::Reopen,
    }
}

impl fmt::Display for CameraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CameraErrorKind::*;
        let p = self.device.display();
        match &self.kind {
            Open(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => write!(f, "camera {p} is not there"),
                Some(libc::EACCES) | Some(libc::EPERM) => write!(
                    f,
                    "camera {p}: permission denied; add the user to the `video` group"
                ),
                Some(libc::EBUSY) => write!(f, "camera {p} is busy (another program has it)"),
                _ => write!(f, "camera {p}: {e}"),
            },
            NotV4l2(_) => write!(f, "{p} is not a V4L2 device"),
            MultiPlanarOnly { card } => write!(
                f,
                "camera {p} ({card}) offers only the multi-planar capture API, which edgestream does not support yet"
            ),
            NotCapture { card } => write!(
                f,
                "{p} ({card}) is not a video capture device with streaming I/O; see --list-devices"
            ),
            Setup { op, source } => write!(f, "camera {p}: {op}: {source}"),
            NoFit { card, source } => write!(f, "camera {p} ({card}): {source}"),
            FormatRefused {
                asked,
                width,
                height,
                got,
                got_width,
                got_height,
            } => write!(
                f,
                "camera {p}: asked for {asked} {width}x{height}, the driver set {got} {got_width}x{got_height}"
            ),
            Stride(e) => write!(f, "camera {p}: {e}"),
            TooFewBuffers(count) => write!(
                f,
                "camera {p}: the driver gave {count} buffers, at least 2 are needed"
            ),
            Gone => write!(f, "camera {p} gone (unplugged?)"),
            Capture { op, source } => write!(f, "camera {p}: capture error: {op}: {source}"),
            Stalled(after) => write!(
                f,
                "camera {p} stalled: no frame for {} s",
                after.as_secs_f64()
            ),
            BadBuffer { index, count } => write!(
                f,
                "camera {p}: the driver returned buffer {index} of {count}"
            ),
        }
    }
}

impl std::error::Error for CameraError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use CameraErrorKind::*;
        match &self.kind {
            Open(e) | NotV4l2(e) | Setup { source: e, .. } | Capture { source: e, .. } => Some(e),
            NoFit { source, .. } => Some(source),
            Stride(e) => Some(e),
            MultiPlanarOnly { .. }
            | NotCapture { .. }
            | FormatRefused { .. }
            | TooFewBuffers(_)
            | Gone
            | Stalled(_)
            | BadBuffer { .. } => None,
        }
    }
}
