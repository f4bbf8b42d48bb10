//! VIDIOC_QUERYCAP: what the device is and which APIs it offers.

use std::io;
use std::os::raw::c_ulong;

use super::{Device, IOC_READ, Zeroed, ioc, ioctl};

pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

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

// The kernel's size (pahole on x86_64 and armhf builds of videodev2.h).
const _: () = assert!(std::mem::size_of::<Capability>() == 104);

// SAFETY: Capability is a repr(C) structure of integers and arrays of them.
unsafe impl Zeroed for Capability {}

pub(super) const VIDIOC_QUERYCAP: c_ulong = ioc(IOC_READ, 0, std::mem::size_of::<Capability>());

impl Device {
    pub fn querycap(&self) -> io::Result<Capability> {
        let mut c = Capability::zeroed();
        ioctl(self.raw(), VIDIOC_QUERYCAP, &mut c)?;
        Ok(c)
    }
}
