//! FLV (Adobe Flash Video File Format Specification 10.1, annex E): the muxer
//! the push targets share, and a bounded reader for checking its output.
//!
//! The same tag bodies go to both outputs: a raw FLV byte stream over TCP
//! (header, tags, PreviousTagSize chain) and RTMP messages (a tag body is an
//! RTMP message payload). Pure code: frames and parameters in, bytes out.
//!
//! Per stream: an `onMetaData` script tag, then an AVC sequence header
//! (AVCDecoderConfigurationRecord, ISO/IEC 14496-15 §5.2.4.1) at the first
//! keyframe, then one video tag per access unit with 4-byte NAL lengths.
//! Timestamps are milliseconds of capture time from the first frame sent.

use std::fmt;
use std::time::Duration;

use crate::h264::ParameterSets;
use crate::media::{EncodedFrame, StreamInfo};
use crate::rtmp::amf0::{self, Value};

pub mod audio;

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// The size of a tag header.
pub const TAG_HEADER_LEN: usize = 11;

/// No tag (header and body) may reach this size: crtmpserver's inboundLiveFlv
/// rejects such tags ("Frame too large"), and no sane frame at our bitrates
/// comes near it.
pub const MAX_TAG_SIZE: usize = 1 << 20;

/// The FLV video codec id of AVC (H.264).
pub const CODEC_AVC: u8 = 7;

/// What `onMetaData` announces.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub width: u32,
    pub height: u32,
    pub framerate: f64,
    /// kbit/s.
    pub videodatarate: u32,
    pub encoder: String,
    /// Names the stream for servers that take it from the metadata
    /// (crtmpserver's inboundLiveFlv).
    pub stream_name: Option<String>,
    /// A silent AAC track goes beside the video ([`audio`]).
    pub audio: bool,
}

impl Metadata {
    pub fn from_info(info: &StreamInfo, stream_name: Option<&str>) -> Self {
        Self {
            width: info.width,
            height: info.height,
            framerate: info.fps.as_f64(),
            videodatarate: info.bitrate_kbps,
            encoder: format!("edgestream {}", env!("CARGO_PKG_VERSION")),
            stream_name: stream_name.map(str::to_string),
            audio: false,
        }
    }

    /// The script data body: `onMetaData` and an ECMA array. With
    /// `set_data_frame` it is prefixed by `@setDataFrame`, as RTMP publishers
    /// send it (the server strips the prefix and keeps the metadata for
    /// players that join later).
    pub fn script_body(&self, set_data_frame: bool) -> Vec<u8> {
        let mut props = vec![
            ("width".to_string(), Value::Number(f64::from(self.width))),
            ("height".to_string(), Value::Number(f64::from(self.height))),
            ("framerate".to_string(), Value::Number(self.framerate)),
            (
                "videocodecid".to_string(),
                Value::Number(f64::from(CODEC_AVC)),
            ),
            (
                "videodatarate".to_string(),
                Value::Number(f64::from(self.videodatarate)),
            ),
            ("encoder".to_string(), Value::str(self.encoder.clone())),
        ];
        if self.audio {
            props.extend([
                (
                    "audiocodecid".to_string(),
                    Value::Number(f64::from(audio::CODEC_AAC)),
                ),
                (
                    "audiosamplerate".to_string(),
                    Value::Number(f64::from(audio::SAMPLE_RATE)),
                ),
                ("audiosamplesize".to_string(), Value::Number(16.0)),
                ("audiochannels".to_string(), Value::Number(1.0)),
                ("stereo".to_string(), Value::Boolean(false)),
                ("audiodatarate".to_string(), Value::Number(0.0)),
            ]);
        }
        if let Some(name) = &self.stream_name {
            props.push(("streamName".to_string(), Value::str(name.clone())));
        }
        let mut values = Vec::with_capacity(3);
        if set_data_frame {
            values.push(Value::str("@setDataFrame"));
        }
        values.push(Value::str("onMetaData"));
        values.push(Value::EcmaArray(props));
        amf0::encode_all(&values)
    }
}

