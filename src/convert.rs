//! Pixel format conversion for camera formats x264 cannot take directly:
//! packed 4:2:2 (`YUYV`, `UYVY`) and interleaved YCbCr 4:4:4 (what the MJPEG
//! decoder gives) to I420, in one pass over the input into a reused buffer.
//!
//! Chroma is subsampled vertically by averaging each pair of rows (rounding
//! up, like libyuv); an odd last row keeps its own chroma.

use std::fmt;

use edgestream_pixels::{self as pixels, Packed};

use crate::media::{PixelFormat, Planar};

/// A reused I420 picture: planes contiguous, luma stride = width, chroma
/// stride = width / 2 (rounded up). It grows only when the size changes.
#[derive(Debug, Default, Clone)]
pub struct I420Buffer {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl I420Buffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sizes the buffer for `width` x `height` (no allocation if unchanged).
    pub fn resize(&mut self, width: u32, height: u32) {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let len = w * h + 2 * cw * ch;
        if self.data.len() != len {
            self.data.resize(len, 0);
        }
        self.width = width;
        self.height = height;
    }

    /// The three planes, mutable: (Y, U, V).
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        let (y, rest) = self.data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(c);
        (y, u, v)
    }

    /// The picture, for the encoder.
    pub fn planar(&self) -> Planar<'_> {
        let w = self.width as usize;
        let h = self.height as usize;
        let c = w.div_ceil(2) * h.div_ceil(2);
        let (y, rest) = self.data.split_at(w * h);
        let (u, v) = rest.split_at(c);
        Planar {
            format: PixelFormat::I420,
            width: self.width,
            height: self.height,
            planes: [y, u, v],
            strides: [w, w.div_ceil(2), w.div_ceil(2)],
        }
    }
}

/// A picture's format and size, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.format, self.width, self.height)
    }
}

/// Why a picture could not be converted to I420.
#[derive(Debug)]
pub enum ConvertError {
    /// `packed_to_i420` was given a format that is not packed 4:2:2.
    NotPacked(PixelFormat),
    /// Packed 4:2:2 needs an even, non-zero width (and a height).
    OddWidth(Picture),
    /// The line stride is shorter than a line of pixels.
    ShortStride {
        picture: Picture,
        stride: usize,
        row: usize,
    },
    /// The buffer is shorter than the picture.
    ShortBuffer {
        picture: Picture,
        stride: usize,
        need: usize,
        got: usize,
    },
    /// The decoded 4:4:4 buffer is shorter than the picture.
    ShortYcbcr {
        width: u32,
        height: u32,
        need: usize,
        got: usize,
    },
    /// The JPEG decoder refused the frame.
    #[cfg(feature = "mjpeg")]
    Jpeg(zune_jpeg::errors::DecodeErrors),
    /// The JPEG headers give no size.
    JpegWithoutSize,
    /// The decoder's output is not 3 bytes a pixel.
    JpegNotYcbcr {
        width: usize,
        height: usize,
        output: usize,
    },
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPacked(format) => write!(f, "{format} is not a packed 4:2:2 format"),
            Self::OddWidth(p) => write!(f, "{p}: the width must be even and not 0"),
            Self::ShortStride {
                picture,
                stride,
                row,
            } => write!(f, "{picture}: stride {stride} is less than {row} bytes"),
            Self::ShortBuffer {
                picture,
                stride,
                need,
                got,
            } => write!(
                f,
                "{picture} (stride {stride}) needs {need} bytes, got {got}"
            ),
            Self::ShortYcbcr {
                width,
                height,
                need,
                got,
            } => write!(f, "YCbCr {width}x{height} needs {need} bytes, got {got}"),
            #[cfg(feature = "mjpeg")]
            Self::Jpeg(e) => write!(f, "bad JPEG frame: {e:?}"),
            Self::JpegWithoutSize => f.write_str("JPEG frame without a size"),
            Self::JpegNotYcbcr {
                width,
                height,
                output,
            } => write!(
                f,
                "JPEG frame {width}x{height} is not YCbCr (decoder output {output} bytes)"
            ),
        }
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "mjpeg")]
            Self::Jpeg(e) => Some(e),
            _ => None,
        }
    }
}

