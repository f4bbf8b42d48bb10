//! VIDIOC_REQBUFS: allocates (or frees) the mmap capture buffers.

use std::io;
use std::os::raw::c_ulong;

use super::{BUF_TYPE_VIDEO_CAPTURE, Device, MEMORY_MMAP, ioctl, iowr};

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

const _: () = assert!(std::mem::size_of::<RequestBuffers>() == 20);

pub(super) const VIDIOC_REQBUFS: c_ulong = iowr::<RequestBuffers>(8);

impl Device {
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
}
