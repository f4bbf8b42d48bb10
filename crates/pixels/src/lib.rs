//! The per-pixel loops of edgestream's format conversions (`src/convert.rs`
//! checks shapes and sizes, names errors and calls these).
//!
//! They live in a crate of their own for one reason: the release profile
//! builds edgestream itself for size (`opt-level = "z"`, which keeps the
//! armel binary within its budget) and this crate at `opt-level = 3`, where
//! the loops are unrolled and vectorized. A loop that runs over every
//! pixel of every frame belongs here; anything else belongs in edgestream.
//!
//! Callers pass consistent sizes (see each function); out-of-range sizes
//! are a caller bug and panic on a slice bound, never read out of bounds.

#![forbid(unsafe_code)]

/// Byte positions of Y0, U, Y1, V in one 4-byte macropixel of packed 4:2:2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub y0: usize,
    pub u: usize,
    pub y1: usize,
    pub v: usize,
}

/// The packed 4:2:2 layouts the kernel has straight loops for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packed {
    /// `YUYV` (V4L2 `YUYV`, FourCC `YUY2`).
    Yuyv,
    /// `UYVY`.
    Uyvy,
}

impl Packed {
    /// Where each sample sits in a macropixel.
    pub const fn order(self) -> Order {
        match self {
            Packed::Yuyv => Order {
                y0: 0,
                u: 1,
                y1: 2,
                v: 3,
            },
            Packed::Uyvy => Order {
                u: 0,
                y0: 1,
                v: 2,
                y1: 3,
            },
        }
    }
}

/// Packed 4:2:2 (`layout`, even `w` > 0, `h` > 0 rows `stride` >= 2w bytes
/// apart in `src`, which holds at least `stride * (h - 1) + 2w` bytes) to
/// I420 planes: `y` of `w * h`, `u` and `v` of `w / 2 * ceil(h / 2)`.
/// Chroma averages each pair of rows, rounding up (as libyuv does); an odd
/// last row keeps its own.
#[allow(clippy::too_many_arguments)]
pub fn packed422_to_i420(
    layout: Packed,
    w: usize,
    h: usize,
    stride: usize,
    src: &[u8],
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let cw = w / 2;
    let mut rows = 0;
    while rows + 2 <= h {
        let r0 = &src[rows * stride..rows * stride + 2 * w];
        let r1 = &src[(rows + 1) * stride..(rows + 1) * stride + 2 * w];
        let (ya, yb) = y[rows * w..(rows + 2) * w].split_at_mut(w);
        let ci = rows / 2 * cw;
        let (cu, cv) = (&mut u[ci..ci + cw], &mut v[ci..ci + cw]);
        match layout {
            Packed::Yuyv => row_pair::<0, 1, 2, 3>(r0, r1, ya, yb, cu, cv),
            Packed::Uyvy => row_pair::<1, 0, 3, 2>(r0, r1, ya, yb, cu, cv),
        }
        rows += 2;
    }
    if rows < h {
        // Odd height: the last row alone.
        let order = layout.order();
        let r = &src[rows * stride..rows * stride + 2 * w];
        let ci = rows / 2 * cw;
        for (i, px) in r.chunks_exact(4).enumerate() {
            y[rows * w + 2 * i] = px[order.y0];
            y[rows * w + 2 * i + 1] = px[order.y1];
            u[ci + i] = px[order.u];
            v[ci + i] = px[order.v];
        }
    }
}

/// Two rows of macropixels: positions of Y0, U, Y1, V as const parameters
/// so each order compiles to its own straight loop.
#[inline(always)]
fn row_pair<const Y0: usize, const U: usize, const Y1: usize, const V: usize>(
    r0: &[u8],
    r1: &[u8],
    ya: &mut [u8],
    yb: &mut [u8],
    cu: &mut [u8],
    cv: &mut [u8],
) {
    let n = cu.len();
    let (r0, r1) = (&r0[..4 * n], &r1[..4 * n]);
    let (ya, yb) = (&mut ya[..2 * n], &mut yb[..2 * n]);
    let cv = &mut cv[..n];
    for i in 0..n {
        let p0 = &r0[4 * i..4 * i + 4];
        let p1 = &r1[4 * i..4 * i + 4];
        ya[2 * i] = p0[Y0];
        ya[2 * i + 1] = p0[Y1];
        yb[2 * i] = p1[Y0];
        yb[2 * i + 1] = p1[Y1];
        cu[i] = ((p0[U] as u16 + p1[U] as u16 + 1) >> 1) as u8;
        cv[i] = ((p0[V] as u16 + p1[V] as u16 + 1) >> 1) as u8;
    }
}

/// Full range (0-255, JPEG/JFIF) to limited range (16-235 luma, 16-240
/// chroma, what x264 is told I420 is), rounded.
const fn range_tables() -> ([u8; 256], [u8; 256]) {
    let mut y = [0u8; 256];
    let mut c = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        y[i] = ((16 * 255 + i * 219 + 127) / 255) as u8;
        c[i] = ((16 * 255 + i * 224 + 127) / 255) as u8;
        i += 1;
    }
    (y, c)
}
/// The two tables: (luma, chroma).
pub const RANGE: ([u8; 256], [u8; 256]) = range_tables();

/// Interleaved full-range YCbCr 4:4:4 (`src` of at least `3 * w * h`
/// bytes, rows `3w` apart) to limited-range I420 planes: `y` of `w * h`,
/// `u` and `v` of `ceil(w / 2) * ceil(h / 2)`, chroma averaged over each
/// 2x2 block (an odd last row or column pairs with itself).
pub fn ycbcr444_to_i420(w: usize, h: usize, src: &[u8], y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let cw = w.div_ceil(2);
    let (ly, lc) = (&RANGE.0, &RANGE.1);
    for (dst, px) in y[..w * h].iter_mut().zip(src.chunks_exact(3)) {
        *dst = ly[px[0] as usize];
    }
    for cy in 0..h.div_ceil(2) {
        let r0 = 2 * cy;
        let r1 = (2 * cy + 1).min(h - 1);
        for cx in 0..cw {
            let c0 = 2 * cx;
            let c1 = (2 * cx + 1).min(w - 1);
            let at = |r: usize, c: usize, k: usize| src[3 * (r * w + c) + k] as u16;
            let avg = |k| {
                lc[((at(r0, c0, k) + at(r0, c1, k) + at(r1, c0, k) + at(r1, c1, k) + 2) >> 2)
                    as usize]
            };
            u[cy * cw + cx] = avg(1);
            v[cy * cw + cx] = avg(2);
        }
    }
}
