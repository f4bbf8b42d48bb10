//! Bytes that come from outside the encoder: H.264 access units (a camera's
//! own H.264 in passthrough), received RTCP, Y4M headers. No panic; an
//! access unit that indexes is packetized and depacketizes to the same NAL
//! units.
#![no_main]

use std::time::Duration;

use edgestream::media::EncodedFrame;
use edgestream::rtp::{Packetizer, RTP_HEADER_LEN, inspect_rtcp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = inspect_rtcp(data);
    let _ = edgestream::source::y4m::parse_header(data);
    let _ = edgestream::h264::ParameterSets::from_annex_b(data);
    let Ok(frame) = EncodedFrame::from_annex_b(data.to_vec(), Duration::ZERO, 0) else {
        return;
    };
    let max = 64 + (data.len() % 200);
    let mut packets = Vec::new();
    Packetizer::new(1, 0, max, None).packetize(&frame, 0, &mut packets);
    // Reassemble and compare with the NAL units (AUDs are not sent).
    let mut nals = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in &packets {
        assert!(p.len() - RTP_HEADER_LEN <= max);
        let payload = p.payload(&frame);
        let h = &p.header()[RTP_HEADER_LEN..];
        if let [ind, hdr] = h {
            if hdr & 0x80 != 0 {
                fu = Some(vec![(ind & 0xe0) | (hdr & 0x1f)]);
            }
            fu.as_mut().unwrap().extend_from_slice(payload);
            if hdr & 0x40 != 0 {
                nals.push(fu.take().unwrap());
            }
        } else {
            nals.push(payload.to_vec());
        }
    }
    let expected: Vec<Vec<u8>> = frame
        .nals()
        .filter(|n| n[0] & 0x1f != 9)
        .map(|n| n.to_vec())
        .collect();
    assert_eq!(nals, expected);
});
