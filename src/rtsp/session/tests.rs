//! The session state machine driven request by request, without a network.

use super::*;
use crate::h264::ParameterSets;
use crate::media::Fraction;
use crate::rtsp::parse::{Limits, Message, Parsed, parse};
use std::cell::Cell;
use std::sync::Arc;

/// The text of a request with `CSeq: cseq` and `headers` (each `Name: value`).
pub(crate) fn request_text(method: &str, uri: &str, cseq: u32, headers: &[&str]) -> String {
    let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

struct Slots {
    free: Cell<usize>,
}

impl Admission for Slots {
    fn try_admit(&self) -> bool {
        if self.free.get() == 0 {
            return false;
        }
        self.free.set(self.free.get() - 1);
        true
    }
    fn release(&self) {
        self.free.set(self.free.get() + 1);
    }
}

struct Harness {
    conn: SessionMachine,
    slots: Slots,
    info: StreamInfo,
    now: Instant,
    cseq: u32,
}

impl Harness {
    fn new(slots: usize) -> Self {
        Self::with_audio(slots, false)
    }

    /// With `audio`, the stream has the silent AAC track.
    fn with_audio(slots: usize, audio: bool) -> Self {
        let settings = Arc::new(Settings {
            path: "/live".into(),
            session_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            udp: true,
            auth: None,
            audio,
        });
        let now = Instant::now();
        Self {
            conn: SessionMachine::new(settings, "10.0.0.9:40000".parse().unwrap(), now),
            slots: Slots {
                free: Cell::new(slots),
            },
            info: StreamInfo {
                width: 320,
                height: 240,
                fps: Fraction::new(30, 1),
                bitrate_kbps: 500,
                params: ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e], vec![0x68, 0xce]).unwrap(),
            },
            now,
            cseq: 0,
        }
    }

    fn req(&mut self, method: &str, uri: &str, headers: &[&str]) -> (Response, Effect) {
        self.cseq += 1;
        let text = request_text(method, uri, self.cseq, headers);
        let Ok(Parsed::Complete(Message::Request(req), _)) =
            parse(text.as_bytes(), &Limits::default())
        else {
            panic!("test request does not parse: {text}");
        };
        let ctx = Context {
            now: self.now,
            stream: Some(&self.info),
            local_ip: "10.0.0.1".parse().unwrap(),
            udp_server_ports: (6970, 6971),
            last_pts: Some(Duration::from_secs(1)),
            admission: &self.slots,
            sdp_version: (1, 1),
        };
        self.conn.handle(&req, &ctx)
    }

    fn session(&self) -> String {
        format!("Session: {}", self.conn.session_id().unwrap())
    }
}

const URL: &str = "rtsp://10.0.0.1:8554/live";
const TRACK: &str = "rtsp://10.0.0.1:8554/live/trackID=0";

