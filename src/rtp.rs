//! RTP packetization of H.264 (RFC 6184, packetization-mode 1: single NAL
//! unit packets and FU-A), of single AAC access units (RFC 3640 AAC-hbr),
//! and RTCP sender reports (RFC 3550 §6.4.1).
//!
//! Pure code. The packetizer writes only headers: each [`RtpPacket`] is a
//! small header buffer plus a byte range into the shared
//! [`EncodedFrame`], so the I/O layer sends payloads straight out of the one
//! copy every viewer shares (vectored writes).

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::h264::{nal_type, nal_unit_type};
use crate::media::EncodedFrame;

pub const RTP_VERSION: u8 = 2;
pub const RTP_HEADER_LEN: usize = 12;
/// The RTP clock rate of H.264 video (RFC 6184 §8.2.1).
pub const CLOCK_RATE: u32 = 90_000;
/// The dynamic payload type we announce in SDP.
pub const PAYLOAD_TYPE: u8 = 96;
/// The smallest payload size that leaves room for FU-A fragments.
pub const MIN_PAYLOAD: usize = 64;
/// The largest payload size a TCP interleaved frame or UDP datagram holds.
pub const MAX_PAYLOAD: usize = 65_000;
const FU_A: u8 = 28;
/// `$` + channel + 16-bit length (RFC 2326 §10.12).
pub const INTERLEAVED_PREFIX_LEN: usize = 4;
/// The longest header: the interleave prefix, the RTP header, and the FU-A
/// indicator and header or the AAC AU-headers-length and AU header.
const MAX_HEADER: usize = INTERLEAVED_PREFIX_LEN + RTP_HEADER_LEN + 4;

/// Maps a capture time to a 90 kHz RTP timestamp with a per-stream random
/// offset (RFC 3550 §5.1: the initial value should be random).
pub fn rtp_timestamp(pts: Duration, offset: u32) -> u32 {
    offset.wrapping_add(clock_ticks(pts, CLOCK_RATE) as u32)
}

/// A capture time in ticks of a `rate` Hz clock (rounded down).
pub fn clock_ticks(pts: Duration, rate: u32) -> u64 {
    (pts.as_nanos() * u128::from(rate) / 1_000_000_000) as u64
}

/// One RTP packet: its header (with the interleave prefix for TCP) and where
/// its payload lies in the frame's bytes.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    header: [u8; MAX_HEADER],
    header_len: u8,
    payload: Range<u32>,
}

impl RtpPacket {
    pub fn header(&self) -> &[u8] {
        &self.header[..self.header_len as usize]
    }

    pub fn payload<'a>(&self, frame: &'a EncodedFrame) -> &'a [u8] {
        &frame.annex_b()[self.payload.start as usize..self.payload.end as usize]
    }

    /// Bytes on the wire, headers included.
    pub fn len(&self) -> usize {
        self.header_len as usize + self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-viewer RTP sender state: SSRC, sequence number and the counters an
/// RTCP sender report carries.
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    seq: u16,
    max_payload: usize,
    /// The RTP channel for TCP interleaving; `None` for UDP.
    interleaved: Option<u8>,
    payload_type: u8,
    packets: u32,
    octets: u32,
}

impl Packetizer {
    /// `max_payload` is the largest RTP payload (bytes after the 12-byte
    /// header), clamped to [`MIN_PAYLOAD`]..=[`MAX_PAYLOAD`].
    pub fn new(ssrc: u32, first_seq: u16, max_payload: usize, interleaved: Option<u8>) -> Self {
        Self {
            ssrc,
            seq: first_seq,
            max_payload: max_payload.clamp(MIN_PAYLOAD, MAX_PAYLOAD),
            interleaved,
            payload_type: PAYLOAD_TYPE,
            packets: 0,
            octets: 0,
        }
    }

