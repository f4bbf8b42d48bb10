//! VIDIOC_ENUM_FRAMESIZES: the frame sizes of one pixel format.

use std::io;
use std::os::raw::c_ulong;

use super::{Device, Zeroed, end_of_list, ioctl, iowr};

pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMSIZE_TYPE_CONTINUOUS: u32 = 2;

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

const _: () = assert!(std::mem::size_of::<FrmSizeEnum>() == 44);

// SAFETY: FrmSizeEnum is a repr(C) structure of integers and arrays of them.
unsafe impl Zeroed for FrmSizeEnum {}

pub(super) const VIDIOC_ENUM_FRAMESIZES: c_ulong = iowr::<FrmSizeEnum>(74);

impl Device {
    pub fn enum_framesizes(&self, fourcc: u32, index: u32) -> io::Result<Option<FrmSizeEnum>> {
        let mut s = FrmSizeEnum::zeroed();
        s.index = index;
        s.pixel_format = fourcc;
        end_of_list(ioctl(self.raw(), VIDIOC_ENUM_FRAMESIZES, &mut s).map(|_| s))
    }
}