#[test]
fn tcp_play_flow_like_vlc() {
    let mut h = Harness::new(4);
    let (r, _) = h.req("OPTIONS", URL, &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("Public").unwrap().contains("GET_PARAMETER"));
    let (r, _) = h.req("DESCRIBE", URL, &["Accept: application/sdp"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Base"), Some("rtsp://10.0.0.1:8554/live/"));
    assert!(r.body().contains("a=rtpmap:96 H264/90000"));
    let (r, e) = h.req(
        "SETUP",
        TRACK,
        &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
    );
    assert_eq!((r.status, e), (200, Effect::None));
    assert!(
        r.header("Transport")
            .unwrap()
            .starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=")
    );
    assert!(r.header("Session").unwrap().ends_with(";timeout=60"));
    assert_eq!(h.slots.free.get(), 3);
    let s = h.session();
    let (r, e) = h.req(
        "PLAY",
        "rtsp://10.0.0.1:8554/live/",
        &[&s, "Range: npt=0.000-"],
    );
    assert_eq!(r.status, 200);
    let info = r.header("RTP-Info").unwrap();
    assert!(
        info.starts_with("url=rtsp://10.0.0.1:8554/live/trackID=0;seq="),
        "{info}"
    );
    let Effect::Play(PlayParams {
        video: Some(p),
        audio: None,
    }) = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        p.transport,
        MediaTransport::Tcp {
            rtp_channel: 0,
            rtcp_channel: 1
        }
    );
    assert!(info.contains(&format!(
        "seq={};rtptime={}",
        p.first_seq,
        rtp::rtp_timestamp(Duration::from_secs(1), p.ts_offset)
    )));
    // Playing again changes nothing; PAUSE stops, PLAY resumes.
    assert_eq!(h.req("PLAY", URL, &[&s]).1, Effect::None);
    assert_eq!(h.req("PAUSE", URL, &[&s]).1, Effect::Pause);
    h.conn
        .set_next_seq(Track::Video, p.first_seq.wrapping_add(100));
    let (_, e) = h.req("PLAY", TRACK, &[&s]);
    let Effect::Play(PlayParams {
        video: Some(p2), ..
    }) = e
    else {
        panic!()
    };
    assert_eq!(p2.first_seq, p.first_seq.wrapping_add(100));
    assert_eq!(p2.ssrc, p.ssrc);
    let (r, e) = h.req("GET_PARAMETER", URL, &[&s]);
    assert_eq!((r.status, e), (200, Effect::None));
    let (r, e) = h.req("TEARDOWN", URL, &[&s]);
    assert_eq!((r.status, e), (200, Effect::Teardown));
    assert_eq!(h.slots.free.get(), 4);
    assert_eq!(h.req("PLAY", URL, &[&s]).0.status, 454);
}

#[test]
fn udp_setup_sends_to_the_peer_only() {
    let mut h = Harness::new(1);
    let (r, _) = h.req(
        "SETUP",
        TRACK,
        &["Transport: RTP/AVP;unicast;destination=203.0.113.5;client_port=5000-5001"],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Transport")
            .unwrap()
            .split(";ssrc")
            .next()
            .unwrap(),
        "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971"
    );
    let s = h.session();
    let (_, e) = h.req("PLAY", URL, &[&s]);
    let Effect::Play(PlayParams { video: Some(p), .. }) = e else {
        panic!()
    };
    assert_eq!(
        p.transport,
        MediaTransport::Udp {
            rtp: "10.0.0.9:5000".parse().unwrap(),
            rtcp: "10.0.0.9:5001".parse().unwrap()
        }
    );
}

const AUDIO: &str = "rtsp://10.0.0.1:8554/live/trackID=1";

#[test]
fn both_tracks_over_tcp_with_one_aggregate_play() {
    let mut h = Harness::with_audio(4, true);
    let (r, _) = h.req("DESCRIBE", URL, &[]);
    let sdp = r.body();
    assert!(sdp.contains("m=audio 0 RTP/AVP 97\r\n"), "{sdp}");
    assert!(sdp.contains("a=control:trackID=1\r\n"), "{sdp}");
    let (r, _) = h.req(
        "SETUP",
        TRACK,
        &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
    );
    assert_eq!(r.status, 200);
    let s = h.session();
    // The same channels again are refused; no interleaved= gets 2-3.
    let (r, _) = h.req(
        "SETUP",
        AUDIO,
        &[&s, "Transport: RTP/AVP/TCP;interleaved=1-2"],
    );
    assert_eq!(r.status, 461, "{}", r.body());
    let (r, _) = h.req("SETUP", AUDIO, &[&s, "Transport: RTP/AVP/TCP;unicast"]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("Transport")
            .unwrap()
            .starts_with("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=")
    );
    assert_eq!(h.slots.free.get(), 3, "one session, one viewer slot");
    let (r, e) = h.req("PLAY", URL, &[&s]);
    assert_eq!(r.status, 200);
    let Effect::Play(PlayParams {
        video: Some(v),
        audio: Some(a),
    }) = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        a.transport,
        MediaTransport::Tcp {
            rtp_channel: 2,
            rtcp_channel: 3
        }
    );
    assert_ne!(a.ssrc, v.ssrc);
    let info = r.header("RTP-Info").unwrap();
    let expected = format!(
        "url={URL}/trackID=0;seq={};rtptime={},url={URL}/trackID=1;seq={};rtptime={}",
        v.first_seq,
        rtp::rtp_timestamp(Duration::from_secs(1), v.ts_offset),
        a.first_seq,
        a.ts_offset.wrapping_add(44_100)
    );
    assert_eq!(info, expected);
    // Each track resumes its own sequence after PAUSE.
    assert_eq!(h.req("PAUSE", URL, &[&s]).1, Effect::Pause);
    h.conn.set_next_seq(Track::Audio, 7);
    let (_, e) = h.req("PLAY", AUDIO, &[&s]);
    let Effect::Play(p) = e else { panic!() };
    assert_eq!(p.audio.map(|a| a.first_seq), Some(7));
    assert_eq!(p.video.map(|v| v.first_seq), Some(v.first_seq));
}

