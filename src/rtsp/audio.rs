//! The silent AAC-LC track of `audio = "silent"` over RTP (RFC 3640
//! `mpeg4-generic`, mode AAC-hbr), sans I/O. It sends the AudioSpecificConfig
//! and the silent frame of the FLV track ([`crate::flv::audio`]), stamped on
//! a 44.1 kHz clock taken from the capture clock the video's 90 kHz
//! timestamps come from: frame `n` covers samples `n * 1024 ..`, so both
//! tracks share one timeline, and the RTCP sender reports of both map it to
//! the same wall clock time.

use std::fmt::Write;
use std::time::Duration;

use crate::flv::audio::{AUDIO_SPECIFIC_CONFIG, FRAME_SAMPLES, SAMPLE_RATE, SILENT_FRAME};
use crate::rtp::{self, Packetizer};

/// The dynamic payload type of the audio track in SDP.
pub const PAYLOAD_TYPE: u8 = 97;

/// The size of one audio RTP packet without an interleave prefix: the RTP
/// header, AU-headers-length, one AU header, the frame.
pub const UDP_PACKET_LEN: usize = rtp::RTP_HEADER_LEN + 4 + SILENT_FRAME.len();

/// A video frame more than this many audio frames ahead of the audio (a
/// jump of the capture clock) skips the audio ahead instead of sending the
/// whole gap at once (about 1 s).
const MAX_BURST: u64 = (SAMPLE_RATE / FRAME_SAMPLES) as u64;

/// The SDP `a=rtpmap` and `a=fmtp` values after the payload type.
pub fn sdp_rtpmap() -> String {
    format!("mpeg4-generic/{SAMPLE_RATE}/1")
}

/// The `a=fmtp` parameters (RFC 3640 §4.1, AAC-hbr), `config` being the
/// AudioSpecificConfig in hex.
pub fn sdp_fmtp() -> String {
    let mut config = String::new();
    for b in AUDIO_SPECIFIC_CONFIG {
        // Writing to a String cannot fail.
        let _ = write!(config, "{b:02x}");
    }
    format!(
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
         indexdeltalength=3;config={config}"
    )
}

/// The audio RTP timestamp of capture time `pts` with a stream's offset.
pub fn rtp_timestamp(pts: Duration, offset: u32) -> u32 {
    offset.wrapping_add(rtp::clock_ticks(pts, SAMPLE_RATE) as u32)
}

/// One session's silent audio sender: which frame is next, and the RTP
/// state (SSRC, sequence, counts) of its own stream.
#[derive(Debug, Clone)]
pub struct SilentSender {
    pk: Packetizer,
    ts_offset: u32,
    /// The next frame, numbered on the capture clock; `None` before the
    /// first video frame.
    next: Option<u64>,
}

impl SilentSender {
    /// `pk` should carry [`PAYLOAD_TYPE`].
    pub fn new(pk: Packetizer, ts_offset: u32) -> Self {
        Self {
            pk,
            ts_offset,
            next: None,
        }
    }

    pub fn packetizer(&self) -> &Packetizer {
        &self.pk
    }

    /// Appends the packets of the frames due by `pts`, the capture time of
    /// the video frame about to be sent: every frame that starts at or
    /// before it, beginning (on the first call) with the frame under way at
    /// `pts`. Returns how many frames it appended.
    pub fn until(&mut self, pts: Duration, out: &mut Vec<u8>) -> usize {
        let last = rtp::clock_ticks(pts, SAMPLE_RATE) / u64::from(FRAME_SAMPLES);
        let mut n = *self.next.get_or_insert(last);
        if last > n + MAX_BURST {
            n = last;
        }
        let first = n;
        while n <= last {
            let ts = self
                .ts_offset
                .wrapping_add((n * u64::from(FRAME_SAMPLES)) as u32);
            self.pk.packetize_aac(ts, &SILENT_FRAME, out);
            n += 1;
        }
        self.next = Some(n);
        (n - first) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_values_match_the_flv_track() {
        assert_eq!(sdp_rtpmap(), "mpeg4-generic/44100/1");
        assert!(sdp_fmtp().ends_with(";config=1208"), "{}", sdp_fmtp());
        assert!(sdp_fmtp().starts_with("streamtype=5;profile-level-id=1;mode=AAC-hbr;"));
    }

    /// The RTP timestamps of what `until` appended.
    fn stamps(out: &[u8]) -> Vec<u32> {
        out.chunks(UDP_PACKET_LEN)
            .map(|p| u32::from_be_bytes(p[4..8].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn frames_keep_pace_with_the_video_on_the_capture_clock() {
        let offset = u32::MAX - 5000;
        let pk = Packetizer::new(9, 100, 1400, None).with_payload_type(PAYLOAD_TYPE);
        let mut s = SilentSender::new(pk, offset);
        let mut out = Vec::new();
        // Playing starts at 10 s: the frame under way then comes first.
        let start = Duration::from_secs(10);
        assert_eq!(s.until(start, &mut out), 1);
        let first = stamps(&out)[0];
        assert_eq!(
            first,
            offset.wrapping_add(430 * 1024),
            "frame 430 starts at 9.9846 s"
        );
        let mut sent = 1;
        let mut last_ts = first;
        // 60 s of 30 fps video.
        for i in 1..=1800u64 {
            let pts = start + Duration::from_nanos(i * 1_000_000_000 / 30);
            out.clear();
            sent += s.until(pts, &mut out);
            for ts in stamps(&out) {
                assert_eq!(ts, last_ts.wrapping_add(1024), "one frame after the other");
                last_ts = ts;
            }
            // The newest audio frame started at most one frame before the video.
            let video = rtp_timestamp(pts, offset);
            let behind = video.wrapping_sub(last_ts);
            assert!(behind < 1024, "audio {behind} ticks behind at {pts:?}");
        }
        // 60 s at 44.1 kHz is 2583.98 frames.
        assert_eq!(sent, 2585);
        assert_eq!(s.packetizer().counts().0, 2585);
        // A jump of the capture clock skips ahead instead of a burst.
        out.clear();
        assert_eq!(s.until(Duration::from_secs(200), &mut out), 1);
    }
}
