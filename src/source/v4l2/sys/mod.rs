//! The V4L2 kernel interface: the structures of `linux/videodev2.h` that
//! edgestream uses, the ioctls on them, and the mmap'd buffers. Every
//! `unsafe` block of the camera code is in this module, one small file per
//! ioctl with its structure, request number and safe function (v4l2r's style).
//!
//! The structures are written out by hand (no bindgen) for the single-planar
//! capture API. Their sizes are checked at compile time against the kernel's
//! for 64- and 32-bit targets, and the ioctl request numbers are computed from
//! those sizes, so a layout mistake makes the kernel answer ENOTTY instead of
//! copying the wrong number of bytes.
//!
//! Nothing here panics, and the `Drop`s (file descriptor, mappings) ignore
//! errors: the release profile aborts on panic, and a camera that has been
//! unplugged makes every call fail.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_ulong;
use std::path::Path;

mod buffer;
mod ctrl;
mod enum_fmt;
mod fmt;
mod frameintervals;
mod framesizes;
mod mmap;
mod parm;
mod querycap;
mod reqbufs;
mod stream;
#[cfg(test)]
mod tests;

pub use buffer::{BUF_FLAG_ERROR, BUF_FLAG_TIMESTAMP_MASK, BUF_FLAG_TIMESTAMP_MONOTONIC};
pub use ctrl::CID_FORCE_KEY_FRAME;
pub use fmt::PixFormat;
pub use frameintervals::FRMIVAL_TYPE_DISCRETE;
pub use framesizes::{FRMSIZE_TYPE_CONTINUOUS, FRMSIZE_TYPE_DISCRETE};
pub use mmap::Mapping;
pub use parm::CAP_TIMEPERFRAME;
pub use querycap::{CAP_DEVICE_CAPS, CAP_STREAMING, CAP_VIDEO_CAPTURE, CAP_VIDEO_CAPTURE_MPLANE};

// ------------------------------------------------------------ constants --

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_ANY: u32 = 0;
pub const FIELD_NONE: u32 = 1;

/// A V4L2 fourcc as the kernel stores it.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

/// `struct v4l2_fract`, shared by the frame interval ioctls.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Fract {
    pub numerator: u32,
    pub denominator: u32,
}

// ------------------------------------------------------- request numbers --

// Each ioctl's module computes its request number from the size of its
// structure (the sizes are checked at compile time there).
const IOC_WRITE: c_ulong = 1;
const IOC_READ: c_ulong = 2;

const fn ioc(dir: c_ulong, nr: c_ulong, size: usize) -> c_ulong {
    (dir << 30) | ((size as c_ulong) << 16) | ((b'V' as c_ulong) << 8) | nr
}
const fn iowr<T>(nr: c_ulong) -> c_ulong {
    ioc(IOC_READ | IOC_WRITE, nr, std::mem::size_of::<T>())
}

/// All-zero values of plain-data structures.
///
/// # Safety
///
/// Implement it only for types for which all-zero bytes are a valid value:
/// the repr(C) structures of this module, which hold integers, arrays, raw
/// pointers and unions of those (as in C).
unsafe trait Zeroed: Sized + Copy {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract: all-zero bytes are a valid `Self`.
        unsafe { std::mem::zeroed() }
    }
}

// ------------------------------------------------------------- device --

/// An open V4L2 device node. Closing cannot fail in a way that matters
/// (`OwnedFd` ignores close errors, as it should for a vanished device).
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
}

/// The ioctl(2) wrapper: `arg` is the structure the request number was
/// computed for.
fn ioctl<T>(fd: RawFd, request: c_ulong, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: every request number in this module encodes the size of the
        // type it is used with (see `ioc` and `iowr`), so the kernel reads
        // and writes at most size_of::<T>() bytes through this valid, uniquely
        // borrowed pointer. syscall() is used because libc declares ioctl's
        // request parameter with different types on different targets.
        let rc = unsafe { libc::syscall(libc::SYS_ioctl, fd, request, arg as *mut T) };
        if rc != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Device {
    /// Opens the node read-write, non-blocking (waits are done with poll).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: open() just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Turns the EINVAL that ends a V4L2 enumeration into `None`, and ENOTTY
/// too (a driver that does not implement the enumeration lists nothing).
fn end_of_list<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTTY)) => Ok(None),
        Err(e) => Err(e),
    }
}
