//! Splits an H.264 Annex-B byte stream (a pipe from rpicam-vid or ffmpeg)
//! into access units, pure: bytes in, whole access units out.
//!
//! An access unit ends where the next one begins (ITU-T H.264 7.4.1.2.3):
//! after a VCL NAL unit of the current one, at an access unit delimiter, an
//! SPS, a PPS, an SEI or NAL types 14-18, or at a slice whose
//! `first_mb_in_slice` is 0 (the first bit of its slice header is 1, the
//! ue(v) code for 0). So an access unit goes out when the first bytes of the
//! next one have arrived: one frame interval later than a producer that
//! wrote it whole (the price of not trusting pipe read boundaries).

use crate::h264::{nal_type, nal_unit_type};

/// The largest access unit accepted (a 1080p I-frame at a high bitrate is
/// well under 1 MiB).
pub const MAX_ACCESS_UNIT: usize = 4 << 20;

/// A byte stream that is not H.264 Annex-B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// More than [`MAX_ACCESS_UNIT`] bytes without an access unit boundary.
    TooLong(usize),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong(n) => write!(
                f,
                "{n} bytes without an H.264 access unit boundary (byte_stream_nal_unit start codes); is it an H.264 Annex-B stream?"
            ),
        }
    }
}

impl std::error::Error for SplitError {}

/// Buffers the stream and hands out access units.
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    buf: Vec<u8>,
    /// Where the start-code scan resumes.
    scan: usize,
    /// The current access unit has a VCL NAL unit (a slice).
    has_vcl: bool,
}

/// Finds `00 00 01` at or after `from`; returns its position.
fn start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some(i),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

impl AccessUnitSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room to read into: the caller reads up to `n` bytes into the
    /// returned slice, then calls [`Self::filled`] with how many it got.
    pub fn space(&mut self, n: usize) -> &mut [u8] {
        let len = self.buf.len();
        self.buf.resize(len + n, 0);
        &mut self.buf[len..]
    }

    /// `n` bytes of the last [`Self::space`] were filled; the rest is dropped.
    pub fn filled(&mut self, requested: usize, n: usize) {
        let len = self.buf.len();
        self.buf.truncate(len - requested + n.min(requested));
    }

    /// Appends bytes (tests).
    #[cfg(test)]
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered, not yet handed out.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete access unit, copied into `out` (cleared first),
    /// start codes included. `Ok(false)`: more bytes are needed.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Result<bool, SplitError> {
        while let Some(p) = start_code(&self.buf, self.scan) {
            let header = p + 3;
            // The NAL header and, for a slice, the first slice header byte.
            if header + 2 > self.buf.len() {
                self.scan = p;
                return Ok(false);
            }
            let ty = nal_unit_type(self.buf[header]);
            let vcl = matches!(ty, nal_type::SLICE | nal_type::IDR);
            let first_slice = vcl && self.buf[header + 1] & 0x80 != 0;
            let opens_au = first_slice
                || matches!(
                    ty,
                    nal_type::AUD | nal_type::SPS | nal_type::PPS | nal_type::SEI | 14..=18
                );
            if self.has_vcl && opens_au {
                let mut end = p;
                // Zero bytes before a start code (a 4-byte start code's
                // leading zero, trailing_zero_8bits) belong to neither.
                while end > 0 && self.buf[end - 1] == 0 {
                    end -= 1;
                }
                out.clear();
                out.extend_from_slice(&self.buf[..end]);
                self.buf.drain(..end);
                self.scan = p - end + 3;
                self.has_vcl = vcl;
                return Ok(true);
            }
            self.has_vcl |= vcl;
            self.scan = header;
        }
        self.scan = self.buf.len().saturating_sub(2).max(self.scan);
        if self.buf.len() > MAX_ACCESS_UNIT {
            let n = self.buf.len();
            self.reset();
            return Err(SplitError::TooLong(n));
        }
        Ok(false)
    }

    /// Hands out what is buffered as the last access unit (end of stream),
    /// if it holds a slice.
    #[cfg(test)]
    pub fn finish_into(&mut self, out: &mut Vec<u8>) -> bool {
        let done = self.has_vcl;
        if done {
            out.clear();
            out.extend_from_slice(&self.buf);
        }
        self.reset();
        done
    }

    pub fn reset(&mut self) {
        self.buf.clear();
        self.scan = 0;
        self.has_vcl = false;
    }
}

/// Reads the bits of an RBSP (emulation prevention bytes removed).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: usize,
    bit: u8,
    byte: u8,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            zeros: 0,
            bit: 0,
            byte: 0,
        }
    }

    fn u1(&mut self) -> Option<u32> {
        if self.bit == 0 {
            let mut b = *self.data.get(self.pos)?;
            self.pos += 1;
            // 00 00 03: the 03 is emulation prevention, not data.
            if self.zeros >= 2 && b == 3 {
                b = *self.data.get(self.pos)?;
                self.pos += 1;
                self.zeros = 0;
            }
            self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
            self.byte = b;
            self.bit = 8;
        }
        self.bit -= 1;
        Some(u32::from(self.byte >> self.bit & 1))
    }

    fn u(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = v << 1 | self.u1()?;
        }
        Some(v)
    }

    /// ue(v), Exp-Golomb (9.1), up to 31 leading zeros.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.u1()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.u(zeros)?)) as u32)
    }

    /// se(v).
    fn se(&mut self) -> Option<i32> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

