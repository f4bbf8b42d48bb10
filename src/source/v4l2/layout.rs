//! How the bytes of a dequeued buffer become an [`Image`]: the line stride
//! the driver set, and the size a complete frame needs.

use std::fmt;

use crate::media::{Image, PixelFormat, Planar};

/// The driver's line stride is shorter than a line of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrideError {
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    row: usize,
}

impl fmt::Display for StrideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            format,
            width,
            height,
            stride,
            row,
        } = self;
        write!(
            f,
            "the driver gave {format} {width}x{height} a line stride of {stride} bytes, less than {row}"
        )
    }
}

impl std::error::Error for StrideError {}

/// How the bytes of a buffer become an [`Image`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) format: PixelFormat,
    width: u32,
    height: u32,
    bytesperline: usize,
    /// Bytes a complete raw frame needs (compressed formats: 1).
    pub(super) min_bytes: usize,
}

impl Layout {
    pub(super) fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        bpl: u32,
    ) -> Result<Self, StrideError> {
        let (w, h) = (width as usize, height as usize);
        let bpl = bpl as usize;
        let min_bytes = match format {
            PixelFormat::I420 => bpl * h + 2 * bpl.div_ceil(2) * h.div_ceil(2),
            PixelFormat::Nv12 => bpl * h + bpl * h.div_ceil(2),
            PixelFormat::Yuyv | PixelFormat::Uyvy => bpl * (h - 1) + 2 * w,
            PixelFormat::Mjpeg | PixelFormat::H264 => 1,
        };
        let row = match format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => 2 * w,
            PixelFormat::I420 | PixelFormat::Nv12 => w,
            _ => 0,
        };
        if bpl < row {
            return Err(StrideError {
                format,
                width,
                height,
                stride: bpl,
                row,
            });
        }
        Ok(Self {
            format,
            width,
            height,
            bytesperline: bpl,
            min_bytes,
        })
    }

    pub(super) fn image<'a>(&self, data: &'a [u8]) -> Option<Image<'a>> {
        if data.len() < self.min_bytes {
            return None;
        }
        Some(match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => Image::Planar(
                Planar::from_contiguous(
                    self.format,
                    self.width,
                    self.height,
                    self.bytesperline,
                    data,
                )
                .ok()?,
            ),
            PixelFormat::Yuyv | PixelFormat::Uyvy => Image::Packed {
                format: self.format,
                width: self.width,
                height: self.height,
                stride: self.bytesperline,
                data,
            },
            PixelFormat::Mjpeg | PixelFormat::H264 => Image::Compressed {
                format: self.format,
                data,
            },
        })
    }
}
