//! The connection's policy in virtual time: no sockets, no sleeps, no clock
//! but the `Instant`s the tests pass in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::h264::ParameterSets;
use crate::media::Fraction;
use crate::rtsp::session::MediaTransport;
use crate::rtsp::session::tests::request_text;

struct TestEnv {
    info: Mutex<Option<Arc<StreamInfo>>>,
    free: AtomicUsize,
    counts: Mutex<Vec<Count>>,
}

impl Admission for TestEnv {
    fn try_admit(&self) -> bool {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
    fn release(&self) {
        self.free.fetch_add(1, Ordering::AcqRel);
    }
}

impl Env for TestEnv {
    fn stream_info(&self) -> Option<Arc<StreamInfo>> {
        self.info.lock().unwrap().clone()
    }
    fn last_pts(&self) -> Option<Duration> {
        Some(Duration::from_secs(5))
    }
    fn admission(&self) -> &dyn Admission {
        self
    }
    fn count(&self, what: Count) {
        self.counts.lock().unwrap().push(what);
    }
}

fn info() -> Arc<StreamInfo> {
    Arc::new(StreamInfo {
        width: 320,
        height: 240,
        fps: Fraction::new(30, 1),
        bitrate_kbps: 500,
        params: ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e], vec![0x68, 0xce]).unwrap(),
    })
}

struct Harness {
    conn: Conn,
    env: Arc<TestEnv>,
    t0: Instant,
    cseq: u32,
}

const SETUP_TCP: &str = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1";

impl Harness {
    fn new() -> Self {
        Self::with_seed(7)
    }

    fn with_seed(seed: u64) -> Self {
        Self::with_settings(seed, false)
    }

    /// With `audio`, the stream has the silent AAC track.
    fn with_settings(seed: u64, audio: bool) -> Self {
        let env = Arc::new(TestEnv {
            info: Mutex::new(Some(info())),
            free: AtomicUsize::new(2),
            counts: Mutex::new(Vec::new()),
        });
        let settings = Arc::new(Settings {
            path: "/live".into(),
            session_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            udp: false,
            auth: None,
            audio,
        });
        let config = ConnConfig {
            parse_limits: Limits::default(),
            limits: LimitSettings::default(),
            local_ip: "10.0.0.1".parse().unwrap(),
            udp_server_ports: (0, 0),
            sdp_session_id: 42,
        };
        let t0 = Instant::now();
        let conn = Conn::new(
            settings,
            config,
            env.clone(),
            "10.0.0.9:40000".parse().unwrap(),
            t0,
            fastrand::Rng::with_seed(seed),
        );
        Self {
            conn,
            env,
            t0,
            cseq: 0,
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn request(&mut self, method: &str, uri: &str, headers: &[&str]) -> String {
        self.cseq += 1;
        request_text(method, uri, self.cseq, headers)
    }

    fn send(&mut self, secs: f64, bytes: &[u8]) {
        let now = self.at(secs);
        self.conn.handle_bytes(now, bytes);
    }

    /// Everything queued to write, as text.
    fn transmitted(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.conn.poll_transmit())
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    fn statuses(&mut self) -> Vec<u16> {
        self.transmitted()
            .iter()
            .map(|t| t["RTSP/1.0 ".len()..][..3].parse().unwrap())
            .collect()
    }

    fn counts(&self, what: Count) -> usize {
        self.env
            .counts
            .lock()
            .unwrap()
            .iter()
            .filter(|&&c| c == what)
            .count()
    }

    /// SETUP over TCP at `secs`; returns the session id.
    fn setup(&mut self, secs: f64) -> String {
        let req = self.request("SETUP", "rtsp://10.0.0.1/live/trackID=0", &[SETUP_TCP]);
        self.send(secs, req.as_bytes());
        let answer = self.transmitted().remove(0);
        assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
        let line = answer
            .lines()
            .find_map(|l| l.strip_prefix("Session: "))
            .unwrap();
        line.split(';').next().unwrap().to_string()
    }
}

#[test]
fn a_trickled_request_is_answered_408_at_the_handshake_deadline() {
    let mut h = Harness::new();
    let req = h.request("OPTIONS", "*", &[]);
    // One byte a second: never a whole request within the 10 s.
    for (i, b) in req.as_bytes().iter().take(10).enumerate() {
        h.send(i as f64, std::slice::from_ref(b));
        h.conn.handle_timeout(h.at(i as f64));
        assert!(h.transmitted().is_empty() && h.events().is_empty());
    }
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.at(10.0)),
        "counted from connect"
    );
    h.conn.handle_timeout(h.at(9.999));
    assert!(h.events().is_empty());
    h.conn.handle_timeout(h.at(10.0));
    let out = h.transmitted();
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("RTSP/1.0 408 Request Timeout\r\n"),
        "{}",
        out[0]
    );
    assert_eq!(
        h.events(),
        vec![Event::Close(CloseReason::NoRequestInTime(
            Duration::from_secs(10)
        ))]
    );
    assert_eq!(h.conn.poll_timeout(), None);
    // Nothing more once closed.
    h.send(11.0, b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n");
    assert!(h.transmitted().is_empty() && h.events().is_empty());
}

