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

    /// Appends bytes (tests, and callers that have them already).
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered, not yet handed out.
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
    fn space_and_filled_append_only_what_was_read() {
        let mut s = AccessUnitSplitter::new();
        s.space(100)[..3].copy_from_slice(&[0, 0, 1]);
        s.filled(100, 3);
        assert_eq!(s.buffered(), 3);
    }
}
