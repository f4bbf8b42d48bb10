//! The built-in test pattern: scrolling colour bars, a bouncing box, a strip
//! of changing noise along the bottom, and the frame number and wall-clock
//! time burned in, so a viewer can see frames advance and judge latency
//! against a clock. The noise stands in for a camera sensor's: without it a
//! synthetic picture compresses so well that the configured bitrate (and the
//! network path's capacity) would never be exercised.
//!
//! Drawn straight into one reused I420 buffer. Every row of the bars is the
//! same, so each frame is mostly row copies from a precomputed double-width
//! row: cheap enough not to matter next to the encoder, even on a Pi Zero.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{FrameSource, Pace, Pacer, SourceError, SourceFormat, i420_frame};
use crate::media::{Fraction, Frame, PixelFormat};

/// SMPTE-style 75% bars in BT.601 limited range (Y, U, V).
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
];

/// 5x7 glyphs for digits, capital letters (lower case is drawn as upper
/// case), ':', '.', '#', '-' and '/', one byte per row, low 5 bits. Shared
/// with the "no signal" slate ([`crate::slate`]).
pub(crate) fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c.to_ascii_uppercase() {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        '#' => [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'Q' => [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'X' => [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
        'Z' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
        ' ' => [0; 7],
        _ => return None,
    })
}

pub struct TestPattern {
    format: SourceFormat,
    pacer: Pacer,
    buf: Vec<u8>,
    /// Two periods of one row of bars per plane, so any scroll offset is a
    /// single slice.
    rows: [Vec<u8>; 3],
    noise: fastrand::Rng,
}

/// The test pattern's size is odd or below 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeError {
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { width, height } = self;
        write!(
            f,
            "test pattern size {width}x{height}: both must be even and at least 16"
        )
    }
}

impl std::error::Error for SizeError {}

impl TestPattern {
    pub fn new(width: u32, height: u32, fps: Fraction, pace: Pace) -> Result<Self, SizeError> {
        if width < 16 || height < 16 || width % 2 != 0 || height % 2 != 0 {
            return Err(SizeError { width, height });
        }
        let (w, cw) = (width as usize, width as usize / 2);
        let bar = |x: usize, period: usize| BARS[x * 8 / period];
        let rows = [
            (0..2 * w).map(|x| bar(x % w, w).0).collect(),
            (0..2 * cw).map(|x| bar(x % cw, cw).1).collect(),
            (0..2 * cw).map(|x| bar(x % cw, cw).2).collect(),
        ];
        Ok(Self {
            format: SourceFormat {
                width,
                height,
                fps,
                pixel_format: PixelFormat::I420,
                description: "test pattern".into(),
            },
            pacer: Pacer::new(fps, pace),
            buf: vec![0; w * height as usize * 3 / 2],
            rows,
            noise: fastrand::Rng::with_seed(0x5eed),
        })
    }

