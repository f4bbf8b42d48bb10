//! Types shared along the data path: raw pictures handed from a source to the
//! encoder, and encoded frames handed from the encoder to every sink.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use crate::h264::{self, ParameterSets};

/// A frame rate or time base as a fraction (`num / den` frames per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub num: u32,
    pub den: u32,
}

impl Fraction {
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The duration of one frame at this rate.
    pub fn frame_duration(self) -> Duration {
        Duration::from_nanos(1_000_000_000u64 * self.den as u64 / self.num.max(1) as u64)
    }

    /// The presentation time of frame `index` counted from 0.
    pub fn frame_time(self, index: u64) -> Duration {
        let nanos = index as u128 * 1_000_000_000u128 * self.den as u128 / self.num.max(1) as u128;
        Duration::from_nanos(nanos as u64)
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Pixel layouts the data path knows. Sources report one of these; the
/// encoder takes the planar ones directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar 4:2:0: Y, then U, then V (V4L2 `YU12`).
    I420,
    /// Semi-planar 4:2:0: Y, then interleaved UV.
    Nv12,
    /// Packed 4:2:2: Y0 U Y1 V.
    Yuyv,
    /// Packed 4:2:2: U Y0 V Y1.
    Uyvy,
    /// Motion JPEG: one JPEG per frame.
    Mjpeg,
    /// H.264 Annex-B access units, encoded by the camera.
    H264,
}

impl PixelFormat {
    /// The V4L2 fourcc name of the format.
    pub fn fourcc(self) -> &'static str {
        match self {
            Self::I420 => "YU12",
            Self::Nv12 => "NV12",
            Self::Yuyv => "YUYV",
            Self::Uyvy => "UYVY",
            Self::Mjpeg => "MJPG",
            Self::H264 => "H264",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fourcc())
    }
}

/// A planar 4:2:0 picture whose planes borrow someone else's memory: a
/// capture buffer, a file buffer or a conversion buffer.
#[derive(Debug, Clone, Copy)]
pub struct Planar<'a> {
    /// `I420` (3 planes) or `Nv12` (2 planes; `planes[2]` is empty).
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

impl<'a> Planar<'a> {
    /// Lays out a contiguous I420 or NV12 buffer with the given luma stride
    /// (chroma strides follow the usual V4L2 rules: half for I420, equal for
    /// NV12). Fails if the buffer is too small.
    pub fn from_contiguous(
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        data: &'a [u8],
    ) -> Result<Self, PlanarError> {
        let h = height as usize;
        let ch = h.div_ceil(2);
        let (strides, sizes) = match format {
            PixelFormat::I420 => {
                let cs = stride.div_ceil(2);
                ([stride, cs, cs], [stride * h, cs * ch, cs * ch])
            }
            PixelFormat::Nv12 => ([stride, stride, 0], [stride * h, stride * ch, 0]),
            other => return Err(PlanarError::NotPlanar(other)),
        };
        if stride < width as usize {
            return Err(PlanarError::ShortStride { stride, width });
        }
        let need: usize = sizes.iter().sum();
        if data.len() < need {
            return Err(PlanarError::ShortBuffer {
                format,
                width,
                height,
                stride,
                need,
                got: data.len(),
            });
        }
        let (y, rest) = data.split_at(sizes[0]);
        let (u, rest) = rest.split_at(sizes[1]);
        let v = &rest[..sizes[2]];
        Ok(Self {
            format,
            width,
            height,
            planes: [y, u, v],
            strides,
        })
    }
}

/// Why a buffer cannot be seen as a planar picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanarError {
    /// The format is not I420 or NV12.
    NotPlanar(PixelFormat),
    /// The line stride is shorter than the width.
    ShortStride { stride: usize, width: u32 },
    /// The buffer is shorter than the picture.
    ShortBuffer {
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        need: usize,
        got: usize,
    },
}

impl fmt::Display for PlanarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPlanar(other) => write!(f, "{other} is not a planar 4:2:0 format"),
            Self::ShortStride { stride, width } => {
                write!(f, "stride {stride} is less than the width {width}")
            }
            Self::ShortBuffer {
                format,
                width,
                height,
                stride,
                need,
                got,
            } => write!(
                f,
                "{format} {width}x{height} (stride {stride}) needs {need} bytes, the buffer has {got}"
            ),
        }
    }
}

impl std::error::Error for PlanarError {}

/// What a source hands the encoder for one frame.
#[derive(Debug, Clone, Copy)]
pub enum Image<'a> {
    /// Planar 4:2:0, ready for x264.
    Planar(Planar<'a>),
    /// Packed 4:2:2 (`Yuyv` or `Uyvy`) with its line stride: converted first.
    Packed {
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        data: &'a [u8],
    },
    /// A compressed frame (`Mjpeg`, or `H264` for passthrough).
    Compressed { format: PixelFormat, data: &'a [u8] },
}

/// One captured frame. Borrows the source's buffer until dropped.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Capture time on CLOCK_MONOTONIC.
    pub pts: Duration,
    pub image: Image<'a>,
    /// Gives the buffer back to its owner (a capture buffer back to the
    /// driver) when the frame is dropped.
    pub release: Release<'a>,
}

impl<'a> Frame<'a> {
    /// A frame whose buffer needs no giving back (a reused buffer).
    pub fn new(pts: Duration, image: Image<'a>) -> Self {
        Self {
            pts,
            image,
            release: Release::none(),
        }
    }
}

