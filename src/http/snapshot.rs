//! `/snapshot.jpg`: the newest raw picture, JPEG-encoded on request.
//!
//! The capture thread pays nothing while nobody asks: [`Snapshots::offer`]
//! is one atomic load per frame. When a snapshot is pending it copies that
//! one picture (4:2:0 planes, tightly packed) and hands it over; the JPEG is
//! encoded by the HTTP side on a blocking-pool thread, never on the
//! capture thread's time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jpeg_encoder::{ImageBuffer, JpegColorType};

use crate::media::{PixelFormat, Planar};

/// One raw picture, planar 4:2:0 (I420), planes without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Picture {
    /// Copies an I420 or NV12 picture (NV12's chroma is split).
    pub fn copy_of(p: &Planar<'_>) -> Self {
        let (w, h) = (p.width as usize, p.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y = Vec::with_capacity(w * h);
        for row in p.planes[0].chunks(p.strides[0]).take(h) {
            y.extend_from_slice(&row[..w.min(row.len())]);
        }
        let mut u = Vec::with_capacity(cw * ch);
        let mut v = Vec::with_capacity(cw * ch);
        if p.format == PixelFormat::Nv12 {
            for row in p.planes[1].chunks(p.strides[1]).take(ch) {
                for uv in row[..(2 * cw).min(row.len())].chunks_exact(2) {
                    u.push(uv[0]);
                    v.push(uv[1]);
                }
            }
        } else {
            for row in p.planes[1].chunks(p.strides[1]).take(ch) {
                u.extend_from_slice(&row[..cw.min(row.len())]);
            }
            for row in p.planes[2].chunks(p.strides[2]).take(ch) {
                v.extend_from_slice(&row[..cw.min(row.len())]);
            }
        }
        // A short plane (never from a checked Planar) reads as grey.
        y.resize(w * h, 128);
        u.resize(cw * ch, 128);
        v.resize(cw * ch, 128);
        Self {
            width: p.width,
            height: p.height,
            y,
            u,
            v,
        }
    }
}

/// Rows of a [`Picture`] for the JPEG encoder (it subsamples chroma again).
struct Rows<'a>(&'a Picture);

impl ImageBuffer for Rows<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }
    fn width(&self) -> u16 {
        self.0.width as u16
    }
    fn height(&self) -> u16 {
        self.0.height as u16
    }
    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let p = self.0;
        let (w, cw) = (p.width as usize, p.width.div_ceil(2) as usize);
        let row = y as usize;
        let luma = &p.y[row * w..(row + 1) * w];
        let c = (row / 2) * cw;
        for (x, &l) in luma.iter().enumerate() {
            buffers[0].push(l);
            buffers[1].push(p.u[c + x / 2]);
            buffers[2].push(p.v[c + x / 2]);
        }
    }
}

/// Encodes a picture as a baseline JPEG (4:2:0) at `quality` (1-100).
pub fn encode_jpeg(p: &Picture, quality: u8) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let mut out = Vec::with_capacity(p.y.len() / 4);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode_image(Rows(p))?;
    Ok(out)
}

/// The hand-over point between the capture thread and snapshot requests.
#[derive(Debug, Default)]
pub struct Snapshots {
    pending: AtomicBool,
    latest: Mutex<Option<Arc<Picture>>>,
    ready: event_listener::Event,
}

impl Snapshots {
    /// Called by the capture thread with each raw picture: copies it only
    /// when a snapshot was asked for.
    pub fn offer(&self, p: &Planar<'_>) {
        if !self.pending.load(Ordering::Acquire) || !self.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let pic = Arc::new(Picture::copy_of(p));
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(pic);
        self.ready.notify(usize::MAX);
    }

    /// Asks for the next picture and waits up to `limit` for it.
    pub async fn next(&self, limit: Duration) -> Option<Arc<Picture>> {
        let listener = self.ready.listen();
        self.pending.store(true, Ordering::Release);
        let arrived = smol::future::or(
            async {
                listener.await;
                true
            },
            async {
                smol::Timer::after(limit).await;
                false
            },
        )
        .await;
        if !arrived {
            return None;
        }
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_nv12_as_i420_and_encodes_a_jpeg() {
        // 4x2 NV12 with a stride of 6.
        let data = [
            1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, // Y
            10, 20, 30, 40, 0, 0, // UV
        ];
        let p = Planar::from_contiguous(PixelFormat::Nv12, 4, 2, 6, &data).unwrap();
        let pic = Picture::copy_of(&p);
        assert_eq!(pic.y, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            (pic.u.as_slice(), pic.v.as_slice()),
            (&[10, 30][..], &[20, 40][..])
        );
        let jpeg = encode_jpeg(&pic, 80).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9]);
    }

    #[test]
    fn copies_only_when_asked() {
        let s = Arc::new(Snapshots::default());
        let data = vec![9u8; 16 * 16 * 3 / 2];
        let p = Planar::from_contiguous(PixelFormat::I420, 16, 16, 16, &data).unwrap();
        s.offer(&p);
        assert!(s.latest.lock().unwrap().is_none(), "nobody asked");
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            while !s2.pending.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let data = vec![9u8; 16 * 16 * 3 / 2];
            s2.offer(&Planar::from_contiguous(PixelFormat::I420, 16, 16, 16, &data).unwrap());
        });
        let pic = smol::block_on(s.next(Duration::from_secs(5))).unwrap();
        assert_eq!((pic.width, pic.height), (16, 16));
        t.join().unwrap();
        assert!(!s.pending.load(Ordering::Acquire));
        assert!(smol::block_on(s.next(Duration::from_millis(10))).is_none());
    }
}
