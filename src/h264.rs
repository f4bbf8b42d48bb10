//! H.264 Annex-B helpers: start-code scanning, NAL unit types, and the few
//! SPS fields the outputs need (SDP `profile-level-id`, the FLV
//! AVCDecoderConfigurationRecord).
//!
//! Pure code: bytes in, bytes out.

use std::ops::Range;

/// NAL unit types we look at (ITU-T H.264 Table 7-1).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// The type of the NAL unit whose first byte (the NAL header) is `header`.
pub fn nal_unit_type(header: u8) -> u8 {
    header & 0x1f
}

/// Iterates over the NAL units of an Annex-B byte stream, yielding the byte
/// range of each NAL unit *without* its start code.
///
/// Trailing zero bytes before a start code (`trailing_zero_8bits`) are not
/// part of the NAL unit and are trimmed. Leading bytes before the first start
/// code are skipped.
pub fn annex_b_nals(data: &[u8]) -> AnnexBIter<'_> {
    let first = find_start_code(data, 0).map(|(_, payload)| payload);
    AnnexBIter { data, next: first }
}

pub struct AnnexBIter<'a> {
    data: &'a [u8],
    next: Option<usize>,
}

impl Iterator for AnnexBIter<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let start = self.next?;
        let (end, next) = match find_start_code(self.data, start) {
            Some((code, payload)) => (code, Some(payload)),
            None => (self.data.len(), None),
        };
        self.next = next;
        let mut end = end;
        while end > start && self.data[end - 1] == 0 {
            end -= 1;
        }
        if end == start {
            // An empty NAL (two start codes back to back): skip it.
            return self.next();
        }
        Some(start..end)
    }
}

/// Finds the next `00 00 01` at or after `from`. Returns (position of the
/// first zero, position just after the `01`).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Fast skip: a start code has 0x01 at i+2 and zeros before it.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some((i, i + 3)),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// The first bytes of an SPS that SDP and FLV need: `profile_idc`, the
/// constraint flags byte and `level_idc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLevel {
    pub profile_idc: u8,
    pub constraints: u8,
    pub level_idc: u8,
}

impl ProfileLevel {
    /// Reads them from an SPS NAL unit (header byte included).
    pub fn from_sps(sps: &[u8]) -> Option<Self> {
        if sps.len() < 4 || nal_unit_type(sps[0]) != nal_type::SPS {
            return None;
        }
        Some(Self {
            profile_idc: sps[1],
            constraints: sps[2],
            level_idc: sps[3],
        })
    }

    /// The RFC 6184 `profile-level-id`: six hex digits.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraints, self.level_idc
        )
    }
}

/// The parameter sets of a stream: what a decoder needs before the first
/// frame. Carried in SDP (`sprop-parameter-sets`) and in the FLV sequence
/// header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    /// The SPS NAL unit, header byte included, no start code.
    pub sps: Vec<u8>,
    /// The PPS NAL unit, header byte included, no start code.
    pub pps: Vec<u8>,
    pub profile: ProfileLevel,
}

impl ParameterSets {
    pub fn new(sps: Vec<u8>, pps: Vec<u8>) -> Result<Self, &'static str> {
        let profile = ProfileLevel::from_sps(&sps).ok_or("not an SPS NAL unit")?;
        if pps.is_empty() || nal_unit_type(pps[0]) != nal_type::PPS {
            return Err("not a PPS NAL unit");
        }
        Ok(Self { sps, pps, profile })
    }

    /// Finds the first SPS and PPS in an Annex-B access unit.
    pub fn from_annex_b(data: &[u8]) -> Option<Self> {
        let mut sps = None;
        let mut pps = None;
        for r in annex_b_nals(data) {
            match nal_unit_type(data[r.start]) {
                nal_type::SPS if sps.is_none() => sps = Some(data[r].to_vec()),
                nal_type::PPS if pps.is_none() => pps = Some(data[r].to_vec()),
                _ => {}
            }
        }
        Self::new(sps?, pps?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, // SPS with 4-byte start code
            0, 0, 1, 0x68, 3, // PPS with 3-byte start code
            0, 0, 0, 1, 0x65, 0, 0, 9, 9, // IDR containing "00 00 09"
            0, 0, // trailing zeros
        ];
        let nals: Vec<_> = annex_b_nals(&data).map(|r| data[r].to_vec()).collect();
        assert_eq!(
            nals,
            vec![vec![0x67, 1, 2], vec![0x68, 3], vec![0x65, 0, 0, 9, 9]]
        );
    }

    #[test]
    fn skips_garbage_before_first_start_code_and_empty_nals() {
        let data = [7, 7, 0, 0, 1, 0, 0, 1, 0x41, 5];
        let nals: Vec<_> = annex_b_nals(&data).collect();
        assert_eq!(nals, vec![8..10]);
        assert_eq!(annex_b_nals(&[1, 2, 3]).count(), 0);
        assert_eq!(annex_b_nals(&[]).count(), 0);
    }

    #[test]
    fn profile_level_id_and_parameter_sets() {
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xaa, 0, 0, 1, 0x68, 0xce,
        ];
        let ps = ParameterSets::from_annex_b(&au).unwrap();
        assert_eq!(ps.profile.profile_level_id(), "42C01E");
        assert_eq!(ps.pps, vec![0x68, 0xce]);
        assert!(ParameterSets::new(vec![0x68, 1, 2, 3], vec![0x68]).is_err());
        assert!(ParameterSets::new(vec![0x67, 1, 2, 3], vec![0x67]).is_err());
    }
}