#[test]
fn the_handshake_clock_restarts_with_each_request() {
    let mut h = Harness::new();
    let req = h.request("OPTIONS", "*", &[]);
    h.send(9.0, req.as_bytes());
    assert_eq!(h.statuses(), vec![200]);
    // Done at 9 s: no request pending, so only the idle timeout (30 s from
    // the last request) is left.
    assert_eq!(h.conn.poll_timeout(), Some(h.at(39.0)));
    let half = &req.as_bytes()[..5];
    h.send(20.0, half);
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.at(30.0)),
        "a new request started"
    );
    h.conn.handle_timeout(h.at(30.0));
    assert!(h.transmitted()[0].starts_with("RTSP/1.0 408"));
}

#[test]
fn a_flood_is_answered_503_after_the_burst() {
    let mut h = Harness::new();
    let mut flood = String::new();
    for _ in 0..50 {
        flood.push_str(&h.request("OPTIONS", "*", &[]));
    }
    h.send(0.0, flood.as_bytes());
    let out = h.transmitted();
    assert_eq!(out.len(), 50, "every request is answered");
    let limited: Vec<&String> = out
        .iter()
        .filter(|t| t.starts_with("RTSP/1.0 503"))
        .collect();
    // Burst of twice the 20 per second.
    assert_eq!(limited.len(), 10);
    assert!(out[..40].iter().all(|t| t.starts_with("RTSP/1.0 200")));
    assert!(limited[0].contains("Retry-After: 1\r\n"), "{}", limited[0]);
    assert!(limited[0].contains("CSeq: 41\r\n"), "{}", limited[0]);
    assert!(limited[0].contains("more than 20 requests per second"));
    assert_eq!(h.counts(Count::RateLimited), 10);
    assert!(
        h.events().is_empty(),
        "a flood does not close the connection"
    );
}

#[test]
fn the_rate_limit_refills_at_the_configured_rate() {
    let mut h = Harness::new();
    let burst: String = (0..40).map(|_| h.request("OPTIONS", "*", &[])).collect();
    h.send(0.0, burst.as_bytes());
    assert!(h.statuses().iter().all(|&s| s == 200));
    // 0.5 s later: 10 tokens back, so 10 of 15 pass.
    let more: String = (0..15).map(|_| h.request("OPTIONS", "*", &[])).collect();
    h.send(0.5, more.as_bytes());
    let statuses = h.statuses();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 5);
    // A minute later the bucket holds no more than the burst.
    let later: String = (0..45).map(|_| h.request("OPTIONS", "*", &[])).collect();
    h.send(60.5, later.as_bytes());
    assert_eq!(h.statuses().iter().filter(|&&s| s == 200).count(), 40);
}

#[test]
fn a_connection_without_a_session_closes_when_idle() {
    let mut h = Harness::new();
    let req = h.request("OPTIONS", "*", &[]);
    h.send(1.0, req.as_bytes());
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(h.conn.poll_timeout(), Some(h.at(31.0)));
    h.conn.handle_timeout(h.at(30.9));
    assert!(h.events().is_empty());
    h.conn.handle_timeout(h.at(31.0));
    assert!(h.transmitted().is_empty(), "closed without an answer");
    assert_eq!(
        h.events(),
        vec![Event::Close(CloseReason::Idle(Duration::from_secs(30)))]
    );
}

