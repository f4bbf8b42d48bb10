//! VIDIOC_ENUM_FMT: the pixel formats the device captures.

use std::io;
use std::os::raw::c_ulong;

use super::{BUF_TYPE_VIDEO_CAPTURE, Device, Zeroed, end_of_list, ioctl, iowr};

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

const _: () = assert!(std::mem::size_of::<FmtDesc>() == 64);

// SAFETY: FmtDesc is a repr(C) structure of integers and arrays of them.
unsafe impl Zeroed for FmtDesc {}

pub(super) const VIDIOC_ENUM_FMT: c_ulong = iowr::<FmtDesc>(2);

impl Device {
    /// The `index`th capture format; `Ok(None)` past the last.
    pub fn enum_fmt(&self, index: u32) -> io::Result<Option<FmtDesc>> {
        let mut d = FmtDesc::zeroed();
        d.index = index;
        d.type_ = BUF_TYPE_VIDEO_CAPTURE;
        end_of_list(ioctl(self.raw(), VIDIOC_ENUM_FMT, &mut d).map(|_| d))
    }
}
