//! What a producer's byte stream carries, and the pure pieces of reading it:
//! format detection from the first bytes, raw frame sizes, a JPEG splitter
//! and arrival-based timestamps.

use std::fmt;
use std::time::Duration;

use crate::media::{Fraction, PixelFormat};

/// The `source-format` of a command or stdin source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    I420,
    Nv12,
    Yuyv,
    Y4m,
    H264,
    Mjpeg,
}

impl StreamFormat {
    pub const NAMES: &'static str = "i420, nv12, yuyv, y4m, h264 or mjpeg";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "i420" | "yuv420p" | "yuv420" | "yu12" => Self::I420,
            "nv12" => Self::Nv12,
            "yuyv" | "yuyv422" | "yuy2" => Self::Yuyv,
            "y4m" | "yuv4mpegpipe" => Self::Y4m,
            "h264" => Self::H264,
            "mjpeg" | "mjpg" => Self::Mjpeg,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::I420 => "i420",
            Self::Nv12 => "nv12",
            Self::Yuyv => "yuyv",
            Self::Y4m => "y4m",
            Self::H264 => "h264",
            Self::Mjpeg => "mjpeg",
        }
    }

    /// The pixel format the pipeline sees.
    pub fn pixel_format(self) -> PixelFormat {
        match self {
            Self::I420 | Self::Y4m => PixelFormat::I420,
            Self::Nv12 => PixelFormat::Nv12,
            Self::Yuyv => PixelFormat::Yuyv,
            Self::H264 => PixelFormat::H264,
            Self::Mjpeg => PixelFormat::Mjpeg,
        }
    }

    /// The smallest line stride in bytes for `width` (raw formats).
    pub fn min_stride(self, width: u32) -> usize {
        match self {
            Self::Yuyv => width as usize * 2,
            _ => width as usize,
        }
    }

    /// Bytes of one raw frame at luma stride `stride` (I420 chroma lines
    /// are half as long, rounded up, as V4L2 and libcamera lay them out).
    pub fn frame_bytes(self, stride: usize, height: u32) -> Option<usize> {
        let h = height as usize;
        let ch = h.div_ceil(2);
        match self {
            Self::I420 => Some(stride * h + 2 * stride.div_ceil(2) * ch),
            Self::Nv12 => Some(stride * h + stride * ch),
            Self::Yuyv => Some(stride * h),
            _ => None,
        }
    }
}

impl fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Recognises a self-describing stream from its first bytes: a YUV4MPEG2
/// header, an H.264 start code, a JPEG start of image. `None`: not enough
/// bytes to tell, or raw pictures (which need `source-format`).
pub fn detect(first: &[u8]) -> Option<StreamFormat> {
    if first.starts_with(b"YUV4MPEG2") {
        Some(StreamFormat::Y4m)
    } else if first.starts_with(&[0, 0, 0, 1]) || first.starts_with(&[0, 0, 1]) {
        Some(StreamFormat::H264)
    } else if first.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(StreamFormat::Mjpeg)
    } else {
        None
    }
}

/// Bytes [`detect`] needs to decide.
pub const DETECT_BYTES: usize = 9;

/// Finds whole JPEGs (SOI `FF D8` .. EOI `FF D9`) in a buffered stream.
/// Returns the range of the first one, or `None` if it is not complete.
pub fn jpeg_end(buf: &[u8]) -> Option<usize> {
    let mut i = 2;
    while i + 1 < buf.len() {
        if buf[i] == 0xff && buf[i + 1] == 0xd9 {
            return Some(i + 2);
        }
        i += 1;
    }
    None
}

/// Timestamps from arrival at the producer's frame rate: each frame is
/// stamped one frame interval after the one before, which smooths out pipe
/// jitter and the bursts of a producer whose output was buffered. Stamps
/// never go backwards: when arrivals fall more than two frames behind (a
/// producer that dropped frames or paused), the stamp jumps forward to the
/// arrival; when the stamps run more than [`Stamper::MAX_LEAD`] ahead of
/// arrival (a producer faster than its configured rate), they advance by
/// half an interval until they meet it.
#[derive(Debug, Clone)]
pub struct Stamper {
    frame: Duration,
    last: Option<Duration>,
}