#[test]
fn a_session_times_out_without_requests_or_rtcp_and_gives_its_slot_back() {
    let mut h = Harness::new();
    h.setup(0.0);
    assert_eq!(h.env.free.load(Ordering::Relaxed), 1);
    assert_eq!(h.conn.poll_timeout(), Some(h.at(60.0)), "session timeout");
    // Interleaved RTCP (a receiver report on channel 1) keeps it alive.
    let rr = [b'$', 1, 0, 8, 0x80, 201, 0, 1, 1, 2, 3, 4];
    h.send(50.0, &rr);
    // An interleaved RTP packet on channel 0 does not.
    h.send(55.0, &[b'$', 0, 0, 2, 0x80, 96]);
    assert_eq!(h.conn.poll_timeout(), Some(h.at(110.0)));
    h.conn.handle_timeout(h.at(100.0));
    assert!(h.events().is_empty());
    // UDP RTCP reported by the server's receiver counts as well.
    h.conn.handle_activity(h.at(90.0));
    h.conn.handle_activity(h.at(80.0)); // never moves back
    assert_eq!(h.conn.poll_timeout(), Some(h.at(150.0)));
    h.conn.handle_timeout(h.at(150.0));
    assert_eq!(
        h.events(),
        vec![
            Event::Teardown,
            Event::Close(CloseReason::SessionTimeout(Duration::from_secs(60)))
        ]
    );
    assert_eq!(h.env.free.load(Ordering::Relaxed), 2, "slot released");
    assert!(!h.conn.close_session(), "already gone");
}

#[test]
fn malformed_requests_are_answered_and_close_with_the_parse_error() {
    let mut h = Harness::new();
    let ok = h.request("OPTIONS", "*", &[]);
    let mut bytes = ok.into_bytes();
    bytes.extend_from_slice(b"OPTIONS * RTSP/2.0\r\nCSeq: 2\r\n\r\nOPTIONS * RTSP/1.0\r\n");
    h.send(0.0, &bytes);
    let out = h.transmitted();
    assert_eq!(out.len(), 2);
    assert!(out[0].starts_with("RTSP/1.0 200"));
    assert!(
        out[1].starts_with("RTSP/1.0 505 RTSP Version Not Supported\r\n"),
        "{}",
        out[1]
    );
    let events = h.events();
    let [Event::Close(reason @ CloseReason::BadRequest(e))] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(e.kind, parse::ErrorKind::UnsupportedVersion);
    let source = std::error::Error::source(reason).unwrap();
    assert_eq!(source.to_string(), e.to_string());
    assert!(reason.to_string().starts_with("bad request: "));
    assert_eq!(h.counts(Count::BadRequest), 1);

    let mut h = Harness::new();
    h.send(0.0, b"OPT\x01ONS * RTSP/1.0\r\n\r\n");
    assert_eq!(h.statuses(), vec![400]);
}

#[test]
fn an_oversized_header_block_is_refused_before_the_buffer_grows() {
    let mut h = Harness::new();
    let mut big = b"OPTIONS * RTSP/1.0\r\nX-Pad: ".to_vec();
    big.resize(Limits::default().max_header_bytes + 10, b'a');
    h.send(0.0, &big);
    assert_eq!(h.statuses(), vec![400]);
    assert!(matches!(
        h.events().as_slice(),
        [Event::Close(CloseReason::BadRequest(e))] if e.kind == parse::ErrorKind::HeadersTooLarge
    ));
}

#[test]
fn describe_waits_for_the_stream_once() {
    let mut h = Harness::new();
    *h.env.info.lock().unwrap() = None;
    let req = h.request("DESCRIBE", "rtsp://10.0.0.1/live", &[]);
    h.send(0.0, req.as_bytes());
    assert!(h.transmitted().is_empty());
    assert_eq!(h.events(), vec![Event::AwaitStream(STREAM_WAIT)]);
    // Still no stream after the wait: answered anyway (not waited again).
    h.send(2.0, &[]);
    assert_eq!(h.statuses(), vec![503]);
    assert!(h.events().is_empty());
    // With the stream, DESCRIBE gets the SDP at once.
    *h.env.info.lock().unwrap() = Some(info());
    let req = h.request("DESCRIBE", "rtsp://10.0.0.1/live", &[]);
    h.send(3.0, req.as_bytes());
    let out = h.transmitted();
    assert!(out[0].starts_with("RTSP/1.0 200"), "{}", out[0]);
    assert!(
        out[0].contains("o=- 42 "),
        "the server's SDP session id: {}",
        out[0]
    );
}

