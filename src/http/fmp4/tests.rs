use std::time::Duration;

use super::*;
use crate::media::Fraction;

/// (type, payload range) of each box in `data[range]`.
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 8 <= data.len() {
        let len = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        assert!(
            len >= 8 && i + len <= data.len(),
            "box at {i} has size {len}"
        );
        v.push((
            data[i + 4..i + 8].try_into().unwrap(),
            &data[i + 8..i + len],
        ));
        i += len;
    }
    assert_eq!(i, data.len(), "trailing bytes");
    v
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    boxes(data)
        .into_iter()
        .find(|(k, _)| k == kind)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(kind)))
        .1
}

fn info() -> StreamInfo {
    StreamInfo {
        width: 640,
        height: 480,
        fps: Fraction::new(30, 1),
        bitrate_kbps: 1000,
        params: ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e, 0xaa], vec![0x68, 0xce, 0x3c])
            .unwrap(),
    }
}

#[test]
fn init_segment_nests_an_avcc_sample_entry() {
    let init = init_segment(&info());
    let top = boxes(&init);
    assert_eq!(
        top.iter().map(|b| b.0).collect::<Vec<_>>(),
        [*b"ftyp", *b"moov"]
    );
    let moov = top[1].1;
    let stbl = child(
        child(child(child(moov, b"trak"), b"mdia"), b"minf"),
        b"stbl",
    );
    let stsd = child(stbl, b"stsd");
    // version/flags, entry count, then the avc1 entry.
    let entries = boxes(&stsd[8..]);
    assert_eq!(&entries[0].0, b"avc1");
    let avc1 = entries[0].1;
    assert_eq!(u16::from_be_bytes([avc1[24], avc1[25]]), 640);
    assert_eq!(u16::from_be_bytes([avc1[26], avc1[27]]), 480);
    let avcc = child(&avc1[78..], b"avcC");
    assert_eq!(&avcc[..5], &[1, 0x42, 0xc0, 0x1e, 0xff]);
    assert_eq!(&avcc[5..8], &[0xe1, 0, 5]);
    assert_eq!(&avcc[8..13], &[0x67, 0x42, 0xc0, 0x1e, 0xaa]);
    assert_eq!(&avcc[13..], &[1, 0, 3, 0x68, 0xce, 0x3c]);
    let trex = child(child(moov, b"mvex"), b"trex");
    assert_eq!(&trex[4..8], &1u32.to_be_bytes());
}

fn frame(pts_ms: u64, key: bool) -> EncodedFrame {
    let mut au = vec![0, 0, 0, 1, 9, 0xf0];
    if key {
        au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 1]);
        au.extend_from_slice(&[0, 0, 1, 0x65, 1, 2, 3]);
    } else {
        au.extend_from_slice(&[0, 0, 1, 0x41, 7, 7]);
    }
    au.extend_from_slice(&[0, 0, 1, 0x41, 8]);
    EncodedFrame::from_annex_b(au, Duration::from_millis(pts_ms), 0).unwrap()
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i..i + 4].try_into().unwrap())
}

#[test]
fn fragments_count_up_and_time_from_the_first_frame() {
    let mut f = Fragmenter::new(3000);
    let mut out = Vec::new();
    let key = frame(1000, true);
    let payload = f.fragment(&key, &mut out);
    // IDR (4 bytes) and a slice (2 bytes), each with a 4-byte length.
    assert_eq!(payload, 4 + 4 + 4 + 2);
    let mut whole = out.clone();
    for nal in key.nals().filter(|n| in_sample(n)) {
        whole.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        whole.extend_from_slice(nal);
    }
    let top = boxes(&whole);
    assert_eq!(
        top.iter().map(|b| b.0).collect::<Vec<_>>(),
        [*b"moof", *b"mdat"]
    );
    assert_eq!(&top[1].1[..8], &[0, 0, 0, 4, 0x65, 1, 2, 3]);
    let moof = top[0].1;
    assert_eq!(u32_at(child(moof, b"mfhd"), 4), 1);
    let traf = child(moof, b"traf");
    assert_eq!(&child(traf, b"tfdt")[4..], &0u64.to_be_bytes());
    let trun = child(traf, b"trun");
    assert_eq!(u32_at(trun, 4), 1, "one sample");
    let data_offset = u32_at(trun, 8) as usize;
    assert_eq!(
        data_offset,
        out.len(),
        "data offset points past the mdat header"
    );
    assert_eq!(u32_at(trun, 12), 3000);
    assert_eq!(u32_at(trun, 16), payload);
    assert_eq!(u32_at(trun, 20), 0x0200_0000, "sync sample");

    f.fragment(&frame(1033, false), &mut out);
    let moof = boxes(&out[..out.len() - 8])[0].1;
    assert_eq!(u32_at(child(moof, b"mfhd"), 4), 2);
    let traf = child(moof, b"traf");
    assert_eq!(&child(traf, b"tfdt")[4..], &2970u64.to_be_bytes());
    assert_eq!(
        u32_at(child(traf, b"trun"), 20),
        0x0101_0000,
        "non-sync sample"
    );
    // A frame stamped earlier still moves time forward.
    f.fragment(&frame(1010, false), &mut out);
    let moof = boxes(&out[..out.len() - 8])[0].1;
    assert_eq!(
        &child(child(moof, b"traf"), b"tfdt")[4..],
        &2971u64.to_be_bytes()
    );
    assert_eq!(f.origin(), Some(Duration::from_millis(1000)));
}
