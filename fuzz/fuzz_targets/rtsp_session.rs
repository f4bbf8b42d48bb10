//! The per-connection RTSP state machine driven by arbitrary request
//! sequences: no panic, and viewer slots are balanced (every slot taken is
//! given back when the connection closes).
#![no_main]

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestream::h264::ParameterSets;
use edgestream::media::{Fraction, StreamInfo};
use edgestream::rtsp::parse::{Limits, Message, Parsed, parse};
use edgestream::rtsp::session::{Admission, Context, Effect, SessionMachine, Settings, Track};
use libfuzzer_sys::fuzz_target;

struct Slots {
    free: Cell<usize>,
}

impl Admission for Slots {
    fn try_admit(&self) -> bool {
        let f = self.free.get();
        if f == 0 {
            return false;
        }
        self.free.set(f - 1);
        true
    }
    fn release(&self) {
        self.free.set(self.free.get() + 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let settings = Arc::new(Settings {
        path: "/live".into(),
        session_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(30),
        udp: data.first().is_some_and(|b| b & 1 == 1),
        auth: None,
        audio: data.first().is_some_and(|b| b & 2 == 2),
    });
    let info = StreamInfo {
        width: 64,
        height: 48,
        fps: Fraction::new(30, 1),
        bitrate_kbps: 100,
        params: ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e], vec![0x68, 0xce]).unwrap(),
    };
    let slots = Slots { free: Cell::new(2) };
    let mut conn = SessionMachine::new(settings, "127.0.0.1:5000".parse().unwrap(), t0);
    let mut rest = data;
    let mut step = 0u64;
    while let Ok(Parsed::Complete(msg, n)) = parse(rest, &Limits::default()) {
        rest = &rest[n..];
        step += 1;
        let now = t0 + Duration::from_secs(step);
        if let Message::Request(req) = msg {
            let ctx = Context {
                now,
                stream: (step % 7 != 0).then_some(&info),
                local_ip: "127.0.0.1".parse().unwrap(),
                udp_server_ports: (6970, 6971),
                last_pts: Some(Duration::from_millis(step * 33)),
                admission: &slots,
                sdp_version: (1, step),
            };
            let (resp, effect) = conn.handle(&req, &ctx);
            assert!((100..600).contains(&resp.status));
            if let Effect::Play(p) = effect {
                assert!(conn.is_playing());
                if let Some(v) = p.video {
                    conn.set_next_seq(Track::Video, v.first_seq.wrapping_add(10));
                }
                if let Some(a) = p.audio {
                    conn.set_next_seq(Track::Audio, a.first_seq.wrapping_add(10));
                }
            }
            let mut out = Vec::new();
            resp.write_to(req.cseq(), &mut out);
        }
        assert!(slots.free.get() <= 2);
    }
    let _ = conn.expire(t0 + Duration::from_secs(step + 1000), &slots);
    conn.close(&slots);
    assert_eq!(slots.free.get(), 2, "a viewer slot leaked");
});