    /// Draws frame `index` into the buffer.
    pub fn draw(&mut self, index: u64, wall: SystemTime) {
        let (w, h) = (self.format.width as usize, self.format.height as usize);
        let (cw, ch) = (w / 2, h / 2);
        let (y, uv) = self.buf.split_at_mut(w * h);
        let (u, v) = uv.split_at_mut(cw * ch);

        // Bars scroll left by 1/4 of a bar width per frame (in chroma pixels).
        let step = (cw / 32).max(1);
        let off = (index as usize * step) % cw;
        for (plane, row, width, rows, o) in [
            (&mut *y, &self.rows[0], w, h, off * 2),
            (&mut *u, &self.rows[1], cw, ch, off),
            (&mut *v, &self.rows[2], cw, ch, off),
        ] {
            let src = &row[o..o + width];
            for r in 0..rows {
                plane[r * width..(r + 1) * width].copy_from_slice(src);
            }
        }

        // A white box bouncing across the lower half.
        let side = (h / 6).max(2) & !1;
        let span = w - side;
        let t = (index as usize * (w / 64).max(1)) % (2 * span);
        let bx = if t < span { t } else { 2 * span - t } & !1;
        let by = (h - side - h / 8) & !1;
        fill_rect(y, w, bx, by, side, side, 235);
        fill_rect(u, cw, bx / 2, by / 2, side / 2, side / 2, 128);
        fill_rect(v, cw, bx / 2, by / 2, side / 2, side / 2, 128);

        // Sensor-like noise along the bottom eighth, mid-grey on average.
        let strip = (h / 8) & !1;
        let noise = &mut y[(h - strip) * w..];
        self.noise.fill(noise);
        for px in noise.iter_mut() {
            *px = 64 + (*px >> 1);
        }
        fill_rect(u, cw, 0, ch - strip / 2, cw, strip / 2, 128);
        fill_rect(v, cw, 0, ch - strip / 2, cw, strip / 2, 128);

        // Frame number and UTC time of day on a black band.
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() % 86_400;
        let text = format!(
            "#{index:07} {:02}:{:02}:{:02}.{:03}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            since.subsec_millis()
        );
        let scale = (h / 120).max(1);
        let band = 11 * scale;
        let band_rows = band.min(h) & !1;
        fill_rect(y, w, 0, 0, w, band_rows, 16);
        fill_rect(u, cw, 0, 0, cw, band_rows / 2, 128);
        fill_rect(v, cw, 0, 0, cw, band_rows / 2, 128);
        draw_text(y, w, h, 2 * scale, 2 * scale, scale, &text);
    }
}

pub(crate) fn fill_rect(
    plane: &mut [u8],
    stride: usize,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    value: u8,
) {
    let rows = plane.len() / stride;
    for r in y..(y + h).min(rows) {
        let start = r * stride + x.min(stride);
        let end = r * stride + (x + w).min(stride);
        plane[start..end].fill(value);
    }
}

pub(crate) fn draw_text(
    y: &mut [u8],
    stride: usize,
    height: usize,
    x0: usize,
    y0: usize,
    scale: usize,
    text: &str,
) {
    for (i, c) in text.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        let gx = x0 + i * 6 * scale;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let px = gx + col * scale;
                    let py = y0 + row * scale;
                    if px + scale <= stride && py + scale <= height {
                        fill_rect(y, stride, px, py, scale, scale, 235);
                    }
                }
            }
        }
    }
}

impl FrameSource for TestPattern {
    fn format(&self) -> &SourceFormat {
        &self.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        let (index, pts) = self.pacer.wait_next();
        self.draw(index, SystemTime::now());
        i420_frame(&self.format, &self.buf, pts).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Image;
    use std::time::Duration;

    #[test]
    fn frames_differ_and_carry_the_counter() {
        let mut src = TestPattern::new(320, 240, Fraction::new(30, 1), Pace::Asap).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(3600);
        src.draw(1, t);
        let a = src.buf.clone();
        src.draw(2, t);
        let b = src.buf.clone();
        assert_ne!(a, b);
        // The text band holds white glyphs on black.
        let band: Vec<u8> = a[..320 * 22].to_vec();
        assert!(band.contains(&235) && band.contains(&16));
        // The background scrolls: the middle row changes from frame to frame.
        let row = 120 * 320;
        assert_ne!(a[row..row + 320], b[row..row + 320]);
        // The noise strip changes every frame too.
        let last = 239 * 320;
        assert_ne!(a[last..last + 320], b[last..last + 320]);
    }

    #[test]
    fn next_frame_gives_i420_planes_with_rising_pts() {
        let mut src = TestPattern::new(64, 48, Fraction::new(30, 1), Pace::Asap).unwrap();
        let p1 = src.next_frame().unwrap().unwrap().pts;
        let f = src.next_frame().unwrap().unwrap();
        assert!(f.pts > p1);
        let Image::Planar(p) = f.image else { panic!() };
        assert_eq!(p.planes.map(|p| p.len()), [64 * 48, 32 * 24, 32 * 24]);
        assert!(TestPattern::new(15, 48, Fraction::new(30, 1), Pace::Asap).is_err());
        assert!(TestPattern::new(64, 47, Fraction::new(30, 1), Pace::Asap).is_err());
    }
}
