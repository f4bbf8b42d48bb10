//! Fragmented MP4 (ISO/IEC 14496-12, H.264 in 14496-15) for Media Source
//! Extensions: one init segment (`ftyp` + `moov` with an `avcC` sample
//! entry; Safari refuses `avc3`), then one `moof` + `mdat` per frame.
//!
//! Pure: the muxer writes box headers into a caller's buffer and names the
//! shared NAL unit slices that follow them, so a viewer's only own bytes are
//! headers (no copy of the picture per viewer).

use crate::h264::{self, ParameterSets};
use crate::media::{EncodedFrame, StreamInfo};

/// Media time units per second (the RTP clock, so timestamps stay exact).
pub const TIMESCALE: u32 = 90_000;

fn begin(out: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    at
}

fn full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let at = begin(out, kind);
    out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    at
}

fn end(out: &mut [u8], at: usize) {
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn u16b(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn u32b(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}

/// The unity transformation matrix of `mvhd`/`tkhd`.
fn matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32b(out, v);
    }
}

/// The `avcC` box (AVCDecoderConfigurationRecord, 14496-15 5.3.3.1).
pub fn avcc(params: &ParameterSets, out: &mut Vec<u8>) {
    let at = begin(out, b"avcC");
    let sps = &params.sps;
    out.push(1);
    out.extend_from_slice(&[
        sps.get(1).copied().unwrap_or(66),
        sps.get(2).copied().unwrap_or(0),
        sps.get(3).copied().unwrap_or(30),
    ]);
    out.push(0xfc | 3); // 4-byte NAL lengths
    out.push(0xe0 | 1);
    u16b(out, sps.len() as u16);
    out.extend_from_slice(sps);
    out.push(1);
    u16b(out, params.pps.len() as u16);
    out.extend_from_slice(&params.pps);
    let profile = sps.get(1).copied().unwrap_or(66);
    if matches!(profile, 100 | 110 | 122 | 144) {
        // chroma_format_idc 4:2:0, 8-bit, no SPS extensions.
        out.extend_from_slice(&[0xfc | 1, 0xf8, 0xf8, 0]);
    }
    end(out, at);
}

/// The init segment: `ftyp` and `moov` for one H.264 video track.
pub fn init_segment(info: &StreamInfo) -> Vec<u8> {
    let mut o = Vec::with_capacity(768);
    let at = begin(&mut o, b"ftyp");
    o.extend_from_slice(b"iso5");
    u32b(&mut o, 512);
    for brand in [b"iso5", b"iso6", b"avc1", b"mp41"] {
        o.extend_from_slice(brand);
    }
    end(&mut o, at);

    let moov = begin(&mut o, b"moov");
    let mvhd = full(&mut o, b"mvhd", 0, 0);
    zeros(&mut o, 8); // creation, modification
    u32b(&mut o, 1000);
    u32b(&mut o, 0); // duration: unknown (fragmented)
    u32b(&mut o, 0x0001_0000); // rate 1.0
    u16b(&mut o, 0x0100); // volume 1.0
    zeros(&mut o, 10);
    matrix(&mut o);
    zeros(&mut o, 24);
    u32b(&mut o, 2); // next track
    end(&mut o, mvhd);

    let trak = begin(&mut o, b"trak");
    let tkhd = full(&mut o, b"tkhd", 0, 3); // enabled, in movie
    zeros(&mut o, 8);
    u32b(&mut o, 1); // track id
    zeros(&mut o, 4);
    u32b(&mut o, 0); // duration
    zeros(&mut o, 8);
    u16b(&mut o, 0); // layer
    u16b(&mut o, 0); // alternate group
    u16b(&mut o, 0); // volume (video)
    zeros(&mut o, 2);
    matrix(&mut o);
    u32b(&mut o, info.width << 16);
    u32b(&mut o, info.height << 16);
    end(&mut o, tkhd);

    let mdia = begin(&mut o, b"mdia");
    let mdhd = full(&mut o, b"mdhd", 0, 0);
    zeros(&mut o, 8);
    u32b(&mut o, TIMESCALE);
    u32b(&mut o, 0);
    u16b(&mut o, 0x55c4); // language "und"
    zeros(&mut o, 2);
    end(&mut o, mdhd);
    let hdlr = full(&mut o, b"hdlr", 0, 0);
    zeros(&mut o, 4);
    o.extend_from_slice(b"vide");
    zeros(&mut o, 12);
    o.extend_from_slice(b"edgestream\0");
    end(&mut o, hdlr);

    let minf = begin(&mut o, b"minf");
    let vmhd = full(&mut o, b"vmhd", 0, 1);
    zeros(&mut o, 8);
    end(&mut o, vmhd);
    let dinf = begin(&mut o, b"dinf");
    let dref = full(&mut o, b"dref", 0, 0);
    u32b(&mut o, 1);
    let url = full(&mut o, b"url ", 0, 1); // self-contained
    end(&mut o, url);
    end(&mut o, dref);
    end(&mut o, dinf);

    let stbl = begin(&mut o, b"stbl");
    let stsd = full(&mut o, b"stsd", 0, 0);
    u32b(&mut o, 1);
    let avc1 = begin(&mut o, b"avc1");
    zeros(&mut o, 6);
    u16b(&mut o, 1); // data reference index
    zeros(&mut o, 16);
    u16b(&mut o, info.width as u16);
    u16b(&mut o, info.height as u16);
    u32b(&mut o, 0x0048_0000); // 72 dpi
    u32b(&mut o, 0x0048_0000);
    zeros(&mut o, 4);
    u16b(&mut o, 1); // frame count
    zeros(&mut o, 32); // compressor name
    u16b(&mut o, 0x0018); // depth
    u16b(&mut o, 0xffff); // pre-defined -1
    avcc(&info.params, &mut o);
    end(&mut o, avc1);
    end(&mut o, stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = full(&mut o, kind, 0, 0);
        u32b(&mut o, 0);
        end(&mut o, b);
    }
    let stsz = full(&mut o, b"stsz", 0, 0);
    u32b(&mut o, 0);
    u32b(&mut o, 0);
    end(&mut o, stsz);
    end(&mut o, stbl);
    end(&mut o, minf);
    end(&mut o, mdia);
    end(&mut o, trak);

    let mvex = begin(&mut o, b"mvex");
    let trex = full(&mut o, b"trex", 0, 0);
    u32b(&mut o, 1); // track
    u32b(&mut o, 1); // sample description
    u32b(&mut o, 0);
    u32b(&mut o, 0);
    u32b(&mut o, 0);
    end(&mut o, trex);
    end(&mut o, mvex);
    end(&mut o, moov);
    o
}