/// Something that takes a borrowed buffer back, e.g. a V4L2 queue that
/// requeues the capture buffer a frame was read from.
pub trait ReleaseBuffer {
    /// Called once, when the frame is dropped. Must not panic.
    fn release(&mut self);
}

/// The drop hook of a [`Frame`]: calls [`ReleaseBuffer::release`] once.
pub struct Release<'a>(Option<&'a mut dyn ReleaseBuffer>);

impl<'a> Release<'a> {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn new(owner: &'a mut dyn ReleaseBuffer) -> Self {
        Self(Some(owner))
    }
}

impl fmt::Debug for Release<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Release(pending)"
        } else {
            "Release(none)"
        })
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Some(owner) = self.0.take() {
            owner.release();
        }
    }
}

/// The most NAL units one encoded frame may carry. x264 emits SPS, PPS, SEI
/// and one NAL per slice; sliced threads make one slice per thread.
pub const MAX_NALS: usize = 64;

/// One encoded access unit, shared read-only by every sink.
///
/// The bytes are Annex-B as the encoder wrote them (start codes included),
/// copied once; `nals` indexes each NAL unit without its start code.
#[derive(Debug)]
pub struct EncodedFrame {
    data: Vec<u8>,
    nals: heapless::Vec<Range<u32>, MAX_NALS>,
    /// Capture time on CLOCK_MONOTONIC.
    pub pts: Duration,
    /// Contains an IDR slice: a decoder can start here.
    pub keyframe: bool,
    /// Counts frames from 0 in encoder order.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// No start code or no NAL unit at all.
    Empty,
    /// More than [`MAX_NALS`] NAL units.
    TooManyNals,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("access unit holds no NAL unit"),
            Self::TooManyNals => write!(f, "access unit holds more than {MAX_NALS} NAL units"),
        }
    }
}

impl std::error::Error for FrameError {}

impl EncodedFrame {
    /// Indexes an Annex-B access unit.
    pub fn from_annex_b(data: Vec<u8>, pts: Duration, seq: u64) -> Result<Self, FrameError> {
        let mut nals = heapless::Vec::new();
        let mut keyframe = false;
        for r in h264::annex_b_nals(&data) {
            keyframe |= h264::nal_unit_type(data[r.start]) == h264::nal_type::IDR;
            nals.push(r.start as u32..r.end as u32)
                .map_err(|_| FrameError::TooManyNals)?;
        }
        if nals.is_empty() {
            return Err(FrameError::Empty);
        }
        Ok(Self {
            data,
            nals,
            pts,
            keyframe,
            seq,
        })
    }

    /// The whole access unit, Annex-B.
    pub fn annex_b(&self) -> &[u8] {
        &self.data
    }

    /// Each NAL unit (header byte first, no start code).
    pub fn nals(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.nals
            .iter()
            .map(|r| &self.data[r.start as usize..r.end as usize])
    }

    /// The size of the NAL units without start codes.
    pub fn payload_len(&self) -> usize {
        self.nals.iter().map(|r| (r.end - r.start) as usize).sum()
    }

    /// The SPS and PPS carried in this frame, if any.
    pub fn parameter_sets(&self) -> Option<ParameterSets> {
        if !self.keyframe {
            return None;
        }
        ParameterSets::from_annex_b(&self.data)
    }
}

/// What every sink must know about the stream before its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    pub fps: Fraction,
    /// Target bitrate in kbit/s (advertised in FLV metadata).
    pub bitrate_kbps: u32,
    pub params: ParameterSets,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_times() {
        let f = Fraction::new(30000, 1001);
        assert_eq!(f.frame_time(30000), Duration::from_secs(1001));
        assert_eq!(
            Fraction::new(25, 1).frame_duration(),
            Duration::from_millis(40)
        );
        assert_eq!(f.to_string(), "30000/1001");
    }

    #[test]
    fn planar_layout_checks_size() {
        let buf = vec![0u8; 16 * 8 * 3 / 2];
        let p = Planar::from_contiguous(PixelFormat::I420, 16, 8, 16, &buf).unwrap();
        assert_eq!(p.planes.map(|p| p.len()), [128, 32, 32]);
        assert_eq!(p.strides, [16, 8, 8]);
        let p = Planar::from_contiguous(PixelFormat::Nv12, 16, 8, 16, &buf).unwrap();
        assert_eq!(p.planes.map(|p| p.len()), [128, 64, 0]);
        assert!(Planar::from_contiguous(PixelFormat::I420, 16, 8, 16, &buf[1..]).is_err());
        assert!(Planar::from_contiguous(PixelFormat::I420, 16, 8, 8, &buf).is_err());
    }

    #[test]
    fn encoded_frame_indexes_nals() {
        let au = vec![
            0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 1, 0, 0, 1, 0x65, 9,
        ];
        let f = EncodedFrame::from_annex_b(au, Duration::ZERO, 0).unwrap();
        assert!(f.keyframe);
        assert_eq!(f.nals().len(), 3);
        assert_eq!(f.payload_len(), 4 + 2 + 2);
        assert!(f.parameter_sets().is_some());
        assert_eq!(
            EncodedFrame::from_annex_b(vec![1, 2], Duration::ZERO, 0).unwrap_err(),
            FrameError::Empty
        );
        let many: Vec<u8> = (0..=MAX_NALS).flat_map(|_| [0, 0, 1, 0x41]).collect();
        assert_eq!(
            EncodedFrame::from_annex_b(many, Duration::ZERO, 0).unwrap_err(),
            FrameError::TooManyNals
        );
    }
}
