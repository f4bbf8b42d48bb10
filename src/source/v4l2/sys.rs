//! The V4L2 kernel interface: the structures of `linux/videodev2.h` that
//! edgestream uses, the ioctls on them, and the mmap'd buffers. Every
//! `unsafe` block of the camera code is in this file, one small safe function
//! per ioctl (v4l2r's style).
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
use std::os::raw::{c_int, c_ulong, c_void};
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

// ------------------------------------------------------------ constants --

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_ANY: u32 = 0;
pub const FIELD_NONE: u32 = 1;

pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
pub const CAP_TIMEPERFRAME: u32 = 0x1000;

pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

pub const BUF_FLAG_ERROR: u32 = 0x0040;
pub const BUF_FLAG_TIMESTAMP_MASK: u32 = 0xe000;
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x2000;

/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (codec class base + 229).
pub const CID_FORCE_KEY_FRAME: u32 = 0x0099_0900 + 229;

/// A V4L2 fourcc as the kernel stores it.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

// ----------------------------------------------------------- structures --

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FmtDesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FrmSizeEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    /// `discrete` (width, height) in the first two words, or `stepwise`
    /// (min_width, max_width, step_width, min_height, max_height, step_height).
    pub u: [u32; 6],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FrmIvalEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    /// `discrete` in the first, or `stepwise` (min, max, step).
    pub u: [Fract; 3],
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_format`: the union holds pointers (`v4l2_window`), so it is
/// pointer-aligned: 208 bytes on 64-bit targets, 204 on 32-bit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub type_: u32,
    pub fmt: FormatUnion,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub raw_data: [u8; 200],
    _align: [*const c_void; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union BufferM {
    pub offset: u32,
    pub userptr: c_ulong,
    pub planes: *mut c_void,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: Timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: BufferM,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CaptureParm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: Fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamParm {
    pub type_: u32,
    pub parm: StreamParmUnion,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union StreamParmUnion {
    pub capture: CaptureParm,
    pub raw_data: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Control {
    pub id: u32,
    pub value: i32,
}

// The kernel's sizes (pahole on x86_64 and armhf builds of videodev2.h).
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Capability>() == 104);
    assert!(size_of::<FmtDesc>() == 64);
    assert!(size_of::<FrmSizeEnum>() == 44);
    assert!(size_of::<FrmIvalEnum>() == 52);
    assert!(size_of::<PixFormat>() == 48);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(size_of::<Timecode>() == 16);
    assert!(size_of::<StreamParm>() == 204);
    assert!(size_of::<Control>() == 8);
    #[cfg(target_pointer_width = "64")]
    {
        assert!(size_of::<Format>() == 208);
        assert!(size_of::<Buffer>() == 88);
    }
    // Checked with `cargo check --target armv7-unknown-linux-gnueabihf` (the
    // libc crate's 32-bit time_t, the kernel's time32 ABI).
    #[cfg(target_pointer_width = "32")]
    {
        assert!(size_of::<Format>() == 204);
        assert!(size_of::<Buffer>() == 68);
    }
};

// ------------------------------------------------------- request numbers --

const IOC_WRITE: c_ulong = 1;
const IOC_READ: c_ulong = 2;

const fn ioc(dir: c_ulong, nr: c_ulong, size: usize) -> c_ulong {
    (dir << 30) | ((size as c_ulong) << 16) | ((b'V' as c_ulong) << 8) | nr
}
const fn iowr<T>(nr: c_ulong) -> c_ulong {
    ioc(IOC_READ | IOC_WRITE, nr, std::mem::size_of::<T>())
}

const VIDIOC_QUERYCAP: c_ulong = ioc(IOC_READ, 0, std::mem::size_of::<Capability>());
const VIDIOC_ENUM_FMT: c_ulong = iowr::<FmtDesc>(2);
const VIDIOC_S_FMT: c_ulong = iowr::<Format>(5);
const VIDIOC_REQBUFS: c_ulong = iowr::<RequestBuffers>(8);
const VIDIOC_QUERYBUF: c_ulong = iowr::<Buffer>(9);
const VIDIOC_QBUF: c_ulong = iowr::<Buffer>(15);
const VIDIOC_DQBUF: c_ulong = iowr::<Buffer>(17);
const VIDIOC_STREAMON: c_ulong = ioc(IOC_WRITE, 18, std::mem::size_of::<c_int>());
const VIDIOC_STREAMOFF: c_ulong = ioc(IOC_WRITE, 19, std::mem::size_of::<c_int>());
const VIDIOC_G_PARM: c_ulong = iowr::<StreamParm>(21);
const VIDIOC_S_PARM: c_ulong = iowr::<StreamParm>(22);
const VIDIOC_S_CTRL: c_ulong = iowr::<Control>(28);
const VIDIOC_ENUM_FRAMESIZES: c_ulong = iowr::<FrmSizeEnum>(74);
const VIDIOC_ENUM_FRAMEINTERVALS: c_ulong = iowr::<FrmIvalEnum>(75);

/// All-zero values of plain-data structures.
///
/// # Safety
///
/// Implement it only for types for which all-zero bytes are a valid value:
/// the repr(C) structures of this file, which hold integers, arrays, raw
/// pointers and unions of those (as in C).
unsafe trait Zeroed: Sized + Copy {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract: all-zero bytes are a valid `Self`.
        unsafe { std::mem::zeroed() }
    }
}
// SAFETY: Capability is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for Capability {}
// SAFETY: FmtDesc is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for FmtDesc {}
// SAFETY: FrmSizeEnum is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for FrmSizeEnum {}
// SAFETY: FrmIvalEnum is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for FrmIvalEnum {}
// SAFETY: Format is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for Format {}
// SAFETY: Buffer is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for Buffer {}
// SAFETY: StreamParm is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for StreamParm {}

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
        // SAFETY: every request number in this file encodes the size of the
        // type it is used with (see the constants above), so the kernel reads
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

    pub fn querycap(&self) -> io::Result<Capability> {
        let mut c = Capability::zeroed();
        ioctl(self.raw(), VIDIOC_QUERYCAP, &mut c)?;
        Ok(c)
    }

    /// The `index`th capture format; `Ok(None)` past the last.
    pub fn enum_fmt(&self, index: u32) -> io::Result<Option<FmtDesc>> {
        let mut d = FmtDesc::zeroed();
        d.index = index;
        d.type_ = BUF_TYPE_VIDEO_CAPTURE;
        end_of_list(ioctl(self.raw(), VIDIOC_ENUM_FMT, &mut d).map(|_| d))
    }

    pub fn enum_framesizes(&self, fourcc: u32, index: u32) -> io::Result<Option<FrmSizeEnum>> {
        let mut s = FrmSizeEnum::zeroed();
        s.index = index;
        s.pixel_format = fourcc;
        end_of_list(ioctl(self.raw(), VIDIOC_ENUM_FRAMESIZES, &mut s).map(|_| s))
    }

    pub fn enum_frameintervals(
        &self,
        fourcc: u32,
        width: u32,
        height: u32,
        index: u32,
    ) -> io::Result<Option<FrmIvalEnum>> {
        let mut i = FrmIvalEnum::zeroed();
        i.index = index;
        i.pixel_format = fourcc;
        i.width = width;
        i.height = height;
        end_of_list(ioctl(self.raw(), VIDIOC_ENUM_FRAMEINTERVALS, &mut i).map(|_| i))
    }

    /// Sets the capture format; returns what the driver chose.
    pub fn s_fmt(&self, pix: PixFormat) -> io::Result<PixFormat> {
        let mut f = Format::zeroed();
        f.type_ = BUF_TYPE_VIDEO_CAPTURE;
        f.fmt.pix = pix;
        ioctl(self.raw(), VIDIOC_S_FMT, &mut f)?;
        // SAFETY: for a capture buffer type the kernel fills the `pix` member.
        Ok(unsafe { f.fmt.pix })
    }

    pub fn g_parm(&self) -> io::Result<CaptureParm> {
        let mut p = StreamParm::zeroed();
        p.type_ = BUF_TYPE_VIDEO_CAPTURE;
        ioctl(self.raw(), VIDIOC_G_PARM, &mut p)?;
        // SAFETY: for a capture buffer type the kernel fills `capture`.
        Ok(unsafe { p.parm.capture })
    }

    /// Sets the frame interval; returns the parameters the driver chose.
    pub fn s_parm(&self, timeperframe: Fract) -> io::Result<CaptureParm> {
        let mut p = StreamParm::zeroed();
        p.type_ = BUF_TYPE_VIDEO_CAPTURE;
        p.parm.capture = CaptureParm {
            timeperframe,
            ..CaptureParm::default()
        };
        ioctl(self.raw(), VIDIOC_S_PARM, &mut p)?;
        // SAFETY: as in g_parm.
        Ok(unsafe { p.parm.capture })
    }

    pub fn s_ctrl(&self, id: u32, value: i32) -> io::Result<()> {
        let mut c = Control { id, value };
        ioctl(self.raw(), VIDIOC_S_CTRL, &mut c)
    }

    /// Asks for `count` mmap buffers (0 frees them); returns how many the
    /// driver allocated.
    pub fn reqbufs(&self, count: u32) -> io::Result<u32> {
        let mut r = RequestBuffers {
            count,
            type_: BUF_TYPE_VIDEO_CAPTURE,
            memory: MEMORY_MMAP,
            ..RequestBuffers::default()
        };
        ioctl(self.raw(), VIDIOC_REQBUFS, &mut r)?;
        Ok(r.count)
    }

    fn buffer(index: u32) -> Buffer {
        let mut b = Buffer::zeroed();
        b.index = index;
        b.type_ = BUF_TYPE_VIDEO_CAPTURE;
        b.memory = MEMORY_MMAP;
        b
    }

    /// Maps buffer `index` (after `reqbufs`).
    pub fn map_buffer(&self, index: u32) -> io::Result<Mapping> {
        let mut b = Self::buffer(index);
        ioctl(self.raw(), VIDIOC_QUERYBUF, &mut b)?;
        // SAFETY: for MMAP buffers the kernel sets `m.offset`.
        let offset = unsafe { b.m.offset };
        let len = b.length as usize;
        if len == 0 {
            return Err(io::Error::other(format!("buffer {index} has length 0")));
        }
        // SAFETY: mapping a V4L2 buffer as its documentation says: a fresh
        // shared read-only mapping of `length` bytes at the offset the driver
        // gave; the kernel chooses the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.raw(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        Ok(Mapping { ptr, len })
    }

    pub fn qbuf(&self, index: u32) -> io::Result<()> {
        let mut b = Self::buffer(index);
        ioctl(self.raw(), VIDIOC_QBUF, &mut b)
    }

    /// Takes a filled buffer off the queue; `Ok(None)` if none is ready.
    pub fn dqbuf(&self) -> io::Result<Option<Dequeued>> {
        let mut b = Self::buffer(0);
        match ioctl(self.raw(), VIDIOC_DQBUF, &mut b) {
            Ok(()) => Ok(Some(Dequeued {
                index: b.index,
                bytesused: b.bytesused,
                flags: b.flags,
                sequence: b.sequence,
                timestamp: Duration::new(
                    b.timestamp.tv_sec.max(0) as u64,
                    (b.timestamp.tv_usec.clamp(0, 999_999) as u32) * 1000,
                ),
            })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn streamon(&self) -> io::Result<()> {
        let mut t: c_int = BUF_TYPE_VIDEO_CAPTURE as c_int;
        ioctl(self.raw(), VIDIOC_STREAMON, &mut t)
    }

    pub fn streamoff(&self) -> io::Result<()> {
        let mut t: c_int = BUF_TYPE_VIDEO_CAPTURE as c_int;
        ioctl(self.raw(), VIDIOC_STREAMOFF, &mut t)
    }

    /// Waits up to `timeout` for a filled buffer. Returns whether one is
    /// ready; POLLERR/POLLHUP (a vanished device) is an error.
    pub fn poll_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as c_int;
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if rc == 0 {
            return Ok(false);
        }
        if p.revents & libc::POLLIN != 0 {
            return Ok(true);
        }
        if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(
                "the device reported an error (POLLERR): disconnected or streaming failed",
            ));
        }
        Ok(false)
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

/// What DQBUF said about a filled buffer.
#[derive(Debug, Clone, Copy)]
pub struct Dequeued {
    pub index: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub sequence: u32,
    pub timestamp: Duration,
}

/// One mmap'd capture buffer, read-only. Unmapped on drop (errors ignored).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; it is only
// read through `&self`, and moving it to another thread moves the ownership.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The first `n` bytes (at most the whole buffer).
    pub fn bytes(&self, n: usize) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes, valid
        // until this value is dropped, which the returned borrow prevents.
        // The driver writes into it only while the buffer is queued, and
        // callers read only buffers they have dequeued and not requeued.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), n.min(self.len)) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mmap returned, once; no borrow of
        // it outlives `self`. A failure (not expected) only leaks the region.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_headers() {
        // Values from linux/videodev2.h on x86_64.
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(VIDIOC_QUERYCAP, 0x80685600);
            assert_eq!(VIDIOC_ENUM_FMT, 0xc0405602);
            assert_eq!(VIDIOC_S_FMT, 0xc0d05605);
            assert_eq!(VIDIOC_REQBUFS, 0xc0145608);
            assert_eq!(VIDIOC_QBUF, 0xc058560f);
            assert_eq!(VIDIOC_DQBUF, 0xc0585611);
            assert_eq!(VIDIOC_STREAMON, 0x40045612);
            assert_eq!(VIDIOC_S_PARM, 0xc0cc5616);
            assert_eq!(VIDIOC_S_CTRL, 0xc008561c);
            assert_eq!(VIDIOC_ENUM_FRAMESIZES, 0xc02c564a);
            assert_eq!(VIDIOC_ENUM_FRAMEINTERVALS, 0xc034564b);
        }
        assert_eq!(fourcc(b"YUYV"), 0x56595559);
    }

    #[test]
    fn opening_a_missing_node_is_an_error_not_a_panic() {
        let e = Device::open(Path::new("/dev/nonexistent-video")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