#[test]
fn audio_over_udp_and_video_only_clients() {
    let mut h = Harness::with_audio(4, true);
    h.req(
        "SETUP",
        TRACK,
        &["Transport: RTP/AVP;unicast;client_port=5000-5001"],
    );
    let s = h.session();
    let (r, _) = h.req(
        "SETUP",
        AUDIO,
        &[&s, "Transport: RTP/AVP;unicast;client_port=5002-5003"],
    );
    assert!(
        r.header("Transport")
            .unwrap()
            .starts_with("RTP/AVP;unicast;client_port=5002-5003;server_port=6970-6971;ssrc="),
        "{r:?}"
    );
    let Effect::Play(p) = h.req("PLAY", URL, &[&s]).1 else {
        panic!()
    };
    assert_eq!(
        p.audio.map(|a| a.transport),
        Some(MediaTransport::Udp {
            rtp: "10.0.0.9:5002".parse().unwrap(),
            rtcp: "10.0.0.9:5003".parse().unwrap()
        })
    );
    // A client that sets up only the video plays only the video.
    let mut h = Harness::with_audio(4, true);
    h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=0-1"]);
    let s = h.session();
    let (r, e) = h.req("PLAY", URL, &[&s]);
    assert!(!r.header("RTP-Info").unwrap().contains("trackID=1"));
    assert!(matches!(
        e,
        Effect::Play(PlayParams {
            video: Some(_),
            audio: None
        })
    ));
    // Without the audio track there is no trackID=1.
    let mut h = Harness::new(4);
    assert!(!h.req("DESCRIBE", URL, &[]).0.body().contains("m=audio"));
    let (r, _) = h.req("SETUP", AUDIO, &["Transport: RTP/AVP/TCP;interleaved=2-3"]);
    assert_eq!(r.status, 404);
}

#[test]
fn errors() {
    let mut h = Harness::new(1);
    assert_eq!(h.req("DESCRIBE", "rtsp://h/nope", &[]).0.status, 404);
    assert_eq!(h.req("DESCRIBE", "rtsp://h/live/extra", &[]).0.status, 404);
    assert_eq!(h.req("DESCRIBE", URL, &["Accept: text/html"]).0.status, 406);
    assert_eq!(h.req("SETUP", TRACK, &[]).0.status, 400);
    assert_eq!(
        h.req("SETUP", TRACK, &["Transport: nonsense"]).0.status,
        400
    );
    assert_eq!(
        h.req("SETUP", TRACK, &["Transport: RTP/AVP;multicast"])
            .0
            .status,
        461
    );
    assert_eq!(
        h.req("SETUP", TRACK, &["Transport: RTP/AVP;unicast"])
            .0
            .status,
        461
    );
    assert_eq!(
        h.req(
            "SETUP",
            TRACK,
            &["Transport: RTP/AVP/TCP;interleaved=0-1;mode=record"]
        )
        .0
        .status,
        461
    );
    assert_eq!(
        h.req(
            "SETUP",
            TRACK,
            &["Session: 1234", "Transport: RTP/AVP/TCP;interleaved=0-1"]
        )
        .0
        .status,
        454
    );
    assert_eq!(h.req("PLAY", URL, &[]).0.status, 454);
    assert_eq!(h.req("PLAY", URL, &["Session: 99"]).0.status, 454);
    assert_eq!(h.req("TEARDOWN", URL, &["Session: 99"]).0.status, 454);
    assert_eq!(h.req("RECORD", URL, &[]).0.status, 405);
    assert_eq!(h.req("FLY", URL, &[]).0.status, 501);
    assert_eq!(h.req("OPTIONS", URL, &["Require: funky"]).0.status, 551);
    assert_eq!(h.req("GET_PARAMETER", URL, &[]).0.status, 200);
    // Connection-level keep-alives need no session.
    let (r, _) = h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=2-3"]);
    assert_eq!(r.status, 200);
    let s = h.session();
    assert_eq!(h.req("PLAY", URL, &[&s, "Range: bytes=0-"]).0.status, 457);
    assert_eq!(
        h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP"]).0.status,
        459
    );
    h.req("PLAY", URL, &[&s]);
    assert_eq!(
        h.req("SETUP", TRACK, &[&s, "Transport: RTP/AVP/TCP"])
            .0
            .status,
        455
    );
}

#[test]
fn admission_limit_gives_453() {
    let mut h = Harness::new(0);
    let (r, _) = h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=0-1"]);
    assert_eq!(r.status, 453);
    assert!(h.conn.session_id().is_none());
}

