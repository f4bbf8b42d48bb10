//! VIDIOC_G_PARM and VIDIOC_S_PARM: the frame interval.

use std::io;
use std::os::raw::c_ulong;

use super::{BUF_TYPE_VIDEO_CAPTURE, Device, Fract, Zeroed, ioctl, iowr};

pub const CAP_TIMEPERFRAME: u32 = 0x1000;

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

const _: () = assert!(std::mem::size_of::<StreamParm>() == 204);

// SAFETY: StreamParm is a repr(C) structure of integers, arrays and unions of those.
unsafe impl Zeroed for StreamParm {}

pub(super) const VIDIOC_G_PARM: c_ulong = iowr::<StreamParm>(21);
pub(super) const VIDIOC_S_PARM: c_ulong = iowr::<StreamParm>(22);

impl Device {
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
}