/// The FLV file header (video only) and the first PreviousTagSize (0).
pub fn file_header() -> [u8; 13] {
    [b'F', b'L', b'V', 1, 0x01, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// The FLV file header announcing video and audio.
pub fn file_header_with_audio() -> [u8; 13] {
    let mut h = file_header();
    h[4] |= 0x04;
    h
}

/// Appends one tag: header, body, and the PreviousTagSize after it.
/// Timestamps wrap after 2^32 ms (49 days), as FLV's do.
pub fn write_tag(out: &mut Vec<u8>, tag_type: u8, timestamp: u32, body: &[u8]) {
    let len = body.len() as u32;
    out.push(tag_type);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
    out.push((timestamp >> 24) as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&(len + TAG_HEADER_LEN as u32).to_be_bytes());
}

/// The AVCDecoderConfigurationRecord for one SPS and one PPS.
pub fn avc_decoder_configuration_record(params: &ParameterSets) -> Vec<u8> {
    let p = params.profile;
    let mut out = Vec::with_capacity(11 + params.sps.len() + params.pps.len());
    out.extend_from_slice(&[1, p.profile_idc, p.constraints, p.level_idc]);
    out.push(0xfc | 3); // reserved, lengthSizeMinusOne = 3: 4-byte NAL lengths
    out.push(0xe0 | 1); // reserved, one SPS
    out.extend_from_slice(&(params.sps.len() as u16).to_be_bytes());
    out.extend_from_slice(&params.sps);
    out.push(1); // one PPS
    out.extend_from_slice(&(params.pps.len() as u16).to_be_bytes());
    out.extend_from_slice(&params.pps);
    out
}

/// The video tag body carrying the AVC sequence header.
pub fn sequence_header_body(params: &ParameterSets) -> Vec<u8> {
    let mut out = vec![0x10 | CODEC_AVC, 0, 0, 0, 0];
    out.extend_from_slice(&avc_decoder_configuration_record(params));
    out
}

/// Size of the video tag body [`VideoTagger`] makes for `frame`.
pub fn frame_body_len(frame: &EncodedFrame) -> usize {
    5 + frame.nals().map(|n| 4 + n.len()).sum::<usize>()
}

/// One video tag's body and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    pub timestamp: u32,
    pub body: Vec<u8>,
    pub keyframe: bool,
    pub sequence_header: bool,
}

/// Why a frame produced no tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Waiting for a keyframe (stream start, or after a dropped frame).
    WaitingForKeyframe,
    /// The frame's tag would reach [`MAX_TAG_SIZE`]; it is dropped and the
    /// stream resumes at the next keyframe.
    TooLarge { size: usize },
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WaitingForKeyframe => f.write_str("waiting for a keyframe"),
            Self::TooLarge { size } => write!(
                f,
                "a {size}-byte frame would make an FLV tag of {} bytes or more; dropped, resuming at the next keyframe",
                MAX_TAG_SIZE
            ),
        }
    }
}

/// Turns encoded frames into FLV video tags for one connection: starts at a
/// keyframe with a sequence header, sends a new sequence header when the
/// in-band SPS/PPS change, stamps milliseconds from the first frame.
#[derive(Debug, Default)]
pub struct VideoTagger {
    base: Option<Duration>,
    params: Option<ParameterSets>,
    resume_at_keyframe: bool,
    last_timestamp: u32,
}