#[test]
fn pipelined_requests_wait_for_the_driver_after_an_effect() {
    let mut h = Harness::new();
    let session = h.setup(0.0);
    let s = format!("Session: {session}");
    let mut bytes = h.request("PLAY", "rtsp://10.0.0.1/live", &[&s]);
    bytes.push_str(&h.request("PAUSE", "rtsp://10.0.0.1/live", &[&s]));
    bytes.push_str(&h.request("PLAY", "rtsp://10.0.0.1/live", &[&s]));
    h.send(1.0, bytes.as_bytes());
    assert_eq!(h.statuses(), vec![200]);
    let [Event::Play(first)] = h.events()[..] else {
        panic!()
    };
    h.send(1.0, &[]);
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(h.events(), vec![Event::Pause]);
    // The stopped sender reports where it was; the next PLAY resumes there.
    let first = first.video.unwrap();
    h.conn
        .set_next_seq(Track::Video, first.first_seq.wrapping_add(500));
    h.send(1.0, &[]);
    assert_eq!(h.statuses(), vec![200]);
    let [Event::Play(second)] = h.events()[..] else {
        panic!()
    };
    let second = second.video.unwrap();
    assert_eq!(second.first_seq, first.first_seq.wrapping_add(500));
    assert_eq!(second.ssrc, first.ssrc);
}

#[test]
fn the_audio_track_is_set_up_and_played_through_the_connection() {
    let mut h = Harness::with_settings(7, true);
    let session = h.setup(0.0);
    let s = format!("Session: {session}");
    // The second SETUP and the PLAY pipelined in one read.
    let mut bytes = h.request(
        "SETUP",
        "rtsp://10.0.0.1/live/trackID=1",
        &[&s, "Transport: RTP/AVP/TCP;unicast;interleaved=2-3"],
    );
    bytes.push_str(&h.request("PLAY", "rtsp://10.0.0.1/live/", &[&s]));
    h.send(0.5, bytes.as_bytes());
    assert_eq!(h.statuses(), vec![200, 200]);
    let [Event::Play(p)] = h.events()[..] else {
        panic!()
    };
    let (Some(video), Some(audio)) = (p.video, p.audio) else {
        panic!("{p:?}")
    };
    assert_eq!(
        (video.transport, audio.transport),
        (
            MediaTransport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1
            },
            MediaTransport::Tcp {
                rtp_channel: 2,
                rtcp_channel: 3
            }
        )
    );
    // RTCP from the client on the audio's channel keeps the session alive.
    let rr = [b'$', 3, 0, 8, 0x80, 201, 0, 1, 0, 0, 0, 1];
    h.send(50.0, &rr);
    h.conn.handle_timeout(h.at(100.0));
    assert!(!h.conn.is_closed());
    h.conn.handle_timeout(h.at(111.0));
    assert!(h.conn.is_closed());
}

#[test]
fn the_seeded_rng_makes_sessions_reproducible() {
    let a = Harness::with_seed(1).setup(0.0);
    let b = Harness::with_seed(1).setup(0.0);
    let c = Harness::with_seed(2).setup(0.0);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn teardown_is_an_event_and_keeps_the_connection() {
    let mut h = Harness::new();
    let session = h.setup(0.0);
    let s = format!("Session: {session}");
    let req = h.request("TEARDOWN", "rtsp://10.0.0.1/live", &[&s]);
    h.send(1.0, req.as_bytes());
    assert_eq!(h.statuses(), vec![200]);
    assert_eq!(h.events(), vec![Event::Teardown]);
    assert!(!h.conn.is_closed());
    assert_eq!(h.env.free.load(Ordering::Relaxed), 2);
    // Back to the idle timeout.
    assert_eq!(h.conn.poll_timeout(), Some(h.at(31.0)));
}