/// Converts a packed 4:2:2 picture (`Yuyv` or `Uyvy`, rows `stride` bytes
/// apart) into `out`, which is resized to fit.
pub fn packed_to_i420(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    src: &[u8],
    out: &mut I420Buffer,
) -> Result<(), ConvertError> {
    let layout = match format {
        PixelFormat::Yuyv => Packed::Yuyv,
        PixelFormat::Uyvy => Packed::Uyvy,
        other => return Err(ConvertError::NotPacked(other)),
    };
    let picture = Picture {
        format,
        width,
        height,
    };
    if width % 2 != 0 || width == 0 || height == 0 {
        return Err(ConvertError::OddWidth(picture));
    }
    let (w, h) = (width as usize, height as usize);
    if stride < 2 * w {
        return Err(ConvertError::ShortStride {
            picture,
            stride,
            row: 2 * w,
        });
    }
    let need = stride * (h - 1) + 2 * w;
    if src.len() < need {
        return Err(ConvertError::ShortBuffer {
            picture,
            stride,
            need,
            got: src.len(),
        });
    }
    out.resize(width, height);
    let (y, u, v) = out.planes_mut();
    pixels::packed422_to_i420(layout, w, h, stride, src, y, u, v);
    Ok(())
}

/// Converts interleaved full-range YCbCr 4:4:4 (3 bytes a pixel, rows
/// `3 * width` apart, as the MJPEG decoder writes it) to limited-range I420,
/// averaging each 2x2 block of chroma.
pub fn ycbcr444_to_i420(
    width: u32,
    height: u32,
    src: &[u8],
    out: &mut I420Buffer,
) -> Result<(), ConvertError> {
    let (w, h) = (width as usize, height as usize);
    if src.len() < 3 * w * h {
        return Err(ConvertError::ShortYcbcr {
            width,
            height,
            need: 3 * w * h,
            got: src.len(),
        });
    }
    out.resize(width, height);
    let (y, u, v) = out.planes_mut();
    pixels::ycbcr444_to_i420(w, h, src, y, u, v);
    Ok(())
}

/// Decodes MJPEG frames to I420 with zune-jpeg (pure Rust). The decoder
/// writes interleaved YCbCr into a buffer kept between frames, then one pass
/// subsamples it into the I420 buffer. (zune-jpeg sets up its own working
/// buffers per frame; that is the one allocation per frame on this path.)
#[cfg(feature = "mjpeg")]
#[derive(Debug, Default)]
pub struct MjpegDecoder {
    ycc: Vec<u8>,
}

