//! VIDIOC_S_CTRL: sets a control (forcing a keyframe).

use std::io;
use std::os::raw::c_ulong;

use super::{Device, ioctl, iowr};

/// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (codec class base + 229).
pub const CID_FORCE_KEY_FRAME: u32 = 0x0099_0900 + 229;

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Control {
    pub id: u32,
    pub value: i32,
}

const _: () = assert!(std::mem::size_of::<Control>() == 8);

pub(super) const VIDIOC_S_CTRL: c_ulong = iowr::<Control>(28);

impl Device {
    pub fn s_ctrl(&self, id: u32, value: i32) -> io::Result<()> {
        let mut c = Control { id, value };
        ioctl(self.raw(), VIDIOC_S_CTRL, &mut c)
    }
}