#[test]
fn describe_before_the_encoder_is_ready_is_503() {
    let mut h = Harness::new(1);
    let req_text = format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    let Ok(Parsed::Complete(Message::Request(req), _)) =
        parse(req_text.as_bytes(), &Limits::default())
    else {
        panic!()
    };
    let ctx = Context {
        now: h.now,
        stream: None,
        local_ip: "10.0.0.1".parse().unwrap(),
        udp_server_ports: (0, 0),
        last_pts: None,
        admission: &h.slots,
        sdp_version: (1, 1),
    };
    let (r, _) = h.conn.handle(&req, &ctx);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
}

#[test]
fn missing_cseq_is_400() {
    let mut h = Harness::new(1);
    let text = "OPTIONS * RTSP/1.0\r\n\r\n";
    let Ok(Parsed::Complete(Message::Request(req), _)) = parse(text.as_bytes(), &Limits::default())
    else {
        panic!()
    };
    let info = h.info.clone();
    let ctx = Context {
        now: h.now,
        stream: Some(&info),
        local_ip: "10.0.0.1".parse().unwrap(),
        udp_server_ports: (0, 0),
        last_pts: None,
        admission: &h.slots,
        sdp_version: (1, 1),
    };
    assert_eq!(h.conn.handle(&req, &ctx).0.status, 400);
}

#[test]
fn session_times_out_and_releases_its_slot() {
    let mut h = Harness::new(1);
    h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=0-1"]);
    assert_eq!(h.slots.free.get(), 0);
    let t0 = h.now;
    assert_eq!(h.conn.deadline(), t0 + Duration::from_secs(60));
    assert_eq!(h.conn.expire(t0 + Duration::from_secs(59), &h.slots), None);
    h.conn.touch(t0 + Duration::from_secs(30));
    assert_eq!(h.conn.expire(t0 + Duration::from_secs(61), &h.slots), None);
    assert_eq!(
        h.conn.expire(t0 + Duration::from_secs(90), &h.slots),
        Some(Effect::Teardown)
    );
    assert_eq!(h.slots.free.get(), 1);
    assert_eq!(
        h.conn.expire(t0 + Duration::from_secs(200), &h.slots),
        Some(Effect::Close)
    );
}

#[test]
fn idle_connections_without_a_session_use_the_idle_timeout() {
    let h = Harness::new(1);
    assert_eq!(h.conn.deadline(), h.now + Duration::from_secs(30));
}

#[test]
fn credentials_are_required_except_for_options() {
    use crate::rtsp::auth::{Authenticator, User};
    let mut h = Harness::new(1);
    let auth = Authenticator::new(
        vec![User::parse("viewer:pw").unwrap()],
        true,
        [1; 32],
        h.now,
    );
    h.conn.settings = Arc::new(Settings {
        auth: Some(Arc::new(auth)),
        ..(*h.conn.settings).clone()
    });
    assert_eq!(h.req("OPTIONS", URL, &[]).0.status, 200);
    let (r, _) = h.req("DESCRIBE", URL, &[]);
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .starts_with("Digest realm=\"edgestream\"")
    );
    let (r, _) = h.req("DESCRIBE", URL, &["Authorization: Basic dmlld2VyOnd4"]);
    assert_eq!(r.status, 401, "wrong password");
    assert!(h.conn.user().is_none());
    // viewer:pw
    let good = "Authorization: Basic dmlld2VyOnB3";
    assert_eq!(h.req("DESCRIBE", URL, &[good]).0.status, 200);
    assert_eq!(h.conn.user(), Some("viewer"));
    let (r, _) = h.req(
        "SETUP",
        TRACK,
        &[good, "Transport: RTP/AVP/TCP;interleaved=0-1"],
    );
    assert_eq!(r.status, 200);
    // Every request needs them, also once authenticated.
    let s = h.session();
    assert_eq!(h.req("PLAY", URL, &[&s]).0.status, 401);
    assert!(matches!(h.req("PLAY", URL, &[&s, good]).1, Effect::Play(_)));
}

#[test]
fn uri_paths() {
    assert_eq!(uri_path("rtsp://h:1/live/"), Some("/live"));
    assert_eq!(uri_path("rtsp://user@h/live?x=1"), Some("/live"));
    assert_eq!(uri_path("rtsp://h"), Some(""));
    assert_eq!(uri_path("/live/trackID=0"), Some("/live/trackID=0"));
    assert_eq!(uri_path("*"), Some("*"));
    assert_eq!(uri_path("http:x"), None);
}