    /// Stamps packets with `pt` instead of the video's [`PAYLOAD_TYPE`].
    pub fn with_payload_type(mut self, pt: u8) -> Self {
        self.payload_type = pt & 0x7f;
        self
    }

    /// Continues the packet and octet counts of an earlier run of the same
    /// stream (after PAUSE), as RTCP sender reports count from the start.
    pub fn with_counts(mut self, (packets, octets): (u32, u32)) -> Self {
        self.packets = packets;
        self.octets = octets;
        self
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Packets and payload octets sent so far (for RTCP SR).
    pub fn counts(&self) -> (u32, u32) {
        (self.packets, self.octets)
    }

    /// Appends the packets for one access unit to `out` (which is not
    /// cleared). The last packet carries the marker bit.
    pub fn packetize(&mut self, frame: &EncodedFrame, rtp_ts: u32, out: &mut Vec<RtpPacket>) {
        let first = out.len();
        let base = frame.annex_b().as_ptr() as usize;
        for nal in frame.nals() {
            let start = nal.as_ptr() as usize - base;
            let header = nal[0];
            if nal_unit_type(header) == nal_type::AUD {
                // Access unit delimiters say nothing the marker bit does not.
                continue;
            }
            if nal.len() <= self.max_payload {
                out.push(self.packet(rtp_ts, &[], start..start + nal.len()));
                continue;
            }
            // FU-A (RFC 6184 §5.8): the NAL header is replaced by the FU
            // indicator (F and NRI of the NAL, type 28) and the FU header
            // (S, E, and the NAL type); the rest is split.
            let indicator = (header & 0xe0) | FU_A;
            let chunk = self.max_payload - 2;
            let mut pos = start + 1;
            let end = start + nal.len();
            while pos < end {
                let n = chunk.min(end - pos);
                let mut fu = nal_unit_type(header);
                if pos == start + 1 {
                    fu |= 0x80;
                }
                if pos + n == end {
                    fu |= 0x40;
                }
                out.push(self.packet(rtp_ts, &[indicator, fu], pos..pos + n));
                pos += n;
            }
        }
        if let Some(last) = out[first..].last_mut() {
            last.header[self.rtp_header_offset() + 1] |= 0x80;
        }
    }

    /// Appends one whole RTP packet (with the interleave prefix for TCP)
    /// carrying the AAC access unit `au` in the RFC 3640 AAC-hbr layout:
    /// AU-headers-length (16 bits), one AU header (13-bit size, 3-bit
    /// index 0), the frame. Marked, as it ends the access unit.
    pub fn packetize_aac(&mut self, rtp_ts: u32, au: &[u8], out: &mut Vec<u8>) {
        // AU sizes are 13 bits; a raw AAC frame is at most 6144 bits per
        // channel, so this never cuts a frame the track can make.
        let size = (au.len().min(0x1fff) as u16) << 3;
        let [hi, lo] = size.to_be_bytes();
        let mut p = self.packet(rtp_ts, &[0, 16, hi, lo], 0..au.len());
        p.header[self.rtp_header_offset() + 1] |= 0x80;
        out.extend_from_slice(p.header());
        out.extend_from_slice(&au[..au.len().min(0x1fff)]);
    }

    fn rtp_header_offset(&self) -> usize {
        if self.interleaved.is_some() {
            INTERLEAVED_PREFIX_LEN
        } else {
            0
        }
    }

    fn packet(&mut self, rtp_ts: u32, extra: &[u8], payload: Range<usize>) -> RtpPacket {
        let mut header = [0u8; MAX_HEADER];
        let off = self.rtp_header_offset();
        let rtp_len = RTP_HEADER_LEN + extra.len() + payload.len();
        if let Some(channel) = self.interleaved {
            header[0] = b'$';
            header[1] = channel;
            header[2..4].copy_from_slice(&(rtp_len as u16).to_be_bytes());
        }
        let h = &mut header[off..];
        h[0] = RTP_VERSION << 6;
        h[1] = self.payload_type;
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&rtp_ts.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        h[12..12 + extra.len()].copy_from_slice(extra);
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self
            .octets
            .wrapping_add((extra.len() + payload.len()) as u32);
        RtpPacket {
            header,
            header_len: (off + RTP_HEADER_LEN + extra.len()) as u8,
            payload: payload.start as u32..payload.end as u32,
        }
    }
}

/// A 64-bit NTP timestamp (seconds since 1900 in 32.32 fixed point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    const UNIX_OFFSET: u64 = 2_208_988_800;

    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() + Self::UNIX_OFFSET;
        let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }
}