impl VideoTagger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tags for `frame` (a sequence header first when needed), appended
    /// to `out`. `params` are the stream's parameter sets, used when the
    /// keyframe carries none in-band.
    pub fn push(
        &mut self,
        frame: &EncodedFrame,
        params: &ParameterSets,
        out: &mut Vec<VideoTag>,
    ) -> Result<(), Skipped> {
        let started = self.base.is_some() && !self.resume_at_keyframe;
        if !started && !frame.keyframe {
            return Err(Skipped::WaitingForKeyframe);
        }
        let size = frame_body_len(frame);
        if size + TAG_HEADER_LEN >= MAX_TAG_SIZE {
            self.resume_at_keyframe = true;
            return Err(Skipped::TooLarge {
                size: frame.payload_len(),
            });
        }
        self.resume_at_keyframe = false;
        let base = *self.base.get_or_insert(frame.pts);
        let ms = frame.pts.saturating_sub(base).as_millis() as u64 as u32;
        // Capture times only move forward, but never let a tag go back.
        let timestamp = if self.params.is_some() {
            ms.max(self.last_timestamp)
        } else {
            ms
        };
        self.last_timestamp = timestamp;
        if frame.keyframe {
            let in_band = frame.parameter_sets();
            let current = in_band.as_ref().unwrap_or(params);
            if self.params.as_ref() != Some(current) {
                out.push(VideoTag {
                    timestamp,
                    body: sequence_header_body(current),
                    keyframe: true,
                    sequence_header: true,
                });
                self.params = Some(current.clone());
            }
        }
        let mut body = Vec::with_capacity(size);
        body.push(if frame.keyframe { 0x10 } else { 0x20 } | CODEC_AVC);
        body.extend_from_slice(&[1, 0, 0, 0]); // AVC NALU, composition time 0
        for nal in frame.nals() {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        out.push(VideoTag {
            timestamp,
            body,
            keyframe: frame.keyframe,
            sequence_header: false,
        });
        Ok(())
    }
}

/// A bounded FLV reader: for tests and tools that check what was sent.
pub mod read {
    use super::*;

    /// One tag as read back.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Tag {
        pub tag_type: u8,
        pub timestamp: u32,
        pub body: Vec<u8>,
        /// Where the tag starts in the input.
        pub offset: usize,
    }

    /// What a file held.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct File {
        pub has_video: bool,
        pub has_audio: bool,
        pub tags: Vec<Tag>,
        /// Bytes after the last whole tag (a recording cut off mid-tag).
        pub trailing: usize,
    }

    /// Why the input is not FLV.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FlvError {
        pub offset: usize,
        pub what: String,
    }

    impl fmt::Display for FlvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "FLV at byte {}: {}", self.offset, self.what)
        }
    }

    impl std::error::Error for FlvError {}

    fn be(b: &[u8]) -> u32 {
        b.iter().fold(0, |acc, &x| acc << 8 | u32::from(x))
    }

    /// Parses a whole FLV byte stream, checking the PreviousTagSize chain.
    /// A last tag cut short is reported in `trailing`, not as an error.
    pub fn parse(data: &[u8]) -> Result<File, FlvError> {
        let err = |offset, what: String| Err(FlvError { offset, what });
        if data.len() < 13 || &data[..3] != b"FLV" {
            return err(0, "no FLV signature".into());
        }
        let header_len = be(&data[5..9]) as usize;
        if header_len < 9 || header_len + 4 > data.len() {
            return err(5, format!("bad header size {header_len}"));
        }
        if be(&data[header_len..header_len + 4]) != 0 {
            return err(header_len, "PreviousTagSize0 is not 0".into());
        }
        let mut file = File {
            has_video: data[4] & 1 != 0,
            has_audio: data[4] & 4 != 0,
            tags: Vec::new(),
            trailing: 0,
        };
        let mut pos = header_len + 4;
        while pos < data.len() {
            let rest = &data[pos..];
            if rest.len() < TAG_HEADER_LEN {
                file.trailing = rest.len();
                break;
            }
            let tag_type = rest[0] & 0x1f;
            let size = be(&rest[1..4]) as usize;
            let timestamp = be(&rest[4..7]) | u32::from(rest[7]) << 24;
            if !matches!(tag_type, TAG_AUDIO | TAG_VIDEO | TAG_SCRIPT) {
                return err(pos, format!("unknown tag type {tag_type}"));
            }
            if rest.len() < TAG_HEADER_LEN + size + 4 {
                file.trailing = rest.len();
                break;
            }
            let prev = be(&rest[TAG_HEADER_LEN + size..TAG_HEADER_LEN + size + 4]) as usize;
            if prev != TAG_HEADER_LEN + size {
                return err(
                    pos + TAG_HEADER_LEN + size,
                    format!(
                        "PreviousTagSize {prev} does not match the tag's {}",
                        TAG_HEADER_LEN + size
                    ),
                );
            }
            file.tags.push(Tag {
                tag_type,
                timestamp,
                body: rest[TAG_HEADER_LEN..TAG_HEADER_LEN + size].to_vec(),
                offset: pos,
            });
            pos += TAG_HEADER_LEN + size + 4;
        }
        Ok(file)
    }

    /// A video tag body, interpreted.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Video<'a> {
        pub keyframe: bool,
        pub codec: u8,
        /// 0: sequence header, 1: NAL units, 2: end of sequence.
        pub packet_type: u8,
        pub composition_time: i32,
        pub data: &'a [u8],
    }

    impl<'a> Video<'a> {
        pub fn parse(body: &'a [u8]) -> Option<Self> {
            if body.len() < 5 {
                return None;
            }
            let cts = (be(&body[2..5]) << 8) as i32 >> 8;
            Some(Self {
                keyframe: body[0] >> 4 == 1,
                codec: body[0] & 0x0f,
                packet_type: body[1],
                composition_time: cts,
                data: &body[5..],
            })
        }

        /// The NAL units of a packet of type 1 (4-byte lengths); `None` if
        /// the lengths do not add up to the body.
        pub fn nals(&self) -> Option<Vec<&'a [u8]>> {
            let mut nals = Vec::new();
            let mut rest = self.data;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return None;
                }
                let n = be(&rest[..4]) as usize;
                if rest.len() < 4 + n {
                    return None;
                }
                nals.push(&rest[4..4 + n]);
                rest = &rest[4 + n..];
            }
            Some(nals)
        }
    }

    /// Reads SPS and PPS back out of an AVCDecoderConfigurationRecord.
    pub fn decoder_configuration(record: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        if record.len() < 8 || record[0] != 1 || record[4] & 3 != 3 {
            return None;
        }
        let n_sps = record[5] & 0x1f;
        let mut pos = 6;
        let take = |pos: &mut usize| -> Option<Vec<u8>> {
            let n = be(record.get(*pos..*pos + 2)?) as usize;
            let v = record.get(*pos + 2..*pos + 2 + n)?.to_vec();
            *pos += 2 + n;
            Some(v)
        };
        if n_sps != 1 {
            return None;
        }
        let sps = take(&mut pos)?;
        if *record.get(pos)? != 1 {
            return None;
        }
        pos += 1;
        let pps = take(&mut pos)?;
        Some((sps, pps))
    }
}