/// Whether a NAL unit goes into the samples: parameter sets live in `avcC`
/// and access unit delimiters are not needed.
pub fn in_sample(nal: &[u8]) -> bool {
    !nal.is_empty()
        && !matches!(
            h264::nal_unit_type(nal[0]),
            h264::nal_type::SPS | h264::nal_type::PPS | h264::nal_type::AUD
        )
}

/// Writes fragments for one viewer: sequence numbers and decode times.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    sequence: u32,
    /// Capture time of the viewer's first frame: its media time 0.
    origin: Option<std::time::Duration>,
    /// Last decode time written, so time never runs backwards.
    last: Option<u64>,
    frame_ticks: u32,
}

impl Fragmenter {
    /// `frame_ticks`: the nominal frame duration in [`TIMESCALE`] units.
    pub fn new(frame_ticks: u32) -> Self {
        Self {
            sequence: 0,
            origin: None,
            last: None,
            frame_ticks: frame_ticks.max(1),
        }
    }

    /// The capture time of media time 0, once the first frame was written.
    #[cfg(test)]
    pub fn origin(&self) -> Option<std::time::Duration> {
        self.origin
    }

    /// Writes the `moof` and the `mdat` header for `frame` into `out`
    /// (cleared first). The `mdat` payload is, for each NAL unit that
    /// [`in_sample`] keeps, its length as 4 bytes big-endian and then the
    /// NAL unit itself, in order. Returns the payload size.
    pub fn fragment(&mut self, frame: &EncodedFrame, out: &mut Vec<u8>) -> u32 {
        out.clear();
        let origin = *self.origin.get_or_insert(frame.pts);
        let ticks =
            frame.pts.saturating_sub(origin).as_micros() as u64 * u64::from(TIMESCALE) / 1_000_000;
        let dts = match self.last {
            Some(last) if ticks <= last => last + 1,
            _ => ticks,
        };
        self.last = Some(dts);
        self.sequence = self.sequence.wrapping_add(1);
        let payload: u32 = frame
            .nals()
            .filter(|n| in_sample(n))
            .map(|n| 4 + n.len() as u32)
            .sum();

        let moof = begin(out, b"moof");
        let mfhd = full(out, b"mfhd", 0, 0);
        u32b(out, self.sequence);
        end(out, mfhd);
        let traf = begin(out, b"traf");
        let tfhd = full(out, b"tfhd", 0, 0x02_0000); // default-base-is-moof
        u32b(out, 1);
        end(out, tfhd);
        let tfdt = full(out, b"tfdt", 1, 0);
        out.extend_from_slice(&dts.to_be_bytes());
        end(out, tfdt);
        // data offset, sample duration, size and flags present.
        let trun = full(out, b"trun", 0, 0x0001 | 0x0100 | 0x0200 | 0x0400);
        u32b(out, 1);
        let offset_at = out.len();
        u32b(out, 0);
        u32b(out, self.frame_ticks);
        u32b(out, payload);
        // sample_depends_on 2 (an IDR depends on nothing), or 1 and
        // sample_is_non_sync_sample.
        u32b(
            out,
            if frame.keyframe {
                0x0200_0000
            } else {
                0x0101_0000
            },
        );
        end(out, trun);
        end(out, traf);
        end(out, moof);
        let data_offset = (out.len() - moof + 8) as u32;
        out[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        u32b(out, 8 + payload);
        out.extend_from_slice(b"mdat");
        payload
    }
}

#[cfg(test)]
mod tests;
