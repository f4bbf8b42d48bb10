//! VIDIOC_QBUF and VIDIOC_DQBUF: hands buffers to the driver and takes
//! filled ones back.

use std::io;
use std::os::raw::{c_ulong, c_void};
use std::time::Duration;

use super::{BUF_TYPE_VIDEO_CAPTURE, Device, MEMORY_MMAP, Zeroed, ioctl, iowr};

pub const BUF_FLAG_ERROR: u32 = 0x0040;
pub const BUF_FLAG_TIMESTAMP_MASK: u32 = 0xe000;
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x2000;

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

const _: () = {
    use std::mem::size_of;
    assert!(size_of::<Timecode>() == 16);
    #[cfg(target_pointer_width = "64")]
    assert!(size_of::<Buffer>() == 88);
    // Checked with `cargo check --target armv7-unknown-linux-gnueabihf` (the
    // libc crate's 32-bit time_t, the kernel's time32 ABI).
    #[cfg(target_pointer_width = "32")]
    assert!(size_of::<Buffer>() == 68);
};

// SAFETY: Buffer is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for Buffer {}

pub(super) const VIDIOC_QBUF: c_ulong = iowr::<Buffer>(15);
pub(super) const VIDIOC_DQBUF: c_ulong = iowr::<Buffer>(17);

/// What DQBUF said about a filled buffer.
#[derive(Debug, Clone, Copy)]
pub struct Dequeued {
    pub index: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub sequence: u32,
    pub timestamp: Duration,
}

impl Device {
    /// A capture mmap buffer structure for buffer `index`.
    pub(super) fn buffer(index: u32) -> Buffer {
        let mut b = Buffer::zeroed();
        b.index = index;
        b.type_ = BUF_TYPE_VIDEO_CAPTURE;
        b.memory = MEMORY_MMAP;
        b
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
}