/// The picture size an SPS NAL unit (header byte included) announces,
/// cropping applied (ITU-T H.264 7.3.2.1.1, 7.4.2.1.1). `None` if it is
/// malformed or cut short.
pub fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    if nal_unit_type(*sps.first()?) != nal_type::SPS {
        return None;
    }
    let mut b = Bits::new(&sps[1..]);
    let profile_idc = b.u(8)?;
    b.u(16)?; // constraint flags, level_idc
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_planes = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 {
            separate_planes = b.u1()? == 1;
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.u1()?; // qpprime_y_zero_transform_bypass_flag
        if b.u1()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.u1()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + b.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            b.u1()?;
            b.se()?;
            b.se()?;
            for _ in 0..b.ue()?.min(255) {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.u1()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = b.ue()?.checked_add(1)?;
    let height_units = b.ue()?.checked_add(1)?;
    let frame_mbs_only = b.u1()?;
    if frame_mbs_only == 0 {
        b.u1()?; // mb_adaptive_frame_field_flag
    }
    b.u1()?; // direct_8x8_inference_flag
    let mut width = width_mbs.checked_mul(16)?;
    let mut height = height_units.checked_mul(16 * (2 - frame_mbs_only))?;
    if b.u1()? == 1 {
        let (l, r, t, bo) = (b.ue()?, b.ue()?, b.ue()?, b.ue()?);
        let (sub_w, sub_h) = match (chroma_format_idc, separate_planes) {
            (0, _) | (3, true) => (1, 1),
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let crop_x = sub_w;
        let crop_y = sub_h * (2 - frame_mbs_only);
        width = width.checked_sub(crop_x * l.checked_add(r)?)?;
        height = height.checked_sub(crop_y * t.checked_add(bo)?)?;
    }
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xaa];
    const PPS: &[u8] = &[0, 0, 0, 1, 0x68, 0xce, 0x3c];
    const IDR: &[u8] = &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 3, 1];
    /// A second slice of the same picture (first_mb_in_slice != 0).
    const IDR_SLICE2: &[u8] = &[0, 0, 1, 0x65, 0x41, 0x9a];
    const P: &[u8] = &[0, 0, 0, 1, 0x41, 0x9a, 0x22];

    fn stream() -> Vec<u8> {
        [SPS, PPS, IDR, IDR_SLICE2, P, P, SPS, PPS, IDR].concat()
    }

    fn split_all(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = AccessUnitSplitter::new();
        let mut out = Vec::new();
        let mut aus = Vec::new();
        for c in chunks {
            s.push(c);
            while s.next_into(&mut out).unwrap() {
                aus.push(out.clone());
            }
        }
        if s.finish_into(&mut out) {
            aus.push(out.clone());
        }
        aus
    }

    #[test]
    fn splits_at_parameter_sets_and_first_slices() {
        let data = stream();
        let aus = split_all(&[&data]);
        assert_eq!(aus.len(), 4);
        assert_eq!(aus[0], [SPS, PPS, IDR, IDR_SLICE2].concat());
        assert_eq!(aus[1], P);
        assert_eq!(aus[2], P);
        assert_eq!(aus[3], [SPS, PPS, IDR].concat());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_units() {
        let data = stream();
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(split_all(&chunks), split_all(&[&data]));
        let chunks: Vec<&[u8]> = data.chunks(5).collect();
        assert_eq!(split_all(&chunks), split_all(&[&data]));
    }

    #[test]
    fn an_access_unit_waits_for_the_next_one_to_begin() {
        let mut s = AccessUnitSplitter::new();
        let mut out = Vec::new();
        s.push(&[SPS, PPS, IDR].concat());
        assert!(!s.next_into(&mut out).unwrap());
        s.push(&P[..5]);
        assert!(
            !s.next_into(&mut out).unwrap(),
            "the slice header byte is not there yet"
        );
        s.push(&P[5..6]);
        assert!(s.next_into(&mut out).unwrap());
        assert_eq!(out, [SPS, PPS, IDR].concat());
        assert!(!s.next_into(&mut out).unwrap());
    }

    #[test]
    fn delimiters_open_an_access_unit() {
        let aud: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0];
        let data = [aud, SPS, PPS, IDR, aud, P, aud, P].concat();
        let aus = split_all(&[&data]);
        assert_eq!(
            aus,
            vec![
                [aud, SPS, PPS, IDR].concat(),
                [aud, P].concat(),
                [aud, P].concat()
            ]
        );
    }

    #[test]
    fn a_stream_without_boundaries_is_refused_not_buffered_forever() {
        let mut s = AccessUnitSplitter::new();
        let mut out = Vec::new();
        let junk = vec![0x55u8; 1 << 20];
        let mut err = None;
        for _ in 0..5 {
            s.push(&junk);
            if let Err(e) = s.next_into(&mut out) {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(SplitError::TooLong(n)) if n > MAX_ACCESS_UNIT));
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn sps_sizes_from_real_encoders() {
        // x264 (ffmpeg -c:v libx264), High profile, 320x240.
        let x264_high: &[u8] = &[
            0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
        ];
        assert_eq!(sps_size(x264_high), Some((320, 240)));
        // x264 Constrained Baseline 1920x1080 (1088 coded, 8 lines cropped).
        let baseline_1080: &[u8] = &[
            0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
            0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20,
        ];
        assert_eq!(sps_size(baseline_1080), Some((1920, 1080)));
        assert_eq!(sps_size(&x264_high[..6]), None);
        assert_eq!(sps_size(&[0x68, 1, 2, 3]), None);
    }

    #[test]
    fn space_and_filled_append_only_what_was_read() {
        let mut s = AccessUnitSplitter::new();
        s.space(100)[..3].copy_from_slice(&[0, 0, 1]);
        s.filled(100, 3);
        assert_eq!(s.buffered(), 3);
    }
}