impl Stamper {
    pub const MAX_LEAD: Duration = Duration::from_secs(1);

    pub fn new(fps: Fraction) -> Self {
        Self {
            frame: fps.frame_duration(),
            last: None,
        }
    }

    pub fn stamp(&mut self, arrival: Duration) -> Duration {
        let t = match self.last {
            None => arrival,
            Some(last) => {
                let due = last + self.frame;
                if arrival > due + self.frame * 2 {
                    arrival
                } else if due > arrival + Self::MAX_LEAD {
                    arrival.max(last + self.frame / 2)
                } else {
                    due
                }
            }
        };
        self.last = Some(t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_detect() {
        assert_eq!(StreamFormat::parse(" H264 "), Some(StreamFormat::H264));
        assert_eq!(StreamFormat::parse("yuv420p"), Some(StreamFormat::I420));
        assert_eq!(StreamFormat::parse("rgb24"), None);
        assert_eq!(detect(b"YUV4MPEG2 W640"), Some(StreamFormat::Y4m));
        assert_eq!(detect(&[0, 0, 0, 1, 0x67]), Some(StreamFormat::H264));
        assert_eq!(detect(&[0, 0, 1, 0x09]), Some(StreamFormat::H264));
        assert_eq!(detect(&[0xff, 0xd8, 0xff, 0xe0]), Some(StreamFormat::Mjpeg));
        assert_eq!(detect(&[16, 16, 16, 16]), None);
    }

    #[test]
    fn raw_frame_sizes_follow_the_stride() {
        assert_eq!(StreamFormat::I420.frame_bytes(640, 480), Some(460_800));
        // rpicam-vid at 2028 wide pads the lines to 2048.
        assert_eq!(
            StreamFormat::I420.frame_bytes(2048, 1520),
            Some(2048 * 1520 + 2 * 1024 * 760)
        );
        assert_eq!(StreamFormat::Nv12.frame_bytes(640, 480), Some(460_800));
        assert_eq!(StreamFormat::Yuyv.frame_bytes(1280, 480), Some(614_400));
        assert_eq!(StreamFormat::Yuyv.min_stride(640), 1280);
        assert_eq!(StreamFormat::H264.frame_bytes(640, 480), None);
    }

    #[test]
    fn jpeg_ends_at_the_first_eoi() {
        assert_eq!(
            jpeg_end(&[0xff, 0xd8, 1, 2, 0xff, 0xd9, 0xff, 0xd8]),
            Some(6)
        );
        assert_eq!(jpeg_end(&[0xff, 0xd8, 1, 2, 0xff]), None);
    }

    #[test]
    fn stamps_smooth_jitter_and_resync_after_a_gap() {
        let ms = Duration::from_millis;
        let mut s = Stamper::new(Fraction::new(25, 1));
        assert_eq!(s.stamp(ms(1000)), ms(1000));
        assert_eq!(s.stamp(ms(1047)), ms(1040));
        assert_eq!(s.stamp(ms(1075)), ms(1080));
        // A second of nothing: start again from the arrival.
        assert_eq!(s.stamp(ms(2200)), ms(2200));
        assert_eq!(s.stamp(ms(2239)), ms(2240));
    }

    #[test]
    fn a_buffered_burst_keeps_the_frame_spacing_and_never_goes_back() {
        let ms = Duration::from_millis;
        let mut s = Stamper::new(Fraction::new(25, 1));
        assert_eq!(s.stamp(ms(1000)), ms(1000));
        // Ten frames that waited in the pipe arrive within 5 ms.
        let burst: Vec<Duration> = (0..10).map(|i| s.stamp(ms(1500 + i / 2))).collect();
        assert_eq!(burst[0], ms(1500), "late: jumps to the arrival");
        assert_eq!(burst[9], ms(1500 + 9 * 40), "then one frame apart");
        // A producer at twice the configured rate: stamps stay increasing
        // and stop running away from arrival.
        let mut last = burst[9];
        let mut t = ms(1505);
        for _ in 0..200 {
            t += ms(20);
            let st = s.stamp(t);
            assert!(st > last);
            assert!(
                st <= t + Stamper::MAX_LEAD + ms(40),
                "{st:?} vs arrival {t:?}"
            );
            last = st;
        }
    }
}
