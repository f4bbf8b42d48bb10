//! VIDIOC_ENUM_FRAMEINTERVALS: the frame intervals of one format and size.

use std::io;
use std::os::raw::c_ulong;

use super::{Device, Fract, Zeroed, end_of_list, ioctl, iowr};

pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

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

const _: () = assert!(std::mem::size_of::<FrmIvalEnum>() == 52);

// SAFETY: FrmIvalEnum is a repr(C) structure of integers and arrays of them.
unsafe impl Zeroed for FrmIvalEnum {}

pub(super) const VIDIOC_ENUM_FRAMEINTERVALS: c_ulong = iowr::<FrmIvalEnum>(75);

impl Device {
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
}
