//! The "no signal" card sent while the source is down: a still grey picture
//! with why ("CAMERA OFFLINE", "PRIVACY PAUSE") and the UTC time of day,
//! drawn into one reused I420 buffer with the test pattern's glyphs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::media::{Fraction, Frame, PixelFormat};
use crate::reopen::SlateReason;
use crate::source::testsrc::{draw_text, fill_rect};
use crate::source::{SourceError, SourceFormat, i420_frame};

/// Background luma: dark grey, so the white text stands out and a viewer
/// can tell the card from a black (broken) picture.
const BACKGROUND: u8 = 48;

/// The card, at one size.
pub struct Slate {
    format: SourceFormat,
    buf: Vec<u8>,
    /// What the buffer shows now (redrawn only when this changes).
    shown: Option<(SlateReason, u64)>,
}

impl Slate {
    /// A card of `width`x`height` (rounded down to even, at least 16x16);
    /// `fps` is the stream's nominal rate (the card is sent slower).
    pub fn new(width: u32, height: u32, fps: Fraction) -> Self {
        let (w, h) = ((width & !1).max(16), (height & !1).max(16));
        Self {
            format: SourceFormat {
                width: w,
                height: h,
                fps,
                pixel_format: PixelFormat::I420,
                description: "no-signal slate".into(),
            },
            buf: vec![0; w as usize * h as usize * 3 / 2],
            shown: None,
        }
    }

    pub fn format(&self) -> &SourceFormat {
        &self.format
    }

    /// Draws the card for `reason` at wall-clock `wall`.
    pub fn draw(&mut self, reason: SlateReason, wall: SystemTime) {
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if self.shown == Some((reason, secs)) {
            return;
        }
        self.shown = Some((reason, secs));
        let (w, h) = (self.format.width as usize, self.format.height as usize);
        let (y, uv) = self.buf.split_at_mut(w * h);
        y.fill(BACKGROUND);
        uv.fill(128);
        let day = secs % 86_400;
        let clock = format!("{:02}:{:02}:{:02} UTC", day / 3600, day / 60 % 60, day % 60);
        let title = reason.text();
        // The headline spans about 80% of the width; the clock half that size.
        let scale = (w * 8 / 10 / (6 * title.len())).max(1);
        let small = (scale / 2).max(1);
        let title_w = title.len() * 6 * scale;
        let clock_w = clock.len() * 6 * small;
        let block_h = 7 * scale + 4 * small + 7 * small;
        let top = h.saturating_sub(block_h) / 2;
        // A black band behind the headline.
        let band_top = top.saturating_sub(scale) & !1;
        let band_h = (9 * scale + 1) & !1;
        fill_rect(y, w, 0, band_top, w, band_h, 16);
        draw_text(y, w, h, w.saturating_sub(title_w) / 2, top, scale, title);
        draw_text(
            y,
            w,
            h,
            w.saturating_sub(clock_w) / 2,
            top + 7 * scale + 4 * small,
            small,
            &clock,
        );
    }

    /// The card as a frame captured at `pts`.
    pub fn frame(&self, pts: Duration) -> Result<Frame<'_>, SourceError> {
        i420_frame(&self.format, &self.buf, pts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Image;

    #[test]
    fn the_card_says_why_and_shows_the_clock() {
        let mut s = Slate::new(320, 240, Fraction::new(30, 1));
        let t = UNIX_EPOCH + Duration::from_secs(3600 * 13 + 62);
        s.draw(SlateReason::Offline, t);
        let offline = s.buf.clone();
        let (w, h) = (320, 240);
        let luma = &offline[..w * h];
        assert!(luma.contains(&235), "white text");
        assert!(luma.contains(&16), "black band");
        assert_eq!(luma[0], BACKGROUND);
        assert!(offline[w * h..].iter().all(|&c| c == 128), "grey chroma");
        s.draw(SlateReason::Offline, t + Duration::from_millis(500));
        assert_eq!(s.buf, offline, "same second: same picture");
        s.draw(SlateReason::Offline, t + Duration::from_secs(1));
        assert_ne!(s.buf, offline, "the clock ticks");
        s.draw(SlateReason::Privacy, t);
        assert_ne!(s.buf, offline, "another headline");
        let f = s.frame(Duration::from_secs(1)).unwrap();
        let Image::Planar(p) = f.image else { panic!() };
        assert_eq!(p.planes.map(|p| p.len()), [w * h, w * h / 4, w * h / 4]);
    }

    #[test]
    fn odd_and_tiny_sizes_are_made_valid() {
        let s = Slate::new(7, 33, Fraction::new(30, 1));
        assert_eq!((s.format().width, s.format().height), (16, 32));
        let mut s = Slate::new(16, 16, Fraction::new(30, 1));
        s.draw(SlateReason::Privacy, UNIX_EPOCH);
        assert!(s.frame(Duration::ZERO).is_ok());
    }
}