#[cfg(test)]
mod tests {
    use super::read::{self, Video};
    use super::*;

    fn params() -> ParameterSets {
        ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e, 0xab], vec![0x68, 0xce, 0x3c]).unwrap()
    }

    fn frame(seq: u64, ms: u64, keyframe: bool, payload: usize) -> EncodedFrame {
        let mut au = Vec::new();
        if keyframe {
            au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xab]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c]);
        }
        au.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
        au.extend(std::iter::repeat_n(0x5a, payload));
        EncodedFrame::from_annex_b(au, Duration::from_millis(5_000 + ms), seq).unwrap()
    }

    fn meta() -> Metadata {
        Metadata {
            width: 640,
            height: 480,
            framerate: 30.0,
            videodatarate: 1000,
            encoder: "edgestream test".into(),
            stream_name: Some("cam1".into()),
            audio: false,
        }
    }

    /// A stream as the raw FLV push writes it.
    fn mux(frames: &[EncodedFrame]) -> (Vec<u8>, Vec<Skipped>) {
        let mut out = file_header().to_vec();
        write_tag(&mut out, TAG_SCRIPT, 0, &meta().script_body(false));
        let mut tagger = VideoTagger::new();
        let mut skipped = Vec::new();
        for f in frames {
            let mut tags = Vec::new();
            match tagger.push(f, &params(), &mut tags) {
                Ok(()) => {
                    for t in tags {
                        write_tag(&mut out, TAG_VIDEO, t.timestamp, &t.body);
                    }
                }
                Err(s) => skipped.push(s),
            }
        }
        (out, skipped)
    }

    #[test]
    fn muxed_stream_parses_back_tag_by_tag() {
        let frames: Vec<_> = (0..10)
            .map(|i| frame(i, i * 33 + 2, i % 5 == 1, 100 + i as usize))
            .collect();
        let (bytes, skipped) = mux(&frames);
        // Frame 0 is not a keyframe: skipped until frame 1.
        assert_eq!(skipped, vec![Skipped::WaitingForKeyframe]);
        let file = read::parse(&bytes).unwrap();
        assert!(file.has_video && !file.has_audio);
        assert_eq!(file.trailing, 0);
        // Script, sequence header, frames 1..=9.
        assert_eq!(file.tags.len(), 2 + 9);

        let script = &file.tags[0];
        assert_eq!((script.tag_type, script.timestamp), (TAG_SCRIPT, 0));
        let values = amf0::decode_all(&script.body).unwrap();
        assert_eq!(values[0], Value::str("onMetaData"));
        let m = &values[1];
        assert_eq!(m.get_str("streamName"), Some("cam1"));
        assert_eq!(m.get("width"), Some(&Value::Number(640.0)));
        assert_eq!(m.get("height"), Some(&Value::Number(480.0)));
        assert_eq!(m.get("framerate"), Some(&Value::Number(30.0)));
        assert_eq!(m.get("videocodecid"), Some(&Value::Number(7.0)));
        assert_eq!(m.get("videodatarate"), Some(&Value::Number(1000.0)));
        assert_eq!(m.get_str("encoder"), Some("edgestream test"));

        let seq = Video::parse(&file.tags[1].body).unwrap();
        assert_eq!((seq.keyframe, seq.codec, seq.packet_type), (true, 7, 0));
        assert_eq!(file.tags[1].timestamp, 0);
        let (sps, pps) = read::decoder_configuration(seq.data).unwrap();
        assert_eq!((sps, pps), (params().sps, params().pps));
        assert_eq!(&seq.data[1..4], &[0x42, 0xc0, 0x1e]);

        let mut last = 0;
        for (i, tag) in file.tags[2..].iter().enumerate() {
            let f = &frames[i + 1];
            assert_eq!(tag.tag_type, TAG_VIDEO);
            // Milliseconds of capture time from the first frame sent.
            assert_eq!(tag.timestamp as u64, (f.pts.as_millis() - 5_035) as u64);
            assert!(tag.timestamp >= last);
            last = tag.timestamp;
            let v = Video::parse(&tag.body).unwrap();
            assert_eq!(
                (v.keyframe, v.packet_type, v.composition_time),
                (f.keyframe, 1, 0)
            );
            let nals = v.nals().unwrap();
            let expected: Vec<&[u8]> = f.nals().collect();
            assert_eq!(nals, expected);
        }
        assert!(Video::parse(&file.tags[2].body).unwrap().keyframe);
    }

    #[test]
    fn changed_parameter_sets_get_a_new_sequence_header() {
        let mut tagger = VideoTagger::new();
        let mut tags = Vec::new();
        tagger
            .push(&frame(0, 0, true, 10), &params(), &mut tags)
            .unwrap();
        tagger
            .push(&frame(1, 33, false, 10), &params(), &mut tags)
            .unwrap();
        tagger
            .push(&frame(2, 66, true, 10), &params(), &mut tags)
            .unwrap();
        assert_eq!(tags.iter().filter(|t| t.sequence_header).count(), 1);
        let au = [
            &[0u8, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1f, 0x99][..],
            &[0, 0, 0, 1, 0x68, 0xee, 0x3c],
            &[0, 0, 0, 1, 0x65, 1, 2, 3],
        ]
        .concat();
        let f = EncodedFrame::from_annex_b(au, Duration::from_millis(5_100), 3).unwrap();
        tags.clear();
        tagger.push(&f, &params(), &mut tags).unwrap();
        assert_eq!(tags.len(), 2);
        assert!(tags[0].sequence_header);
        let seq = Video::parse(&tags[0].body).unwrap();
        assert_eq!(&seq.data[1..4], &[0x4d, 0x40, 0x1f]);
        assert_eq!(tags[1].timestamp, 100);
    }

    #[test]
    fn an_oversized_frame_is_dropped_and_the_stream_resumes_at_a_keyframe() {
        let big = MAX_TAG_SIZE; // payload alone reaches the limit
        let frames = vec![
            frame(0, 0, true, 100),
            frame(1, 33, false, 100),
            frame(2, 66, false, big),
            frame(3, 100, false, 100),
            frame(4, 133, true, big),
            frame(5, 166, false, 100),
            frame(6, 200, true, 100),
            frame(7, 233, false, 100),
        ];
        let (bytes, skipped) = mux(&frames);
        assert!(matches!(skipped[0], Skipped::TooLarge { .. }));
        assert_eq!(skipped[1], Skipped::WaitingForKeyframe);
        assert!(matches!(skipped[2], Skipped::TooLarge { .. }));
        assert_eq!(skipped[3], Skipped::WaitingForKeyframe);
        assert!(skipped[0].to_string().contains("next keyframe"));
        let file = read::parse(&bytes).unwrap();
        let ts: Vec<u32> = file.tags[2..].iter().map(|t| t.timestamp).collect();
        assert_eq!(ts, vec![0, 33, 200, 233]);
        assert!(
            file.tags
                .iter()
                .all(|t| t.body.len() + TAG_HEADER_LEN < MAX_TAG_SIZE)
        );
        // Just under the limit passes.
        let mut tagger = VideoTagger::new();
        let fits = MAX_TAG_SIZE - TAG_HEADER_LEN - 5 - 4 - 1 - 1 - (4 + 5) - (4 + 3);
        let mut tags = Vec::new();
        tagger
            .push(&frame(0, 0, true, fits), &params(), &mut tags)
            .unwrap();
        assert_eq!(tags[1].body.len() + TAG_HEADER_LEN, MAX_TAG_SIZE - 1);
    }

    #[test]
    fn rtmp_metadata_has_set_data_frame_and_no_name_when_none() {
        let mut m = meta();
        m.stream_name = None;
        let values = amf0::decode_all(&m.script_body(true)).unwrap();
        assert_eq!(values[0], Value::str("@setDataFrame"));
        assert_eq!(values[1], Value::str("onMetaData"));
        assert_eq!(values[2].get("streamName"), None);
    }

    #[test]
    fn metadata_announces_the_silent_track_only_when_there_is_one() {
        let mut m = meta();
        let values = amf0::decode_all(&m.script_body(false)).unwrap();
        assert_eq!(values[1].get("audiocodecid"), None);
        m.audio = true;
        let values = amf0::decode_all(&m.script_body(false)).unwrap();
        assert_eq!(values[1].get("audiocodecid"), Some(&Value::Number(10.0)));
        assert_eq!(
            values[1].get("audiosamplerate"),
            Some(&Value::Number(44_100.0))
        );
        assert_eq!(values[1].get("stereo"), Some(&Value::Boolean(false)));
        assert_eq!(file_header_with_audio()[4], 0x05);
    }

    #[test]
    fn reader_rejects_a_broken_chain_and_reports_a_cut_tail() {
        let (bytes, _) = mux(&[frame(0, 0, true, 50), frame(1, 33, false, 50)]);
        let n = read::parse(&bytes).unwrap().tags.len();
        for cut in 13..bytes.len() {
            let f = read::parse(&bytes[..cut]).unwrap();
            assert!(f.tags.len() < n);
            let whole: usize = f
                .tags
                .iter()
                .map(|t| TAG_HEADER_LEN + t.body.len() + 4)
                .sum();
            assert_eq!(13 + whole + f.trailing, cut);
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = read::parse(&bad).unwrap_err();
        assert!(e.to_string().contains("PreviousTagSize"), "{e}");
        assert!(read::parse(b"GIF89a").is_err());
        // Timestamps use the extension byte above 24 bits.
        let mut out = file_header().to_vec();
        write_tag(&mut out, TAG_VIDEO, 0x1234_5678, &[0x27, 1, 0, 0, 0]);
        assert_eq!(read::parse(&out).unwrap().tags[0].timestamp, 0x1234_5678);
    }
}