/// Writes a compound RTCP packet: a sender report and an SDES with CNAME
/// (RFC 3550 §6.1: every compound packet starts with SR/RR and has a CNAME).
/// With `interleaved`, each is prefixed for TCP on that channel.
pub fn sender_report(
    ssrc: u32,
    ntp: NtpTimestamp,
    rtp_ts: u32,
    counts: (u32, u32),
    cname: &str,
    interleaved: Option<u8>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    if interleaved.is_some() {
        out.extend_from_slice(&[b'$', 0, 0, 0]);
    }
    let body = out.len();
    // SR: V=2, P=0, RC=0, PT=200, length 6 (28 bytes).
    out.extend_from_slice(&[RTP_VERSION << 6, 200, 0, 6]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.0.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&counts.0.to_be_bytes());
    out.extend_from_slice(&counts.1.to_be_bytes());
    // SDES: one chunk, CNAME item, END, padded to 32 bits.
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let chunk_len = 4 + 2 + cname.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    let words = padded / 4;
    out.extend_from_slice(&[RTP_VERSION << 6 | 1, 202]);
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&[1, cname.len() as u8]);
    out.extend_from_slice(cname);
    out.resize(out.len() + padded - (4 + 2 + cname.len()), 0);
    if let Some(channel) = interleaved {
        let len = (out.len() - body) as u16;
        out[start + 1] = channel;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// What a received RTCP compound packet says that matters to a sender.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RtcpSummary {
    pub valid: bool,
    pub bye: bool,
}