#[cfg(feature = "mjpeg")]
impl MjpegDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one JPEG into `out`; returns its size.
    pub fn decode(
        &mut self,
        jpeg: &[u8],
        out: &mut I420Buffer,
    ) -> Result<(u32, u32), ConvertError> {
        use zune_jpeg::JpegDecoder;
        use zune_jpeg::zune_core::bytestream::ZCursor;
        use zune_jpeg::zune_core::colorspace::ColorSpace;
        use zune_jpeg::zune_core::options::DecoderOptions;

        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::YCbCr)
            .set_max_width(8192)
            .set_max_height(8192);
        let mut dec = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        dec.decode_headers().map_err(ConvertError::Jpeg)?;
        let (w, h) = dec.dimensions().ok_or(ConvertError::JpegWithoutSize)?;
        let need = dec
            .output_buffer_size()
            .ok_or(ConvertError::JpegWithoutSize)?;
        if need != 3 * w * h {
            return Err(ConvertError::JpegNotYcbcr {
                width: w,
                height: h,
                output: need,
            });
        }
        if self.ycc.len() != need {
            self.ycc.resize(need, 0);
        }
        dec.decode_into(&mut self.ycc).map_err(ConvertError::Jpeg)?;
        ycbcr444_to_i420(w as u32, h as u32, &self.ycc, out)?;
        Ok((w as u32, h as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious per-pixel conversion, for comparison.
    fn reference(
        order: pixels::Order,
        w: usize,
        h: usize,
        stride: usize,
        src: &[u8],
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let cw = w / 2;
        let ch = h.div_ceil(2);
        let mut y = vec![0u8; w * h];
        let mut u = vec![0u8; cw * ch];
        let mut v = vec![0u8; cw * ch];
        for row in 0..h {
            for x in 0..w {
                let mp = row * stride + (x / 2) * 4;
                y[row * w + x] = src[mp + if x % 2 == 0 { order.y0 } else { order.y1 }];
            }
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let a = 2 * cy * stride + cx * 4;
                let b = if 2 * cy + 1 < h {
                    (2 * cy + 1) * stride + cx * 4
                } else {
                    a
                };
                u[cy * cw + cx] =
                    (src[a + order.u] as u32 + src[b + order.u] as u32).div_ceil(2) as u8;
                v[cy * cw + cx] =
                    (src[a + order.v] as u32 + src[b + order.v] as u32).div_ceil(2) as u8;
            }
        }
        (y, u, v)
    }

    #[test]
    fn packed_matches_the_reference_with_odd_strides_and_heights() {
        let mut rng = fastrand::Rng::with_seed(42);
        let mut out = I420Buffer::new();
        for (format, layout) in [
            (PixelFormat::Yuyv, Packed::Yuyv),
            (PixelFormat::Uyvy, Packed::Uyvy),
        ] {
            let order = layout.order();
            for &(w, h, pad) in &[
                (2usize, 1usize, 0usize),
                (2, 2, 1),
                (6, 3, 7),
                (16, 9, 0),
                (30, 17, 3),
                (64, 48, 13),
                (640, 11, 1),
            ] {
                let stride = 2 * w + pad;
                // The last row needs no padding after it.
                let mut src = vec![0u8; stride * (h - 1) + 2 * w];
                rng.fill(&mut src);
                packed_to_i420(format, w as u32, h as u32, stride, &src, &mut out).unwrap();
                let (ry, ru, rv) = reference(order, w, h, stride, &src);
                let p = out.planar();
                assert_eq!(p.planes[0], &ry[..], "{format} {w}x{h}+{pad}: Y");
                assert_eq!(p.planes[1], &ru[..], "{format} {w}x{h}+{pad}: U");
                assert_eq!(p.planes[2], &rv[..], "{format} {w}x{h}+{pad}: V");
                assert_eq!(p.strides, [w, w / 2, w / 2]);
            }
        }
    }

    #[test]
    fn packed_rejects_bad_shapes() {
        let mut out = I420Buffer::new();
        let buf = vec![0u8; 100];
        let e = packed_to_i420(PixelFormat::Yuyv, 3, 2, 8, &buf, &mut out).unwrap_err();
        assert!(e.to_string().contains("even"), "{e}");
        let e = packed_to_i420(PixelFormat::Yuyv, 8, 2, 10, &buf, &mut out).unwrap_err();
        assert!(e.to_string().contains("stride 10"), "{e}");
        let e = packed_to_i420(PixelFormat::Yuyv, 8, 8, 16, &buf, &mut out).unwrap_err();
        assert!(e.to_string().contains("needs 128 bytes, got 100"), "{e}");
        let e = packed_to_i420(PixelFormat::Nv12, 8, 2, 16, &buf, &mut out).unwrap_err();
        assert!(e.to_string().contains("not a packed"), "{e}");
    }

    #[test]
    fn ycbcr444_averages_two_by_two_and_limits_the_range() {
        let (ly, lc) = (&pixels::RANGE.0, &pixels::RANGE.1);
        assert_eq!(
            (ly[0], ly[255], lc[0], lc[128], lc[255]),
            (16, 235, 16, 128, 240)
        );
        let (w, h) = (3usize, 3usize);
        let src: Vec<u8> = (0..w * h)
            .flat_map(|i| [25 * i as u8, 10 * i as u8, 100 + i as u8])
            .collect();
        let mut out = I420Buffer::new();
        ycbcr444_to_i420(w as u32, h as u32, &src, &mut out).unwrap();
        let p = out.planar();
        let want_y: Vec<u8> = (0..9).map(|i| ly[25 * i]).collect();
        assert_eq!(p.planes[0], &want_y[..]);
        // Block (0,0): pixels 0,1,3,4 -> Cb 0,10,30,40 -> 20.
        // Block (1,0): pixels 2,2,5,5 (edge repeated) -> 20,20,50,50 -> 35.
        // Block (0,1): pixels 6,7,6,7 -> 60,70,60,70 -> 65. Block (1,1): 8 -> 80.
        assert_eq!(p.planes[1], &[lc[20], lc[35], lc[65], lc[80]]);
        assert_eq!(p.planes[2], &[lc[102], lc[104], lc[107], lc[108]]);
        assert!(ycbcr444_to_i420(4, 4, &src, &mut out).is_err());
    }

    /// A 64x48 4:2:2 JPEG (ffmpeg's testsrc) and ffmpeg's own decode of it
    /// to I420, made with:
    /// `ffmpeg -f lavfi -i testsrc=size=64x48 -frames:v 1 -pix_fmt yuvj422p -q:v 3 testsrc-64x48.jpg`
    /// `ffmpeg -i testsrc-64x48.jpg -pix_fmt yuv420p -f rawvideo testsrc-64x48.i420`
    #[cfg(feature = "mjpeg")]
    #[test]
    fn mjpeg_decodes_like_ffmpeg() {
        let jpeg = include_bytes!("../tests/fixtures/testsrc-64x48.jpg");
        let want = include_bytes!("../tests/fixtures/testsrc-64x48.i420");
        let mut dec = MjpegDecoder::new();
        let mut out = I420Buffer::new();
        assert_eq!(dec.decode(jpeg, &mut out).unwrap(), (64, 48));
        let p = out.planar();
        let got: Vec<u8> = p.planes.concat();
        assert_eq!(got.len(), want.len());
        // Decoders differ by rounding (IDCT, chroma filters): compare closely,
        // not bit for bit.
        let (y, c) = want.split_at(64 * 48);
        let diff = |a: &[u8], b: &[u8]| {
            let total: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
            let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
            (total as f64 / a.len() as f64, max)
        };
        let (mean_y, max_y) = diff(&got[..64 * 48], y);
        let (mean_c, _) = diff(&got[64 * 48..], c);
        assert!(
            mean_y < 1.0 && max_y <= 8,
            "luma differs: mean {mean_y}, max {max_y}"
        );
        // Chroma goes 4:2:2 -> 4:4:4 (zune's upsampling) -> 4:2:0 here, and
        // 4:2:2 -> 4:2:0 in ffmpeg: the filters differ at testsrc's hard
        // colour edges. Swapped or unscaled chroma would be far worse.
        let (cb, cr) = c.split_at(c.len() / 2);
        let swapped: Vec<u8> = [cr, cb].concat();
        let (mean_swapped, _) = diff(&got[64 * 48..], &swapped);
        assert!(
            mean_c < 8.0 && mean_swapped > 3.0 * mean_c,
            "chroma differs: mean {mean_c} (swapped: {mean_swapped})"
        );
        // The decoder's buffers are reused for the next frame of that size.
        let ptr = out.planar().planes[0].as_ptr();
        dec.decode(jpeg, &mut out).unwrap();
        assert_eq!(out.planar().planes[0].as_ptr(), ptr);
        // Garbage is an error, not a panic.
        assert!(dec.decode(b"\xff\xd8not a jpeg", &mut out).is_err());
        // A truncated frame (a USB glitch) may decode partly; it must not panic.
        let _ = dec.decode(&jpeg[..jpeg.len() / 2], &mut out);
    }

    #[test]
    fn buffer_is_reused_when_the_size_stays() {
        let mut b = I420Buffer::new();
        b.resize(64, 48);
        let p = b.planar().planes[0].as_ptr();
        b.resize(64, 48);
        assert_eq!(b.planar().planes[0].as_ptr(), p);
        assert_eq!(b.planar().planes.map(|p| p.len()), [3072, 768, 768]);
    }
}
