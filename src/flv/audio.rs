//! A silent AAC-LC mono track for FLV and RTMP (`audio = "silent"`), for
//! platforms that want audio beside the video (YouTube). Made once: an
//! AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and one constant raw
//! frame of silence (1024 samples of zero, a single-channel element with no
//! spectral data; the frame hls.js uses to fill gaps), stamped on a 44.1 kHz
//! clock and interleaved with the video by timestamp.

/// Samples per second.
pub const SAMPLE_RATE: u32 = 44_100;
/// Samples per AAC frame.
pub const FRAME_SAMPLES: u32 = 1024;

/// AudioSpecificConfig: object type 2 (AAC LC), sampling frequency index 4
/// (44100 Hz), channel configuration 1 (mono), 1024-sample frames.
pub const AUDIO_SPECIFIC_CONFIG: [u8; 2] = [0x12, 0x08];

/// One raw AAC-LC mono frame that decodes to 1024 samples of silence.
pub const SILENT_FRAME: [u8; 6] = [0x00, 0xc8, 0x00, 0x80, 0x23, 0x80];

/// The FLV AUDIODATA first byte for AAC: SoundFormat 10, and (as the
/// specification requires for AAC) 44 kHz, 16-bit, "stereo"; the real
/// layout is in the AudioSpecificConfig.
const AAC_HEADER: u8 = 0xaf;

/// The FLV audio codec id of AAC.
pub const CODEC_AAC: u8 = 10;

/// The body of the AAC sequence header tag (AACPacketType 0).
pub fn sequence_header_body() -> Vec<u8> {
    let mut b = vec![AAC_HEADER, 0];
    b.extend_from_slice(&AUDIO_SPECIFIC_CONFIG);
    b
}

/// The body of one silent frame's tag (AACPacketType 1).
pub fn silent_frame_body() -> &'static [u8] {
    const BODY: [u8; 8] = [
        AAC_HEADER,
        1,
        SILENT_FRAME[0],
        SILENT_FRAME[1],
        SILENT_FRAME[2],
        SILENT_FRAME[3],
        SILENT_FRAME[4],
        SILENT_FRAME[5],
    ];
    &BODY
}

/// One audio tag to send: a timestamp (ms) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    pub timestamp: u32,
    pub body: Vec<u8>,
}

/// Interleaves silent frames with the video of one connection: before each
/// video tag at `t` ms, every audio frame due by `t`, so that both
/// timelines move together (within one audio frame, 23 ms).
#[derive(Debug, Default)]
pub struct SilentTrack {
    started: bool,
    /// Frames sent so far.
    frames: u64,
}

impl SilentTrack {
    pub fn new() -> Self {
        Self::default()
    }

    /// The millisecond timestamp of frame `n`.
    fn timestamp(n: u64) -> u32 {
        (n * u64::from(FRAME_SAMPLES) * 1000 / u64::from(SAMPLE_RATE)) as u32
    }

    /// Appends the audio due by `video_ms`: the sequence header first on
    /// the first call, then the frames whose timestamps are `<= video_ms`.
    pub fn until(&mut self, video_ms: u32, out: &mut Vec<AudioTag>) {
        if !self.started {
            self.started = true;
            // Start with the video, wherever its first tag is.
            out.push(AudioTag {
                timestamp: video_ms,
                body: sequence_header_body(),
            });
            let base =
                u64::from(video_ms) * u64::from(SAMPLE_RATE) / (u64::from(FRAME_SAMPLES) * 1000);
            self.frames = base;
        }
        while Self::timestamp(self.frames) <= video_ms {
            out.push(AudioTag {
                timestamp: Self::timestamp(self.frames),
                body: silent_frame_body().to_vec(),
            });
            self.frames += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_says_aac_lc_44100_mono() {
        let c = u16::from_be_bytes(AUDIO_SPECIFIC_CONFIG);
        assert_eq!(c >> 11, 2, "object type AAC LC");
        assert_eq!((c >> 7) & 0xf, 4, "44100 Hz");
        assert_eq!((c >> 3) & 0xf, 1, "mono");
        assert_eq!(c & 0x7, 0, "1024-sample frames, no extensions");
        assert_eq!(sequence_header_body(), vec![0xaf, 0, 0x12, 0x08]);
        assert_eq!(silent_frame_body()[..2], [0xaf, 1]);
    }

    #[test]
    fn frames_keep_up_with_the_video_and_never_go_back() {
        let mut t = SilentTrack::new();
        let mut out = Vec::new();
        t.until(0, &mut out);
        assert_eq!(out.len(), 2, "header and frame 0");
        assert_eq!(out[0].body, sequence_header_body());
        let mut last = 0;
        // 60 s of 30 fps video.
        for n in 1..=1800u32 {
            let video = n * 1000 / 30;
            out.clear();
            t.until(video, &mut out);
            for a in &out {
                assert!(a.timestamp >= last && a.timestamp <= video);
                last = a.timestamp;
            }
            assert!(video - last < 24, "audio {last} behind video {video}");
        }
        // Frames 0 to 2584 (frame 2584 is stamped 60 000 ms).
        assert_eq!(t.frames, 2585);
        assert_eq!(SilentTrack::timestamp(2584), 60_000);
        // A connection that starts later starts its audio there too.
        let mut t = SilentTrack::new();
        out.clear();
        t.until(5000, &mut out);
        assert_eq!(out[0].timestamp, 5000);
        assert!(out[1].timestamp >= 4977 && out[1].timestamp <= 5000);
        assert_eq!(out.len(), 2);
    }
}