/// Checks a received RTCP compound packet (RFC 3550 §A.2 validity: version 2,
/// lengths add up) and notes a BYE. Receiver reports count as keep-alive.
pub fn inspect_rtcp(mut buf: &[u8]) -> RtcpSummary {
    let mut s = RtcpSummary::default();
    if buf.len() < 4 {
        return s;
    }
    while !buf.is_empty() {
        if buf.len() < 4 || buf[0] >> 6 != RTP_VERSION || !(192..=223).contains(&buf[1]) {
            return RtcpSummary::default();
        }
        let len = (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1) * 4;
        if len > buf.len() {
            return RtcpSummary::default();
        }
        s.bye |= buf[1] == 203;
        buf = &buf[len..];
    }
    s.valid = true;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal RFC 6184 depacketizer for the round trip: rebuilds NAL
    /// units from single-NAL and FU-A payloads and checks the FU rules.
    fn depacketize(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fu: Option<Vec<u8>> = None;
        for p in packets {
            let payload = &p[RTP_HEADER_LEN..];
            let t = payload[0] & 0x1f;
            if t == FU_A {
                let (ind, hdr) = (payload[0], payload[1]);
                let (s, e) = (hdr & 0x80 != 0, hdr & 0x40 != 0);
                assert!(!(s && e), "S and E in one FU-A");
                if s {
                    assert!(fu.is_none(), "FU-A start while one is open");
                    fu = Some(vec![(ind & 0xe0) | (hdr & 0x1f)]);
                }
                let buf = fu.as_mut().expect("FU-A continuation without start");
                buf.extend_from_slice(&payload[2..]);
                if e {
                    nals.push(fu.take().unwrap());
                }
            } else {
                assert!(fu.is_none(), "single NAL inside a FU-A");
                nals.push(payload.to_vec());
            }
        }
        assert!(fu.is_none(), "unterminated FU-A");
        nals
    }

    fn au(sizes: &[usize]) -> (EncodedFrame, Vec<Vec<u8>>) {
        let mut data = Vec::new();
        let mut nals = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let mut nal = vec![if i == 0 { 0x65 } else { 0x41 }];
            // Bytes that never form a start code.
            nal.extend((1..n).map(|j| (j % 251) as u8 | 1));
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(&nal);
            nals.push(nal);
        }
        (
            EncodedFrame::from_annex_b(data, Duration::ZERO, 0).unwrap(),
            nals,
        )
    }

    #[test]
    fn round_trips_nal_sizes_around_the_payload_limit() {
        for max in [MIN_PAYLOAD, 100, 1400] {
            for size in [
                1,
                2,
                max - 2,
                max - 1,
                max,
                max + 1,
                max + 2,
                2 * max - 3,
                2 * max,
                5 * max + 7,
            ] {
                let (frame, nals) = au(&[size, 3, size]);
                let mut p = Packetizer::new(0x1234_5678, 65_530, max, None);
                let mut out = Vec::new();
                p.packetize(&frame, 777, &mut out);
                let wire: Vec<Vec<u8>> = out
                    .iter()
                    .map(|pk| [pk.header(), pk.payload(&frame)].concat())
                    .collect();
                for (i, w) in wire.iter().enumerate() {
                    assert!(w.len() - RTP_HEADER_LEN <= max, "payload over limit");
                    assert_eq!(w[0], 0x80);
                    assert_eq!(w[1] & 0x7f, PAYLOAD_TYPE);
                    assert_eq!(w[1] & 0x80 != 0, i == wire.len() - 1, "marker on last only");
                    let seq = u16::from_be_bytes([w[2], w[3]]);
                    assert_eq!(seq, 65_530u16.wrapping_add(i as u16));
                    assert_eq!(u32::from_be_bytes(w[4..8].try_into().unwrap()), 777);
                    assert_eq!(
                        u32::from_be_bytes(w[8..12].try_into().unwrap()),
                        0x1234_5678
                    );
                }
                assert_eq!(depacketize(&wire), nals, "max {max} size {size}");
                let octets: usize = wire.iter().map(|w| w.len() - RTP_HEADER_LEN).sum();
                assert_eq!(p.counts(), (wire.len() as u32, octets as u32));
            }
        }
    }

    #[test]
    fn interleaved_prefix_carries_channel_and_length() {
        let (frame, _) = au(&[3000]);
        let mut p = Packetizer::new(1, 0, 1400, Some(4));
        let mut out = Vec::new();
        p.packetize(&frame, 0, &mut out);
        assert_eq!(out.len(), 3);
        for pk in &out {
            let h = pk.header();
            assert_eq!(&h[..2], &[b'$', 4]);
            let len = u16::from_be_bytes([h[2], h[3]]) as usize;
            assert_eq!(len, pk.len() - INTERLEAVED_PREFIX_LEN);
        }
        assert_ne!(out[2].header()[5] & 0x80, 0, "marker");
    }

    #[test]
    fn access_unit_delimiters_are_not_sent() {
        let data = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 7];
        let frame = EncodedFrame::from_annex_b(data, Duration::ZERO, 0).unwrap();
        let mut out = Vec::new();
        Packetizer::new(1, 0, 1400, None).packetize(&frame, 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload(&frame), &[0x41, 7]);
    }

    #[test]
    fn aac_packets_follow_rfc_3640_hbr() {
        let au = [0x00, 0xc8, 0x00, 0x80, 0x23, 0x80];
        for interleaved in [None, Some(2)] {
            let mut p = Packetizer::new(7, 65_535, 1400, interleaved).with_payload_type(97);
            let mut out = Vec::new();
            p.packetize_aac(1024, &au, &mut out);
            p.packetize_aac(2048, &au, &mut out);
            let one = RTP_HEADER_LEN + 4 + au.len();
            let prefix = interleaved.map_or(0, |_| INTERLEAVED_PREFIX_LEN);
            assert_eq!(out.len(), 2 * (prefix + one));
            let (first, second) = out.split_at(prefix + one);
            if interleaved.is_some() {
                assert_eq!(&first[..4], &[b'$', 2, 0, one as u8]);
            }
            let rtp = &first[prefix..];
            assert_eq!(rtp[0], 0x80);
            assert_eq!(rtp[1], 0x80 | 97, "marker and payload type");
            assert_eq!(u16::from_be_bytes([rtp[2], rtp[3]]), 65_535);
            assert_eq!(u32::from_be_bytes(rtp[4..8].try_into().unwrap()), 1024);
            assert_eq!(u32::from_be_bytes(rtp[8..12].try_into().unwrap()), 7);
            // AU-headers-length 16 bits; AU-size 6, AU-Index 0.
            assert_eq!(&rtp[12..16], &[0, 16, 0, 6 << 3]);
            assert_eq!(&rtp[16..], &au);
            let rtp2 = &second[prefix..];
            assert_eq!(u16::from_be_bytes([rtp2[2], rtp2[3]]), 0, "seq wraps");
            assert_eq!(p.counts(), (2, 2 * (4 + au.len() as u32)));
        }
    }

    #[test]
    fn timestamps_are_90khz_and_wrap() {
        assert_eq!(clock_ticks(Duration::from_secs(2), 44_100), 88_200);
        assert_eq!(clock_ticks(Duration::from_nanos(22_675), 44_100), 0);
        assert_eq!(rtp_timestamp(Duration::from_secs(1), 0), 90_000);
        assert_eq!(rtp_timestamp(Duration::from_millis(40), 10), 3_610);
        let big = Duration::from_secs(u32::MAX as u64 / 90_000 + 1);
        assert!(rtp_timestamp(big, 0) < 90_000);
        assert_eq!(rtp_timestamp(Duration::ZERO, u32::MAX), u32::MAX);
    }

    #[test]
    fn sender_report_layout() {
        let ntp = NtpTimestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(ntp.0 >> 32, 2_208_988_801);
        assert_eq!(ntp.0 as u32, 1 << 31);
        let mut out = Vec::new();
        sender_report(9, ntp, 1234, (10, 2000), "edgestream", Some(1), &mut out);
        assert_eq!(&out[..2], &[b'$', 1]);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]) as usize, out.len() - 4);
        let rtcp = &out[4..];
        assert_eq!(rtcp.len() % 4, 0);
        assert_eq!(&rtcp[..4], &[0x80, 200, 0, 6]);
        assert_eq!(u32::from_be_bytes(rtcp[16..20].try_into().unwrap()), 1234);
        assert_eq!(u32::from_be_bytes(rtcp[20..24].try_into().unwrap()), 10);
        assert_eq!(u32::from_be_bytes(rtcp[24..28].try_into().unwrap()), 2000);
        assert_eq!(rtcp[29], 202);
        assert_eq!(&rtcp[36..38], &[1, 10]);
        assert_eq!(&rtcp[38..48], b"edgestream");
        assert_eq!(
            inspect_rtcp(rtcp),
            RtcpSummary {
                valid: true,
                bye: false
            }
        );
    }

    #[test]
    fn rtcp_inspection_rejects_garbage_and_sees_bye() {
        assert!(!inspect_rtcp(b"hello world!").valid);
        assert!(
            !inspect_rtcp(&[0x80, 201, 0, 9]).valid,
            "length past the end"
        );
        let rr_bye = [0x80, 201, 0, 1, 0, 0, 0, 1, 0x81, 203, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            inspect_rtcp(&rr_bye),
            RtcpSummary {
                valid: true,
                bye: true
            }
        );
    }
}
