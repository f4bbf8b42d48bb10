//! VIDIOC_S_FMT: sets the capture format.

use std::io;
use std::os::raw::{c_ulong, c_void};

use super::{BUF_TYPE_VIDEO_CAPTURE, Device, Zeroed, ioctl, iowr};

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

const _: () = {
    use std::mem::size_of;
    assert!(size_of::<PixFormat>() == 48);
    #[cfg(target_pointer_width = "64")]
    assert!(size_of::<Format>() == 208);
    // Checked with `cargo check --target armv7-unknown-linux-gnueabihf`.
    #[cfg(target_pointer_width = "32")]
    assert!(size_of::<Format>() == 204);
};

// SAFETY: Format is a repr(C) structure of integers, arrays, pointers and unions of those.
unsafe impl Zeroed for Format {}

pub(super) const VIDIOC_S_FMT: c_ulong = iowr::<Format>(5);

impl Device {
    /// Sets the capture format; returns what the driver chose.
    pub fn s_fmt(&self, pix: PixFormat) -> io::Result<PixFormat> {
        let mut f = Format::zeroed();
        f.type_ = BUF_TYPE_VIDEO_CAPTURE;
        f.fmt.pix = pix;
        ioctl(self.raw(), VIDIOC_S_FMT, &mut f)?;
        // SAFETY: for a capture buffer type the kernel fills the `pix` member.
        Ok(unsafe { f.fmt.pix })
    }
}
