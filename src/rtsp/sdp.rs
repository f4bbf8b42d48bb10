//! The session description answered to DESCRIBE (RFC 4566, with the H.264
//! parameters of RFC 6184 §8.1, and with `audio = "silent"` the AAC track
//! of RFC 3640 §4.1).

use std::fmt::Write;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::audio;
use crate::media::StreamInfo;
use crate::rtp::{CLOCK_RATE, PAYLOAD_TYPE};

/// The control URL of the video track, relative to Content-Base.
pub const VIDEO_CONTROL: &str = "trackID=0";
/// The control URL of the silent audio track, relative to Content-Base.
pub const AUDIO_CONTROL: &str = "trackID=1";

/// Builds the SDP for the stream, with the silent audio track if `audio`.
/// `session_id` and `version` fill the origin line (a new version whenever
/// the parameter sets change).
pub fn describe(
    info: &StreamInfo,
    audio: bool,
    origin: IpAddr,
    session_id: u64,
    version: u64,
) -> String {
    let (addrtype, unspecified) = match origin {
        IpAddr::V4(_) => ("IP4", "0.0.0.0"),
        IpAddr::V6(_) => ("IP6", "::"),
    };
    let sps = STANDARD.encode(&info.params.sps);
    let pps = STANDARD.encode(&info.params.pps);
    let mut s = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\n\
         o=- {session_id} {version} IN {addrtype} {origin}\r\n\
         s=edgestream\r\n\
         i=live H.264 {w}x{h}\r\n\
         c=IN {addrtype} {unspecified}\r\n\
         t=0 0\r\n\
         a=tool:edgestream {ver}\r\n\
         a=type:broadcast\r\n\
         a=control:*\r\n\
         a=range:npt=now-\r\n\
         m=video 0 RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} H264/{CLOCK_RATE}\r\n\
         a=fmtp:{pt} packetization-mode=1;profile-level-id={pli};sprop-parameter-sets={sps},{pps}\r\n\
         a=framerate:{fps}\r\n\
         a=x-dimensions:{w},{h}\r\n\
         a=recvonly\r\n\
         a=control:{VIDEO_CONTROL}\r\n",
        w = info.width,
        h = info.height,
        ver = env!("CARGO_PKG_VERSION"),
        pt = PAYLOAD_TYPE,
        pli = info.params.profile.profile_level_id(),
        fps = format_fps(info.fps.as_f64()),
    );
    if audio {
        let _ = write!(
            s,
            "m=audio 0 RTP/AVP {pt}\r\n\
             a=rtpmap:{pt} {rtpmap}\r\n\
             a=fmtp:{pt} {fmtp}\r\n\
             a=recvonly\r\n\
             a=control:{AUDIO_CONTROL}\r\n",
            pt = audio::PAYLOAD_TYPE,
            rtpmap = audio::sdp_rtpmap(),
            fmtp = audio::sdp_fmtp(),
        );
    }
    s
}

fn format_fps(fps: f64) -> String {
    if fps.fract() == 0.0 {
        format!("{fps:.0}")
    } else {
        format!("{fps:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::ParameterSets;
    use crate::media::Fraction;

    #[test]
    fn sdp_has_what_players_need() {
        let info = StreamInfo {
            width: 640,
            height: 480,
            fps: Fraction::new(30, 1),
            bitrate_kbps: 1000,
            params: ParameterSets::new(
                vec![0x67, 0x42, 0xc0, 0x1e, 0xd9],
                vec![0x68, 0xce, 0x3c, 0x80],
            )
            .unwrap(),
        };
        let sdp = describe(&info, false, "192.0.2.7".parse().unwrap(), 42, 1);
        let lines: Vec<&str> = sdp.split("\r\n").collect();
        assert_eq!(lines[0], "v=0");
        assert_eq!(lines[1], "o=- 42 1 IN IP4 192.0.2.7");
        assert!(lines.contains(&"m=video 0 RTP/AVP 96"));
        assert!(lines.contains(&"a=rtpmap:96 H264/90000"));
        assert!(lines.contains(
            &"a=fmtp:96 packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHtk=,aM48gA=="
        ));
        assert!(lines.contains(&"a=framerate:30"));
        assert!(lines.contains(&"a=control:trackID=0"));
        assert!(sdp.ends_with("\r\n"));
        // The media-level control comes after the m= line.
        let m = lines.iter().position(|l| l.starts_with("m=")).unwrap();
        assert!(lines[m..].contains(&"a=control:trackID=0"));
        assert!(lines[..m].contains(&"a=control:*"));
        assert!(!sdp.contains("m=audio"));
        let v6 = describe(&info, false, "::1".parse().unwrap(), 1, 1);
        assert!(v6.contains("IN IP6 ::1") && v6.contains("c=IN IP6 ::"));
        assert_eq!(format_fps(29.97002997), "29.970");
        // With the silent track: the video as before, then the audio media.
        let with = describe(&info, true, "192.0.2.7".parse().unwrap(), 42, 1);
        assert!(with.starts_with(&sdp));
        let audio: Vec<&str> = with[sdp.len()..].split("\r\n").collect();
        assert_eq!(
            audio,
            [
                "m=audio 0 RTP/AVP 97",
                "a=rtpmap:97 mpeg4-generic/44100/1",
                "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
                 indexlength=3;indexdeltalength=3;config=1208",
                "a=recvonly",
                "a=control:trackID=1",
                "",
            ]
        );
    }
}
